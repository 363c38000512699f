"""The CPU named next to every figure: model name, family and model numbers, relevant flags."""

from anomalib_fastflow.hardware import RELEVANT_FLAGS, parse_cpuinfo

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 amx_bf16
"""


def test_cpuinfo_names_the_first_processor_with_its_family_and_model() -> None:
    name, flags = parse_cpuinfo(CPUINFO)
    assert name == "AMD EPYC, family 25 model 17"
    assert {"avx2", "avx512_bf16"} <= flags and "amx_bf16" not in flags  # not the second block's


def test_cpuinfo_without_family_keeps_the_bare_name() -> None:
    name, flags = parse_cpuinfo("model name\t: Some CPU\nflags\t\t: avx2\n")
    assert name == "Some CPU"
    assert flags & set(RELEVANT_FLAGS) == {"avx2"}

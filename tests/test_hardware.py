"""The CPU named next to every figure: model name, family and model numbers, relevant flags."""

import os
import subprocess
import sys

import pytest
import torch

from anomalib_fastflow.hardware import RELEVANT_FLAGS, cpu_model_and_flags, describe_cpu, parse_cpuinfo

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


@pytest.mark.skipif("avx2" not in cpu_model_and_flags()[1], reason="AVX2 kernels need an AVX2 CPU")
def test_description_names_the_kernels_pytorch_chose_in_this_process() -> None:
    """Under ``ATEN_CPU_CAPABILITY=avx2`` (the AVX2 stand-in run) the line says AVX2, not the host's best."""
    command = "from anomalib_fastflow.hardware import describe_cpu; print(describe_cpu())"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
    capped = subprocess.run([sys.executable, "-c", command], env=env, capture_output=True, text=True)
    assert capped.returncode == 0, capped.stderr
    assert capped.stdout.strip().endswith(", PyTorch kernels AVX2"), capped.stdout
    assert describe_cpu().endswith(f", PyTorch kernels {torch.backends.cpu.get_cpu_capability()}")

"""Which CPU a figure was measured on: its model name and the instruction sets runtimes choose by.

Runtimes pick kernels and even precisions from the host (OpenVINO runs FP32 models in bf16 on
CPUs with AVX-512 BF16 or AMX unless told otherwise), so every published figure names the CPU.
"""

import platform
from functools import cache
from pathlib import Path

# The flags that change what oneDNN, OpenVINO and ONNX Runtime run, in /proc/cpuinfo's names.
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")


@cache
def cpu_model_and_flags() -> tuple[str, frozenset[str]]:
    """The CPU's model name and its flags, from ``/proc/cpuinfo`` (Linux); elsewhere the platform's name."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return platform.processor() or platform.machine(), frozenset()
    model, flags = platform.machine(), frozenset()
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == platform.machine():
            model = value.strip()
        elif key.strip() == "flags":
            flags = frozenset(value.split())
            break
    return model, flags


def describe_cpu() -> str:
    """One line, e.g. ``Intel(R) Xeon(R) ... (has avx2, avx512f, avx512_vnni; lacks avx512_bf16, ...)``."""
    model, flags = cpu_model_and_flags()
    if not flags:
        return f"{model} (instruction sets not readable here)"
    present = [flag for flag in RELEVANT_FLAGS if flag in flags]
    absent = [flag for flag in RELEVANT_FLAGS if flag not in flags]
    return f"{model} (has {', '.join(present) or 'none'}; lacks {', '.join(absent) or 'none'})"

"""Which CPU a figure was measured on: its model name and the instruction sets runtimes choose by.

Runtimes pick kernels and even precisions from the host (OpenVINO runs FP32 models in bf16 on
CPUs with AVX-512 BF16 or AMX unless told otherwise), so every published figure names the CPU.
"""

import platform
from functools import cache
from pathlib import Path

import torch

# The flags that change what oneDNN, OpenVINO and ONNX Runtime run, in /proc/cpuinfo's names.
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")


@cache
def cpu_model_and_flags() -> tuple[str, frozenset[str]]:
    """The CPU's model name and its flags, from ``/proc/cpuinfo`` (Linux); elsewhere the platform's name."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return platform.processor() or platform.machine(), frozenset()
    return parse_cpuinfo(cpuinfo.read_text())


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """The first processor's model name, with its family and model numbers, and its flags.

    Virtual machines often report a bare name ("AMD EPYC", "Intel(R) Xeon(R) Processor"); the
    family and model numbers (e.g. ``family 25 model 17``: Zen 4) tell the generations apart.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block ends here
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", platform.machine())
    if "cpu family" in fields and "model" in fields:
        name = f"{name}, family {fields['cpu family']} model {fields['model']}"
    return name, frozenset(fields.get("flags", "").split())


def describe_cpu() -> str:
    """One line: ``AMD EPYC, family 25 model 17 (has avx2, ...; lacks amx_int8), PyTorch kernels AVX512``.

    The flags are the host's (``/proc/cpuinfo``); the kernels are those PyTorch chose in this
    process, which ``ATEN_CPU_CAPABILITY`` can lower and an emulator (QEMU user mode) can change.
    """
    model, flags = cpu_model_and_flags()
    instruction_sets = "instruction sets not readable here"
    if flags:
        present = [flag for flag in RELEVANT_FLAGS if flag in flags]
        absent = [flag for flag in RELEVANT_FLAGS if flag not in flags]
        instruction_sets = f"has {', '.join(present) or 'none'}; lacks {', '.join(absent) or 'none'}"
    return f"{model} ({instruction_sets}), PyTorch kernels {torch.backends.cpu.get_cpu_capability()}"

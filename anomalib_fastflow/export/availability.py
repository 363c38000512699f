"""Why a runtime or a precision cannot run on this machine: one line, or ``None`` when it can.

Checks that depend on the machine (a GPU, the CPU's bf16 kernels) or on an installed extra; the
export command, the benchmark and the tests skip what cannot run with the line these return.
"""

from functools import cache

import numpy as np
import torch

from ..extras import EXTRAS, missing_modules
from ..hardware import describe_cpu
from .openvino_compile import compiled_precision, precision_config

# the benchmark's runtime names and the modules each needs
RUNTIME_MODULES = {
    "torch": (),
    "onnxruntime": ("onnxruntime",),
    "openvino": ("openvino",),
    "tensorrt": ("tensorrt",),
    "tensorrt_fp16": ("tensorrt",),
}


def tensorrt_unavailable_reason() -> str | None:
    """Why TensorRT cannot run here, or ``None`` when it can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install 'anomalib-fastflow[tensorrt]')."
    if not torch.cuda.is_available():
        return "TensorRT needs an NVIDIA GPU, and torch sees no CUDA device."
    return None


def torch_bf16_unavailable_reason() -> str | None:
    """Why PyTorch has no fast bf16 CPU kernels here (oneDNN needs AVX-512 or AMX), or ``None``."""
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    return f"PyTorch's oneDNN has no bf16 kernels for this CPU ({describe_cpu()})."


@cache
def openvino_bf16_unavailable_reason(device: str = "CPU") -> str | None:
    """Why OpenVINO cannot run bf16 on ``device`` here (it falls back to f32), or ``None`` when it can.

    Asked of OpenVINO itself: a one-layer model is compiled with the bf16 hint and the precision
    its matrix product runs in is read back. OpenVINO runs bf16 natively on AVX-512 BF16 and AMX
    CPUs, and emulates it on other AVX-512 CPUs (slower than f32 there); AVX2-only CPUs have none.
    A CPU whose ISA OpenVINO's oneDNN was told to limit (``ONEDNN_MAX_CPU_ISA=AVX2``) may still
    report bf16 but fail to compile it: that is a reason too, with OpenVINO's message.
    """
    import openvino
    from openvino import opset13 as ops

    image = ops.parameter([1, 16], np.float32)
    product = ops.matmul(image, ops.constant(np.ones((16, 16), np.float32)), False, False)
    try:
        compiled = openvino.Core().compile_model(
            openvino.Model([product], [image]), device, precision_config("bf16", device)
        )
    except RuntimeError as error:
        message = next((line for line in reversed(str(error).splitlines()) if line.strip()), "")
        return f"OpenVINO cannot compile bf16 on {device} of this machine ({describe_cpu()}): {message}"
    if compiled_precision(compiled) == "bf16":
        return None
    return f"OpenVINO runs no bf16 on {device} of this machine ({describe_cpu()})."


def runtime_unavailable_reason(runtime: str) -> str | None:
    """Why the benchmark's ``runtime`` (a key of ``RUNTIME_MODULES``) cannot run here; ``None`` also for
    an unknown name, which the benchmark refuses itself."""
    if runtime.startswith("tensorrt"):
        return tensorrt_unavailable_reason()
    if missing := missing_modules(RUNTIME_MODULES.get(runtime, ())):
        extra = next(name for name, modules in EXTRAS.items() if set(missing) <= set(modules))
        return f'{runtime} needs {", ".join(missing)}: pip install "anomalib-fastflow[{extra}]"'
    return None

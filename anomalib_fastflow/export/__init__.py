"""Export to ONNX, OpenVINO and TensorRT, runtimes with one call style, inferencers, parity reports.

- ``exporter``: the formats and how each is written; ``runtimes``: one call style for torch, ONNX
  Runtime, OpenVINO and TensorRT; ``inferencers``: anomalib's call style (``predict``);
  ``availability``: why a runtime or precision cannot run here; ``openvino_compile``,
  ``mixed_precision``: OpenVINO settings and graph rewrites (the flows' permutations:
  ``anomalib_fastflow.channel_permutation``, which ``FastFlow.to_openvino`` uses too);
  ``tensorrt``: engine building; ``parity``: the report against PyTorch.
"""

import warnings

from .availability import (
    openvino_bf16_unavailable_reason,
    tensorrt_unavailable_reason,
    torch_bf16_unavailable_reason,
)
from .exporter import FORMATS, export_formats, load_runtime
from .inferencers import TensorRTInferencer, openvino_inferencer
from .parity import ParityRow, format_report, parity_report
from .runtimes import OnnxRuntime, OpenVINORuntime, TensorRTRuntime, TorchRuntime
from .tensorrt import build_engine

__all__ = [
    "FORMATS",
    "OnnxRuntime",
    "OpenVINORuntime",
    "ParityRow",
    "TensorRTInferencer",
    "TensorRTRuntime",
    "TorchRuntime",
    "build_engine",
    "export_formats",
    "format_report",
    "load_runtime",
    "openvino_bf16_unavailable_reason",
    "openvino_inferencer",
    "parity_report",
    "tensorrt_unavailable_reason",
    "torch_bf16_unavailable_reason",
]

_RENAMED = {
    "bf16_unavailable_reason": "openvino_bf16_unavailable_reason",
    "unavailable_reason": "tensorrt_unavailable_reason",
}


def __getattr__(name: str) -> object:
    """The names of 0.1 (``bf16_unavailable_reason``, ``unavailable_reason``), with a deprecation warning."""
    if name in _RENAMED:
        warnings.warn(
            f"anomalib_fastflow.export.{name} is deprecated; use {_RENAMED[name]}.",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[_RENAMED[name]]
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)

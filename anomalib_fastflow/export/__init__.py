"""Export to ONNX, OpenVINO and TensorRT, runtimes with one call style, and parity reports."""

from .exporter import FORMATS, export_formats, load_runtime
from .openvino_compile import bf16_unavailable_reason, openvino_inferencer
from .parity import ParityRow, format_report, parity_report
from .runtimes import OnnxRuntime, OpenVINORuntime, TorchRuntime
from .tensorrt import TensorRTInferencer, build_engine, unavailable_reason

__all__ = [
    "FORMATS",
    "OnnxRuntime",
    "OpenVINORuntime",
    "ParityRow",
    "TensorRTInferencer",
    "TorchRuntime",
    "bf16_unavailable_reason",
    "build_engine",
    "export_formats",
    "format_report",
    "load_runtime",
    "openvino_inferencer",
    "parity_report",
    "unavailable_reason",
]

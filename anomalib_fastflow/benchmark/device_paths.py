"""The inference paths the GPU story times (``device_speed``), each a factory of the network for a batch
size, or the reason it cannot run here: eager fp32, autocast (fp16 on CUDA, bf16 on a CPU with bf16
kernels), ``torch.compile``, a CUDA graph of the whole network, ONNX Runtime's CUDA and TensorRT
execution providers and a TensorRT fp16 engine (those three take host arrays: their copies are in
their time).
"""

from collections.abc import Callable
from pathlib import Path

import torch
from anomalib.data import InferenceBatch
from anomalib.models.components import AnomalibModule

from ..export.availability import tensorrt_unavailable_reason, torch_bf16_unavailable_reason
from ..export.cuda_graphs import CudaGraphModel, cuda_graph_unavailable_reason

PATHS = (
    "eager_fp32", "autocast", "compile", "cuda_graph", "onnxruntime_cuda", "onnxruntime_tensorrt", "tensorrt_fp16",
)  # fmt: skip
FLOW_MODELS = ("fastflow", "anomalib_fastflow")  # every path; the peers below run eager fp32 only
Network = Callable[[torch.Tensor], InferenceBatch]


def input_shape(model: AnomalibModule, batch: int) -> tuple[int, int, int, int]:
    """``(batch, 3, H, W)`` of the model's network."""
    return (batch, 3, *tuple(model.input_size))


def inference_paths(
    model: AnomalibModule, name: str, workdir: Path
) -> dict[str, Callable[[int], Network] | str]:
    """Each path of ``PATHS`` for ``model``: a factory of the network for a batch size, or why it
    cannot run here."""
    network = model.model
    cuda = torch.cuda.is_available()
    paths: dict[str, Callable[[int], Network] | str] = {"eager_fp32": lambda batch: network}
    if name not in FLOW_MODELS:
        return paths
    if cuda:
        paths["autocast"] = lambda batch: _autocast(network, "cuda", torch.float16)
    elif reason := torch_bf16_unavailable_reason():
        paths["autocast"] = reason
    else:
        paths["autocast"] = lambda batch: _autocast(network, "cpu", torch.bfloat16)
    compiled = torch.compile(network) if cuda else None
    paths["compile"] = (
        (lambda batch: compiled)
        if cuda
        else ("torch.compile is measured on a GPU only (on a CPU it compiles for minutes per input shape)")
    )
    reason = cuda_graph_unavailable_reason()
    paths["cuda_graph"] = reason or (lambda batch: CudaGraphModel(network, input_shape(model, batch)))
    for path, provider in (("onnxruntime_cuda", "CUDAExecutionProvider"),
                           ("onnxruntime_tensorrt", "TensorrtExecutionProvider")):  # fmt: skip
        paths[path] = _onnxruntime(model, provider, workdir)
    paths["tensorrt_fp16"] = tensorrt_unavailable_reason() or _tensorrt(model, workdir)
    return paths


def _autocast(network: torch.nn.Module, device_type: str, dtype: torch.dtype) -> Network:
    def run(images: torch.Tensor) -> InferenceBatch:
        with torch.autocast(device_type, dtype=dtype):
            return network(images)

    return run


def _onnxruntime(model: AnomalibModule, provider: str, workdir: Path) -> Callable[[int], Network] | str:
    """ONNX Runtime with ``provider`` on the exported model (host arrays in and out), or why not."""
    try:
        import onnxruntime
    except ImportError:
        return "ONNX Runtime is not installed (pip install 'anomalib-fastflow[export]')."
    if provider not in onnxruntime.get_available_providers():
        return f"this ONNX Runtime has no {provider} (onnxruntime-gpu brings it)."
    from ..export.runtimes import OnnxRuntime

    path = model.to_onnx(workdir / f"onnx_{type(model).__name__}")
    session = OnnxRuntime(path, providers=(provider,))
    return lambda batch: _host_runtime(session)


def _tensorrt(model: AnomalibModule, workdir: Path) -> Callable[[int], Network] | str:
    """A TensorRT fp16 engine of the exported model (host arrays in and out)."""
    from ..export.runtimes import TensorRTRuntime
    from ..export.tensorrt import build_engine

    size = tuple(model.input_size)
    onnx_path = model.to_onnx(workdir / f"trt_{type(model).__name__}")
    engine = workdir / f"trt_{type(model).__name__}" / "fp16.engine"
    build_engine(onnx_path, engine, size, fp16=True, batch_sizes=(1, 32, 32))
    runtime = TensorRTRuntime(engine)
    return lambda batch: _host_runtime(runtime)


def _host_runtime(runtime: Callable[[object], dict]) -> Network:
    """A runtime that takes host arrays, called with device tensors: the copies are in its time."""

    def run(images: torch.Tensor) -> InferenceBatch:
        outputs = runtime(images.float().cpu().numpy())
        anomaly_map = torch.from_numpy(outputs["anomaly_map"]) if "anomaly_map" in outputs else None
        return InferenceBatch(pred_score=torch.from_numpy(outputs["pred_score"]), anomaly_map=anomaly_map)

    return run

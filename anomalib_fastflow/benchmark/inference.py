"""Inference cost the paper's way (Table 1): the backbone alone, the whole model, and what it adds.

Every figure is at batch 1 on the same images and threads: a warm-up, then the median (with min and
max) of repeated runs, the backbone and the model taking turns so a slow spell hits both alike.
Both start from the same raw image, so the backbone's figure includes the model's pre-processing
and the additional time is exactly the head: flows, decoders or memory-bank search, and the map.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from anomalib.models.components import AnomalibModule
from torch import nn

from ..export import OnnxRuntime, OpenVINORuntime, TensorRTRuntime, TorchRuntime, build_engine, export_formats
from ..export.availability import runtime_unavailable_reason
from ..export.parity import measure_latencies
from ..export.runtimes import Runtime
from ..timing import Latency
from .baselines import anomalib_fastflow_backbone

TENSORRT_RUNTIMES = {"tensorrt": "tensorrt_fp32", "tensorrt_fp16": "tensorrt_fp16"}


@dataclass(frozen=True)
class InferenceCost:
    """Batch-1 latency of a model and of its backbone in one runtime, and the parameters it adds.

    Attributes:
        runtime: ``torch`` (eager), ``onnxruntime`` (the exported ONNX on ONNX Runtime's CPU
            provider), ``openvino`` (FP32, compiled from the ONNX), ``tensorrt`` or
            ``tensorrt_fp16`` (engines built from the ONNX, on the GPU, copies in and out included).
        backbone: Latency of the backbone alone (features only).
        model: Latency of the whole model: pre-processing, backbone, head, anomaly map, score.
        additional_parameters: Parameters beyond the backbone, counted the paper's way: flows or
            decoders, without the per-scale LayerNorms (PatchCore: 0, its memory bank is data).
        trainable_parameters: Parameters that training updates (norms included).
    """

    runtime: str
    backbone: Latency
    model: Latency
    additional_parameters: int
    trainable_parameters: int

    @property
    def additional_ms(self) -> float:
        """Median time the model adds on top of its backbone."""
        return self.model.median_ms - self.backbone.median_ms


def backbone_of(model: AnomalibModule) -> nn.Module:
    """The feature extractor a model runs its head on (anomalib's Fastflow: the same features as ours)."""
    inner = model.model
    if hasattr(inner, "encoder"):  # CFlow
        return inner.encoder
    if hasattr(inner, "fast_flow_blocks"):  # anomalib Fastflow: its ViT path runs part of the model
        return anomalib_fastflow_backbone(model)
    return inner.feature_extractor


def parameter_counts(model: AnomalibModule) -> tuple[int, int]:
    """(additional parameters the paper's way, trainable parameters) of ``model``."""
    backbone = (
        {id(parameter) for parameter in model.model.feature_extractor.parameters()}
        if hasattr(model.model, "feature_extractor")
        else {id(parameter) for parameter in model.model.encoder.parameters()}
    )
    norms = {
        id(p)
        for module in model.model.modules()
        if isinstance(module, nn.LayerNorm)
        for p in module.parameters()
    }
    additional = sum(p.numel() for p in model.model.parameters() if id(p) not in backbone | norms)
    trainable = sum(p.numel() for p in model.model.parameters() if p.requires_grad)
    return additional, trainable


class PreProcessedBackbone(nn.Module):
    """The model's pre-processing followed by its backbone: raw ``(N, 3, H, W)`` images -> features."""

    def __init__(self, model: AnomalibModule) -> None:
        super().__init__()
        self.transform = model.pre_processor.export_transform
        self.backbone = backbone_of(model)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Features of the backbone (whatever structure it returns)."""
        return self.backbone(self.transform(images))


class ModuleRuntime:
    """A module as a runtime: ``(N, 3, H, W)`` arrays in, outputs ignored (for timing)."""

    precision = "f32"

    def __init__(self, module: nn.Module) -> None:
        self.module = module.eval()

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self.module(torch.from_numpy(images))
        return {}


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot run on this machine (e.g. TensorRT without a GPU); the message says why."""


def backbone_onnx(module: nn.Module, image_size: tuple[int, int], output: Path) -> Path:
    """The backbone exported to ``output/backbone.onnx`` with a free batch axis, as the models'
    graphs have (legacy exporter: exact and quick)."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / "backbone.onnx"
    torch.onnx.export(
        module.eval(),
        (torch.zeros(1, 3, *image_size),),
        path,
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        dynamic_axes={"image": {0: "batch"}},
    )
    return path


def _exported(model: AnomalibModule, export_format: str, output: Path, exports: dict[str, Path]) -> Path:
    """``model`` in ``export_format`` (batch 1), from ``exports`` or exported now and added to it.

    The ONNX graph is exported once per model and reused by every later format: exporting takes
    tens of seconds per model on a CPU.
    """
    if export_format not in exports:
        paths, _ = export_formats(
            model,
            output / "model",
            [export_format],
            tensorrt_batch_sizes=(1, 1, 1),
            onnx_path=exports.get("onnx"),
        )
        exports.update(paths)
    return exports[export_format]


def _runtimes(
    model: AnomalibModule, runtime: str, image_size: tuple[int, int], output: Path, exports: dict[str, Path]
) -> dict[str, Runtime]:
    """The backbone alone and the whole model, loaded in ``runtime``.

    Raises:
        RuntimeUnavailable: The runtime cannot run here (no GPU, or its extra is not installed).
        ValueError: An unknown runtime.
    """
    if reason := runtime_unavailable_reason(runtime):
        raise RuntimeUnavailable(reason)
    backbone = PreProcessedBackbone(model).eval()
    if runtime == "torch":
        return {"backbone": ModuleRuntime(backbone), "model": TorchRuntime(model)}
    if runtime == "onnxruntime":
        model_path = _exported(model, "onnx", output, exports)
        return {
            "backbone": OnnxRuntime(backbone_onnx(backbone, image_size, output)),
            "model": OnnxRuntime(model_path),
        }
    if runtime == "openvino":
        model_path = _exported(model, "openvino_fp32", output, exports)
        return {
            "backbone": OpenVINORuntime(backbone_onnx(backbone, image_size, output)),
            "model": OpenVINORuntime(model_path),
        }
    if runtime in TENSORRT_RUNTIMES:
        fp16 = runtime == "tensorrt_fp16"
        model_path = _exported(model, TENSORRT_RUNTIMES[runtime], output, exports)
        engine = build_engine(
            backbone_onnx(backbone, image_size, output),
            output / f"backbone_{runtime}.engine",
            image_size,
            fp16,
        )
        return {"backbone": TensorRTRuntime(engine, fp16), "model": TensorRTRuntime(model_path, fp16)}
    msg = f"Unknown runtime {runtime!r}: choose from {['torch', 'onnxruntime', 'openvino', *TENSORRT_RUNTIMES]}."
    raise ValueError(msg)


def inference_cost(
    model: AnomalibModule,
    images: np.ndarray,
    runtime: str,
    output: Path,
    warmup: int = 3,
    repeats: int = 20,
    exports: dict[str, Path] | None = None,
) -> InferenceCost:
    """Measure ``model`` and its backbone in ``runtime`` on ``images`` ``(N, 3, H, W)`` in ``[0, 1]``.

    ``exports`` (format -> file) collects the model's exports: pass the same dict for every
    runtime of one model, so that its ONNX graph is exported once.

    Raises:
        ValueError: Unknown runtime.
        RuntimeUnavailable: The runtime cannot run here (TensorRT without its package or a GPU).
    """
    runtimes = _runtimes(
        model.eval(), runtime, tuple(images.shape[-2:]), output, {} if exports is None else exports
    )
    latencies = measure_latencies(runtimes, images[:1], 1, repeats, warmup)
    additional, trainable = parameter_counts(model)
    return InferenceCost(runtime, latencies["backbone"], latencies["model"], additional, trainable)

"""How our OpenVINO models are compiled: at the precision asked for, at a fixed batch, on any CPU.

OpenVINO's CPU plugin picks its inference precision from the host: on CPUs with AVX-512 BF16 or
AMX, ``INFERENCE_PRECISION_HINT`` defaults to bf16, so an IR saved in FP32 runs in bf16 unless
``compile_model`` is told otherwise (the hint is not read from the IR's ``rt_info``). And our IR
takes any batch and image size, but a dynamic batch axis slows OpenVINO down at batch 1
(``docs/openvino_settings.md``); fixing the batch alone (image size still free) removes it.
Everything here passes the precision explicitly, fixes the batch, and reads back what runs:

- ``compile_model``: an IR compiled at an explicit inference precision and batch size;
- ``compiled_precision``: the precision the compiled model's convolutions actually run in;
- ``weights_precision``: what an IR stores (``fp32``, ``fp16``, ``int8``, or ``bf16``: FP32 weights
  with the image's first stage marked to stay f32, ``mixed_precision``).

anomalib's ``OpenVINOInferencer`` set up the same way is ``inferencers.openvino_inferencer``.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .mixed_precision import keeps_stem_f32

if TYPE_CHECKING:
    import openvino

InferencePrecision = Literal["f32", "bf16"]
Precision = Literal["fp32", "fp16", "int8", "bf16"]
# An inferencer's precision -> (what the IR must store, the precision it is compiled at).
PRECISIONS: dict[str, tuple[str, InferencePrecision]] = {
    "fp32": ("fp32", "f32"),
    "fp16": ("fp16", "f32"),
    "int8": ("int8", "f32"),
    "bf16": ("bf16", "bf16"),
}
# Devices that stand for others (OpenVINO's virtual devices) rather than hardware.
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")
# Our graph's outputs (anomalib's InferenceBatch fields). OpenVINO may give a compiled output more
# names (a folded layer's too, as it does at a fixed batch), so outputs are named by these.
OUTPUT_NAMES = ("pred_score", "pred_label", "anomaly_map", "pred_mask")
COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution")


def output_name(names: set[str]) -> str:
    """The name of a compiled model's output among its tensor names: our graph's, else the first in order."""
    ours = [name for name in OUTPUT_NAMES if name in names]
    return ours[0] if ours else sorted(names)[0]


def precision_config(inference_precision: InferencePrecision, device: str = "CPU") -> dict[str, object]:
    """``compile_model`` settings for ``inference_precision`` on ``device``.

    On the CPU, thread pinning is off as well: pinned OpenVINO threads collide with other threads
    of the same process (torch's, or another compiled model's), and latencies then swing from run
    to run on a small machine (``docs/openvino_settings.md``).
    """
    config: dict[str, object] = {"INFERENCE_PRECISION_HINT": inference_precision}
    if device == "CPU":
        config["ENABLE_CPU_PINNING"] = False
    return config


def check_device(device: str, core: "openvino.Core | None" = None) -> None:
    """Raise ``ValueError`` naming ``device`` and the devices OpenVINO sees when it is not one of them."""
    import openvino

    available = (core or openvino.Core()).available_devices
    name = device.split(":")[0].split(".")[0]
    if name not in VIRTUAL_DEVICES and device not in available and name not in available:
        msg = f"OpenVINO device {device!r} does not exist on this machine; it sees {available}."
        raise ValueError(msg)


def read_model(
    path: Path | str, batch_size: int | None = None, core: "openvino.Core | None" = None
) -> "openvino.Model":
    """The model in ``path`` (IR or ONNX), its batch axis fixed to ``batch_size`` (None: as saved)."""
    import openvino

    model = (core or openvino.Core()).read_model(str(path))
    if batch_size is not None:
        shape = model.inputs[0].get_partial_shape()
        shape[0] = batch_size
        model.reshape({model.inputs[0]: shape})
    return model


def compile_model(
    path: Path | str,
    device: str = "CPU",
    inference_precision: InferencePrecision = "f32",
    config: dict | None = None,
    batch_size: int | None = None,
) -> "openvino.CompiledModel":
    """``path`` compiled for ``device`` at ``inference_precision`` and ``batch_size``, plus ``config``."""
    import openvino

    core = openvino.Core()  # one per compile: each Core loads its own plugins
    check_device(device, core)
    settings = {**precision_config(inference_precision, device), **(config or {})}
    return core.compile_model(read_model(path, batch_size, core), device, settings)


def compiled_precision(compiled: "openvino.CompiledModel") -> str:
    """The activations' type at the compiled model's convolutions and matrix products (``f32``, ``bf16``...).

    Read from the runtime graph (the type of each such layer's data input: an FP16 IR compiled
    at f32 shows ``f16`` as the layers' ``runtimePrecision``, for their weights, but runs ``f32``
    activations); falls back to the compiled ``INFERENCE_PRECISION_HINT`` where the graph does
    not say. Several types are joined by ``+``.
    """
    found = set()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in COMPUTE_LAYERS:
            found.add(op.input_value(0).get_element_type().get_type_name())
    if found:
        return "+".join(sorted(found, key=lambda name: (name in ("f32", "fp32"), name)))
    return compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()


def weights_precision(path: Path | str) -> str:
    """What an IR (or ONNX file) stores: ``int8`` (quantized or compressed), ``fp16``, ``bf16`` or ``fp32``.

    ``bf16`` is our ``openvino_bf16`` export: FP32 weights, the image's first stage marked f32.
    """
    import openvino

    model = openvino.Core().read_model(str(path))
    ops = model.get_ops()
    if any(op.get_type_name() == "FakeQuantize" for op in ops):
        return "int8"
    weights = {
        op.get_output_element_type(0).get_type_name()
        for op in ops
        if op.get_type_name() == "Constant" and op.get_output_partial_shape(0).rank.get_length() >= 2
    }
    if weights & {"i8", "u8", "i4", "u4"}:
        return "int8"
    if "f16" in weights:
        return "fp16"
    return "bf16" if keeps_stem_f32(model) else "fp32"

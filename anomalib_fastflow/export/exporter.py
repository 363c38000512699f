"""Export a trained FastFlow to ONNX, OpenVINO (FP32, FP16, INT8, bf16) and TensorRT (FP32, FP16).

ONNX comes from anomalib's exporter (pre- and post-processing inside the graph, dynamic batch and
image size: the graph resizes any RGB image to the model's input size); OpenVINO converts that
ONNX file, which keeps every op exact (the direct PyTorch conversion is avoided). Two INT8
variants, both NNCF: ``openvino_int8`` compresses weights to INT8 (activations stay floating
point; needs no data), ``openvino_int8_ptq`` quantises weights and activations, calibrated on
normal images only. ``openvino_bf16`` holds FP32 weights with the image's first stage marked
to stay f32 (``mixed_precision``), to be compiled at bf16 inference precision: the rest of the
model runs bf16 where the CPU has it (every other OpenVINO format runs at f32, whatever the CPU's
default). All but PTQ run the flows' narrow channel permutations as 1x1 convolutions, which
OpenVINO's CPU plugin runs faster than the ``Gather`` they replace (``..channel_permutation``). The
flows' density estimate is sensitive to small feature shifts, so the export command reports each
format's AUROC drop next to its speed.
TensorRT engines are built from the same ONNX file.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from anomalib.models.components import AnomalibModule

from ..channel_permutation import permutations_as_convolutions
from ..extras import require
from .availability import tensorrt_unavailable_reason
from .mixed_precision import keep_stem_f32
from .runtimes import OnnxRuntime, OpenVINORuntime, Runtime, TensorRTRuntime
from .tensorrt import build_engine

if TYPE_CHECKING:
    import openvino

OPENVINO_FORMATS = ("openvino_fp32", "openvino_fp16", "openvino_int8", "openvino_int8_ptq", "openvino_bf16")
TENSORRT_FORMATS = ("tensorrt_fp32", "tensorrt_fp16")
FORMATS = ("onnx", *OPENVINO_FORMATS, *TENSORRT_FORMATS)
# What writing each format needs from the ``export`` extra (every format starts from the ONNX file;
# TensorRT is its own extra, and a missing one skips its formats with the reason).
WRITE_MODULES = {"onnx": ("onnx", "onnxscript"), "openvino_int8": ("nncf",), "openvino_int8_ptq": ("nncf",)}
# What running each format needs.
RUN_MODULES = {"onnx": ("onnxruntime",), **dict.fromkeys(OPENVINO_FORMATS, ("openvino",))}


def require_export_extra(formats: Sequence[str], run: bool = False) -> None:
    """Raise ``MissingExtraError`` (one line: what to install) unless ``formats`` can be written (and run)."""
    needs = {*WRITE_MODULES["onnx"]}
    for name in formats:
        needs.update(WRITE_MODULES.get(name, ()))
        needs.update(("openvino",) if name in OPENVINO_FORMATS else ())
        needs.update(RUN_MODULES.get(name, ()) if run else ())
    require("export", sorted(needs), f"Export to {', '.join(formats)}")


def export_formats(
    model: AnomalibModule,
    output: Path,
    formats: Sequence[str] = FORMATS,
    calibration_images: np.ndarray | None = None,
    tensorrt_batch_sizes: tuple[int, int, int] = (1, 8, 8),
    onnx_path: Path | None = None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Write each requested format under ``output``.

    Args:
        model: Trained model with a fixed input size (TensorRT engines take images of that size).
        output: Folder for the exported files.
        formats: Names from ``FORMATS``; ``onnx`` is always written (the others start from it).
        calibration_images: Normal images ``(N, 3, H, W)`` to calibrate ``openvino_int8_ptq``.
        tensorrt_batch_sizes: ``(min, opt, max)`` batch of the TensorRT engines.
        onnx_path: An ONNX export of this same model to start from, instead of exporting again.

    Returns:
        The written files by format, and the skipped formats with the reason (TensorRT without a
        GPU, bf16 where OpenVINO cannot run it).

    Raises:
        ValueError: An unknown format, PTQ without calibration images, or no input size.
        MissingExtraError: A package of the ``export`` extra that these formats need is missing.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        msg = f"Unknown export formats {unknown}; choose from {list(FORMATS)}."
        raise ValueError(msg)
    require_export_extra(formats)
    if "openvino_int8_ptq" in formats and calibration_images is None:
        msg = "openvino_int8_ptq needs calibration_images (a few normal images)."
        raise ValueError(msg)
    if model.input_size is None:
        msg = "The model has no fixed input size to export with; give it a pre-processor that resizes."
        raise ValueError(msg)
    output = Path(output)
    # opset 18 is what torch's exporter writes; asking for it skips a failing down-conversion.
    paths = {"onnx": Path(onnx_path) if onnx_path else model.to_onnx(output, opset_version=18)}
    skipped: dict[str, str] = {}
    openvino_formats = [name for name in OPENVINO_FORMATS if name in formats]
    if openvino_formats:
        import openvino

        ov_model = openvino.convert_model(paths["onnx"])
        for name in openvino_formats:
            converted = _convert(ov_model, name, calibration_images, tuple(model.input_size))
            paths[name] = output / name / "model.xml"
            openvino.save_model(converted, paths[name], compress_to_fp16=name == "openvino_fp16")
    for name in (name for name in TENSORRT_FORMATS if name in formats):
        reason = tensorrt_unavailable_reason()
        if reason:
            skipped[name] = reason
            continue
        engine = output / name / "model.engine"
        paths[name] = build_engine(
            paths["onnx"],
            engine,
            tuple(model.input_size),
            fp16=name == "tensorrt_fp16",
            batch_sizes=tensorrt_batch_sizes,
        )
    return paths, skipped


def _convert(
    ov_model: "openvino.Model", name: str, calibration_images: np.ndarray | None, input_size: tuple[int, int]
) -> "openvino.Model":
    """The OpenVINO model for format ``name`` (``ov_model`` itself is left as converted).

    PTQ quantises weights and activations, calibrated on ``calibration_images``. Every other
    format gets the flows' narrow channel permutations as 1x1 convolutions (``channel_permutation``),
    and bf16 its first stage marked f32 as well.
    """
    if name == "openvino_bf16":
        marked = ov_model.clone()
        keep_stem_f32(marked, input_size)
        permutations_as_convolutions(marked)
        return marked
    if name == "openvino_int8_ptq":
        import nncf

        calibration = nncf.Dataset([image[None] for image in calibration_images])
        return nncf.quantize(ov_model, calibration, subset_size=len(calibration_images))
    if name == "openvino_int8":
        import nncf

        converted = nncf.compress_weights(ov_model.clone())
    else:
        converted = ov_model.clone()
    permutations_as_convolutions(converted)
    return converted


def load_runtime(name: str, path: Path) -> Runtime:
    """The runtime that runs format ``name`` from ``path``.

    Raises:
        MissingExtraError: The runtime's package (from the ``export`` extra) is missing.
        ValueError: An unknown format.
    """
    if name in RUN_MODULES:
        require("export", RUN_MODULES[name], f"Running {name}")
    if name == "onnx":
        return OnnxRuntime(path)
    if name in OPENVINO_FORMATS:
        return OpenVINORuntime(path, inference_precision="bf16" if name == "openvino_bf16" else "f32")
    if name in TENSORRT_FORMATS:
        return TensorRTRuntime(path, fp16=name == "tensorrt_fp16")
    msg = f"Unknown export format {name!r}; choose from {list(FORMATS)}."
    raise ValueError(msg)

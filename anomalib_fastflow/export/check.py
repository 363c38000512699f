"""Export a checkpoint to every format asked for and check each against PyTorch eager on a test split.

``export_and_check`` is what ``anomalib-fastflow export`` runs, callable from Python.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import read_fastflow_checkpoint
from ..data.arrays import split_arrays
from ..errors import require_at_least
from ..lightning_model import FastFlow
from ..provenance import provenance
from .availability import openvino_bf16_unavailable_reason, torch_bf16_unavailable_reason
from .exporter import FORMATS, export_formats, load_runtime, require_export_extra
from .parity import ParityRow, format_report, parity_report
from .runtimes import TorchRuntime


@dataclass(frozen=True)
class ExportCheck:
    """What ``export_and_check`` measured: a row per format, the formats it skipped and why, and
    the report it wrote (``report_path``, whose text is ``report``)."""

    rows: list[ParityRow]
    skipped: dict[str, str]
    report_path: Path
    report: str


def export_and_check(
    ckpt_path: Path,
    data_root: Path,
    category: str,
    output: Path = Path("results/export"),
    formats: list[str] = list(FORMATS),
    torch_bf16: bool = True,
    calibration_images: int = 32,
    repeats: int = 20,
) -> ExportCheck:
    """Export a FastFlow checkpoint and check every format against PyTorch on a test split.

    Prints, per format: the precision it runs in (read back from OpenVINO's compiled model),
    max/mean absolute anomaly-map difference to PyTorch eager, image AUROC and its drop, latency
    (median, min-max) and FPS at batch 1 and 8. Formats that cannot run here (TensorRT without a
    GPU, bf16 where the CPU has none: its file is still written) are listed with the reason. The
    table goes to ``output/parity.md`` with the command, the CPU and the package versions that
    made it.

    Args:
        ckpt_path: Lightning checkpoint of ``anomalib_fastflow.FastFlow``.
        data_root: Dataset root in MVTec AD layout.
        category: Category whose ``test`` split is compared and whose ``train`` images calibrate INT8.
        output: Folder for the exported models and the report.
        formats: Any of onnx, openvino_fp32, openvino_fp16, openvino_int8, openvino_int8_ptq,
            openvino_bf16 (bf16 but for the image's first stage), tensorrt_fp32, tensorrt_fp16.
        torch_bf16: Also compare PyTorch eager under bf16 CPU autocast (where oneDNN has bf16).
        calibration_images: Normal training images used to calibrate ``openvino_int8_ptq``.
        repeats: Timed runs per latency figure (after two warm-up runs).

    Raises:
        MissingExtraError: A format's runtime is not installed (the message names the extra).
        InputError: Not a FastFlow checkpoint, fewer than 1 repeat or calibration image.
    """
    require_export_extra(formats, run=True)
    require_at_least("repeats", repeats, 1, "the timed runs per latency figure")
    require_at_least("calibration_images", calibration_images, 1, "the images that calibrate INT8")
    model = FastFlow.from_checkpoint(read_fastflow_checkpoint(ckpt_path, FastFlow.checkpoint_safe_globals()))
    size = tuple(model.input_size)
    images, labels = split_arrays(data_root, category, "test", size)
    normal_images, _ = split_arrays(data_root, category, "train", size)
    paths, skipped = export_formats(model, output, formats, normal_images[:calibration_images])
    if "openvino_bf16" in paths and (reason := openvino_bf16_unavailable_reason()):
        skipped["openvino_bf16"] = f"{reason} (written to {paths.pop('openvino_bf16')}, not measured)"
    runtimes = {name: load_runtime(name, path) for name, path in paths.items()}
    if torch_bf16:
        if reason := torch_bf16_unavailable_reason():
            skipped["torch_bf16"] = reason
        else:
            runtimes["torch_bf16"] = TorchRuntime(model, autocast_dtype=torch.bfloat16)
    rows = parity_report(TorchRuntime(model), runtimes, images, labels, repeats=repeats)
    table = format_report(rows) + "".join(
        f"\n\n{name}: skipped: {reason}" for name, reason in skipped.items()
    )
    heading = f"{provenance()}\n\nParity against PyTorch eager on {len(images)} test images of {category}:"
    report = f"{heading}\n\n{table}\n"
    report_path = Path(output) / "parity.md"
    report_path.write_text(report)
    return ExportCheck(rows, skipped, report_path, report)

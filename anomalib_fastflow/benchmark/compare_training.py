"""Our FastFlow and anomalib's Fastflow trained side by side: accuracy, time, memory, seconds per epoch.

``compare_training`` is what ``anomalib-fastflow compare-training`` runs, callable from Python.
"""

from pathlib import Path

from ..backbones import OFFLINE_BACKBONE, PRESETS, PRETRAINED_WEIGHTS
from .datasets import DataSpec
from .epoch_time import format_epoch_times, measure_epoch_times, write_epoch_seconds
from .versus_anomalib import compare_with_anomalib_fastflow


def compare_training(
    data: DataSpec = DataSpec(),
    output: Path = Path("results/compare_training"),
    backbone: str = OFFLINE_BACKBONE,
    weights: str = PRETRAINED_WEIGHTS,
    epochs: int = 25,
    seed: int = 0,
    epoch_time_backbones: list[str] = list(PRESETS),
    epoch_time_images: int = 4,
    epoch_time_epochs: int = 8,
    epoch_time_rounds: int = 5,
) -> str:
    """Train our FastFlow and anomalib's Fastflow side by side and return both tables.

    1. Per category of ``data``: both models on ``backbone`` for ``epochs`` epochs (same data,
       input size, seed): image/pixel AUROC, fit wall time, training seconds per epoch, peak memory,
       and the wall time ours needs to reach anomalib's final image AUROC. Written to
       ``output/comparison.md`` and ``comparison.csv``; ``--epochs 0`` skips it.
    2. Per backbone preset of ``epoch_time_backbones`` (random weights, a training set of the
       first ``epoch_time_images`` images of the first category): seconds per epoch, ours /
       anomalib's, each the median of the epochs after the first, in interleaved rounds (the
       table gives medians over rounds). Written to ``output/epoch_time.md``, every epoch's
       seconds to ``output/epoch_time.csv``; ``--epoch_time_backbones []`` skips it (CaiT-M48
       takes minutes per epoch on a CPU).

    Args:
        data: Dataset and categories, e.g. ``--data.name MVTec --data.root datasets/MVTecAD
            --data.categories [bottle]``; the default is the demo data (built when missing).
        output: Folder for the runs and the tables.
        backbone: Backbone of the accuracy comparison.
        weights: Backbone weights of the accuracy comparison: ``pretrained``, ``random`` or a file.
        epochs: Training epochs of both models (0: only the seconds per epoch per preset).
        seed: Seed of data order and initialisation, the same for both.
        epoch_time_backbones: Presets whose seconds per epoch are compared.
        epoch_time_images: Training images (one batch, the same every epoch) for that comparison.
        epoch_time_epochs: Epochs per model and preset for that comparison (at least 2).
        epoch_time_rounds: Interleaved runs of both models per preset (ours, anomalib's, ...).

    Returns:
        Both tables as written (``comparison.md``, ``epoch_time.md``), the skipped ones left out.
    """
    reports = []
    if epochs > 0:
        compare_with_anomalib_fastflow(data, output, backbone, weights, epochs, seed)
        reports.append((output / "comparison.md").read_text())
    if epoch_time_backbones:
        rows = measure_epoch_times(
            epoch_time_backbones,
            data,
            output / "epoch_time",
            epoch_time_images,
            epoch_time_epochs,
            seed,
            epoch_time_rounds,
        )
        title = f"Seconds per training epoch (random weights, {epoch_time_images} images)"
        report = f"{title}:\n\n{format_epoch_times(rows)}\n"
        (output / "epoch_time.md").write_text(report)
        write_epoch_seconds(rows, output / "epoch_time.csv")
        reports.append(report)
    return "\n".join(reports)

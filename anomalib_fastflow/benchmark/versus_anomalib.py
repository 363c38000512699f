"""Our FastFlow against anomalib's ``Fastflow``: same data, backbone, input size, epochs and seed.

Per category, both models train with anomalib's ``Engine`` as a user would run them (each with its
own defaults: anomalib's validates on the test split after every epoch, ours once at the end) and
are tested by anomalib's evaluator. Ours is also scored after each epoch to find its time to
accuracy; that measurement is not timed and changes nothing in the run.
"""

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ..backbones import OFFLINE_BACKBONE, PRETRAINED_WEIGHTS
from ..lightning_model import FastFlow
from .baselines import anomalib_fastflow, describe
from .datasets import DataSpec
from .training import TrainingResult, seeded, train_and_test


@dataclass
class ComparisonRow:
    """One category: both models' results and ours / anomalib's ratios."""

    category: str
    epochs: int
    ours_image_auroc: float
    theirs_image_auroc: float
    ours_pixel_auroc: float
    theirs_pixel_auroc: float
    ours_fit_seconds: float
    theirs_fit_seconds: float
    ours_seconds_per_epoch: float
    theirs_seconds_per_epoch: float
    ours_peak_memory_mb: float
    theirs_peak_memory_mb: float
    ours_seconds_to_their_auroc: float | None

    @property
    def time_to_accuracy_ratio(self) -> float | None:
        """Our wall time to reach their final image AUROC / their wall time for all epochs."""
        if self.ours_seconds_to_their_auroc is None:
            return None
        return self.ours_seconds_to_their_auroc / self.theirs_fit_seconds

    @property
    def epoch_time_ratio(self) -> float:
        """Our training seconds per epoch / theirs."""
        return self.ours_seconds_per_epoch / self.theirs_seconds_per_epoch


def _row(category: str, epochs: int, ours: TrainingResult, theirs: TrainingResult) -> ComparisonRow:
    return ComparisonRow(
        category=category,
        epochs=epochs,
        ours_image_auroc=ours.image_auroc,
        theirs_image_auroc=theirs.image_auroc,
        ours_pixel_auroc=ours.pixel_auroc,
        theirs_pixel_auroc=theirs.pixel_auroc,
        ours_fit_seconds=ours.fit_seconds,
        theirs_fit_seconds=theirs.fit_seconds,
        ours_seconds_per_epoch=ours.seconds_per_epoch,
        theirs_seconds_per_epoch=theirs.seconds_per_epoch,
        ours_peak_memory_mb=ours.peak_memory_mb,
        theirs_peak_memory_mb=theirs.peak_memory_mb,
        ours_seconds_to_their_auroc=ours.seconds_to_reach(theirs.image_auroc),
    )


def format_comparison(rows: list[ComparisonRow], header: str) -> str:
    """Markdown table of the rows, a mean row, and the line saying how anomalib's model was built."""

    def ratio(value: float | None) -> str:
        return "not reached" if value is None else f"{value:.2f}x"

    def metric(value: float) -> str:  # NaN: a dataset without masks has no pixel metrics
        return "-" if math.isnan(value) else f"{value:.4f}"

    lines = [
        header,
        "",
        "| category | image AUROC ours / anomalib | pixel AUROC ours / anomalib | fit wall s ours / anomalib "
        "| train s/epoch ours / anomalib (ratio) | peak MB ours / anomalib | time to anomalib's image AUROC "
        "(ratio to its fit) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        reach = (
            "not reached"
            if row.ours_seconds_to_their_auroc is None
            else f"{row.ours_seconds_to_their_auroc:.1f} s"
        )
        lines.append(
            f"| {row.category} | {row.ours_image_auroc:.4f} / {row.theirs_image_auroc:.4f} "
            f"| {metric(row.ours_pixel_auroc)} / {metric(row.theirs_pixel_auroc)} "
            f"| {row.ours_fit_seconds:.1f} / {row.theirs_fit_seconds:.1f} "
            f"| {row.ours_seconds_per_epoch:.2f} / {row.theirs_seconds_per_epoch:.2f} ({row.epoch_time_ratio:.2f}x) "
            f"| {row.ours_peak_memory_mb:.0f} / {row.theirs_peak_memory_mb:.0f} "
            f"| {reach} ({ratio(row.time_to_accuracy_ratio)}) |"
        )
    count = len(rows)
    ours_image = sum(r.ours_image_auroc for r in rows) / count
    theirs_image = sum(r.theirs_image_auroc for r in rows) / count
    ours_pixel = sum(r.ours_pixel_auroc for r in rows) / count
    theirs_pixel = sum(r.theirs_pixel_auroc for r in rows) / count
    lines.append(
        f"| mean | {ours_image:.4f} / {theirs_image:.4f} "
        f"| {metric(ours_pixel)} / {metric(theirs_pixel)} "
        f"| {sum(r.ours_fit_seconds for r in rows):.1f} / {sum(r.theirs_fit_seconds for r in rows):.1f} (sum) "
        f"| {sum(r.epoch_time_ratio for r in rows) / count:.2f}x | | |"
    )
    return "\n".join(lines)


def compare_with_anomalib_fastflow(
    data: DataSpec,
    output: Path,
    backbone: str = OFFLINE_BACKBONE,
    weights: str = PRETRAINED_WEIGHTS,
    epochs: int = 25,
    seed: int = 0,
) -> list[ComparisonRow]:
    """Train both models per category; write ``comparison.md`` and ``comparison.csv`` under ``output``."""
    rows, built = [], ""
    for category in data.categories:
        their_model = seeded(lambda: anomalib_fastflow(backbone, weights), seed)
        built = built or describe(their_model)
        theirs = train_and_test(their_model, data.datamodule(category, seed), epochs, output / "theirs", seed)
        ours = train_and_test(
            seeded(lambda: FastFlow(backbone, weights=weights), seed),
            data.datamodule(category, seed),
            epochs,
            output / "ours",
            seed,
            evaluate_each_epoch=True,
        )
        rows.append(_row(category, epochs, ours, theirs))
    header = (
        f"Ours vs anomalib Fastflow: {backbone} ({weights} weights), {epochs} epochs, batch {data.batch_size}, "
        f"seed {seed}, {data.name} data in {data.root}.\nanomalib's model: {built}."
    )
    report = format_comparison(rows, header)
    output.mkdir(parents=True, exist_ok=True)
    (output / "comparison.md").write_text(report + "\n")
    with (output / "comparison.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    return rows

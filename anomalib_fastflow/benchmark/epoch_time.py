"""Seconds per training epoch, ours vs anomalib's ``Fastflow``, for every backbone preset.

Both train on the same few images (the whole training set of the run: one batch per epoch, the
same images every epoch; no validation) with random backbone weights: only time is measured. Ours
runs without augmentation, so its first epoch fills the feature cache and the later ones read it.
A run's steady epoch is the median of its epochs after the first, for both models (the first
epochs also warm up allocators and kernels; the median, unlike the mean, ignores the odd epoch a
shared machine slows by a third, which happens to either model).

The two models run in interleaved rounds (ours, anomalib's, ours, anomalib's, ...) and each ratio
is the median over rounds, so a slow spell of a shared machine lands on both sides of a round
instead of on one model. The table also gives the mean epoch of a longer run with augmentation,
from the same measured figures (``views`` epochs that fill, the rest cached).
"""

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..backbones import RANDOM_WEIGHTS
from ..lightning_model import FastFlow
from .baselines import anomalib_fastflow
from .datasets import DataSpec
from .training import seeded, train_and_test

RoundFigure = Literal["ours_first_epoch", "ours_cached_epoch", "theirs_epoch", "cached_ratio"]


@dataclass
class EpochTimeRound:
    """One round: our run then anomalib's, each ``epochs`` long, with every epoch's seconds."""

    ours_epochs: list[float]
    theirs_epochs: list[float]

    @property
    def ours_first_epoch(self) -> float:
        """Our first epoch, which fills the feature cache."""
        return self.ours_epochs[0]

    @property
    def ours_cached_epoch(self) -> float:
        """Our steady epoch: the median of the epochs after the first (features from the cache)."""
        return statistics.median(self.ours_epochs[1:])

    @property
    def theirs_epoch(self) -> float:
        """anomalib's steady epoch: the median of the epochs after the first."""
        return statistics.median(self.theirs_epochs[1:])

    def ratio(self, epochs: int, views: int) -> float:
        """Our mean epoch / theirs over a run of ``epochs`` with ``views`` augmented views per image."""
        filling = min(views, epochs)
        ours = (filling * self.ours_first_epoch + (epochs - filling) * self.ours_cached_epoch) / epochs
        return ours / self.theirs_epoch

    @property
    def cached_ratio(self) -> float:
        """Our steady (cached) epoch / theirs."""
        return self.ours_cached_epoch / self.theirs_epoch


@dataclass
class EpochTimeRow:
    """Measured epoch seconds for one backbone preset, one entry per round."""

    backbone: str
    images: int
    epochs: int
    rounds: list[EpochTimeRound]

    def median(self, figure: RoundFigure) -> float:
        """Median over rounds of one of ``EpochTimeRound``'s seconds or ``cached_ratio``."""
        return statistics.median(getattr(measured, figure) for measured in self.rounds)

    def ratio(self, epochs: int, views: int) -> float:
        """Median over rounds of ``EpochTimeRound.ratio``."""
        return statistics.median(measured.ratio(epochs, views) for measured in self.rounds)


def measure_epoch_times(
    backbones: list[str],
    data: DataSpec,
    output: Path,
    images: int = 4,
    epochs: int = 8,
    seed: int = 0,
    rounds: int = 5,
) -> list[EpochTimeRow]:
    """Train both models ``rounds`` times per backbone, ``epochs`` epochs on ``images`` images (one batch).

    Raises:
        ValueError: Fewer than 2 epochs (no steady-state epoch to measure) or no round.
    """
    if epochs < 2:
        msg = f"epochs={epochs}: the seconds per epoch need at least 2 epochs (the first fills the cache)."
        raise ValueError(msg)
    if rounds < 1:
        msg = f"rounds={rounds}: the seconds per epoch need at least one round."
        raise ValueError(msg)
    data = DataSpec(data.name, data.root, data.categories[:1], batch_size=images)
    category = data.categories[0]
    limits = {"limit_val_batches": 0, "test": False}
    rows = []
    for backbone in backbones:
        measured = []
        for _ in range(rounds):
            ours = seeded(lambda: FastFlow(backbone, weights=RANDOM_WEIGHTS, augmentation="none"), seed)
            ours_run = train_and_test(
                ours, data.datamodule(category, seed, images), epochs, output / "ours", seed, **limits
            )
            theirs = seeded(lambda: anomalib_fastflow(backbone, RANDOM_WEIGHTS), seed)
            theirs_run = train_and_test(
                theirs, data.datamodule(category, seed, images), epochs, output / "theirs", seed, **limits
            )
            measured.append(
                EpochTimeRound(ours_epochs=ours_run.epoch_seconds, theirs_epochs=theirs_run.epoch_seconds)
            )
        rows.append(EpochTimeRow(backbone=backbone, images=images, epochs=epochs, rounds=measured))
    return rows


def format_epoch_times(rows: list[EpochTimeRow], views: int = 4) -> str:
    """Markdown table: medians over rounds of the epoch seconds and of the ratios ours/theirs.

    "ratio cached" also gives the lowest and highest round.
    """
    lines = [
        f"| backbone | images | epochs x rounds | ours 1st epoch s | ours cached epoch s | anomalib epoch s "
        f"| ratio cached (rounds' range) | ratio 25 epochs ({views} views) "
        f"| ratio 500 epochs ({views} views) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cached_ratios = [measured.cached_ratio for measured in row.rounds]
        lines.append(
            f"| {row.backbone} | {row.images} | {row.epochs} x {len(row.rounds)} "
            f"| {row.median('ours_first_epoch'):.2f} | {row.median('ours_cached_epoch'):.2f} "
            f"| {row.median('theirs_epoch'):.2f} "
            f"| {row.median('cached_ratio'):.2f}x ({min(cached_ratios):.2f}-{max(cached_ratios):.2f}) "
            f"| {row.ratio(25, views):.2f}x | {row.ratio(500, views):.2f}x |"
        )
    return "\n".join(lines)


def write_epoch_seconds(rows: list[EpochTimeRow], path: Path) -> None:
    """Every measured epoch as a CSV row: backbone, round, model (``ours``/``anomalib``), epoch, seconds."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["backbone", "round", "model", "epoch", "seconds"])
        for row in rows:
            for number, measured in enumerate(row.rounds):
                for model, epochs in (("ours", measured.ours_epochs), ("anomalib", measured.theirs_epochs)):
                    writer.writerows(
                        [row.backbone, number, model, epoch, seconds] for epoch, seconds in enumerate(epochs)
                    )

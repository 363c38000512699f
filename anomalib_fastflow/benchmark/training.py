"""Train and test one anomalib model the way a user would, and record what it cost."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from anomalib.callbacks.checkpoint import ModelCheckpoint
from anomalib.data import AnomalibDataModule
from anomalib.engine import Engine
from anomalib.models.components import AnomalibModule
from lightning.pytorch import Callback, seed_everything

from .measure import EpochRecorder, PeakMemory

Model = TypeVar("Model", bound=AnomalibModule)


def seeded(build: Callable[[], Model], seed: int) -> Model:
    """``build()`` right after seeding torch, numpy and random, so a model's initial weights (and
    FrEIA's permutations, drawn from numpy) depend on the seed only, not on what ran before it."""
    seed_everything(seed, workers=True)
    return build()


@dataclass
class TrainingResult:
    """One training run and its test.

    Attributes:
        image_auroc: Test image AUROC after the last epoch (anomalib's evaluator).
        pixel_auroc: Test pixel AUROC after the last epoch.
        fit_seconds: Wall time of ``Engine.fit`` (with the model's own validation), excluding the
            per-epoch measurement of ``epoch_image_aurocs``.
        epoch_seconds: Seconds of each training epoch (training loop only, no validation).
        validation_seconds: Seconds ``fit`` spent validating.
        epoch_image_aurocs: Test image AUROC after each epoch, when asked for (a measurement only).
        peak_memory_mb: Peak memory added during ``fit``.
        metrics: Every test metric of the model's evaluator, by name.
        other_metrics: The same metrics on each further test set (``also_test``), by its name.
    """

    image_auroc: float
    pixel_auroc: float
    fit_seconds: float
    epoch_seconds: list[float] = field(default_factory=list)
    validation_seconds: float = 0.0
    epoch_image_aurocs: list[float] = field(default_factory=list)
    peak_memory_mb: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    other_metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def seconds_per_epoch(self) -> float:
        """Mean training-loop seconds per epoch."""
        return sum(self.epoch_seconds) / len(self.epoch_seconds)

    def seconds_to_reach(self, image_auroc: float) -> float | None:
        """Wall time of a run stopped at the first epoch whose test image AUROC reaches ``image_auroc``.

        That is the run's fixed cost (set-up, data check, final validation: ``fit_seconds`` minus
        its epochs) plus the epochs up to and including that one; None if no epoch reaches it.
        """
        fixed_cost = self.fit_seconds - sum(self.epoch_seconds)
        for epoch, auroc in enumerate(self.epoch_image_aurocs):
            if auroc >= image_auroc:
                return fixed_cost + sum(self.epoch_seconds[: epoch + 1])
        return None


def train_and_test(
    model: AnomalibModule,
    datamodule: AnomalibDataModule,
    max_epochs: int | None,
    root: Path,
    seed: int = 0,
    evaluate_each_epoch: bool = False,
    test: bool = True,
    also_test: dict[str, AnomalibDataModule] | None = None,
    callbacks: Sequence[Callback] = (),
    **trainer_kwargs: object,
) -> TrainingResult:
    """Fit ``model`` for ``max_epochs`` (None: the model's default budget) with anomalib's ``Engine``
    (its defaults otherwise), then test it.

    ``also_test`` names further datamodules whose test split the trained model is tested on too
    (e.g. the disturbed copy of the test set); ``callbacks`` join the trainer's (e.g. a report's
    ``ReportCollector``). With ``test=False`` (runs that only measure time) the AUROCs are NaN and no checkpoint is
    written (anomalib's would save the whole model, backbone included, after every epoch).
    """
    seed_everything(seed, workers=True)
    recorder = EpochRecorder(evaluate_each_epoch)
    # A checkpoint callback that saves nothing keeps anomalib from adding its own.
    checkpoints = [] if test else [ModelCheckpoint(save_top_k=0)]
    engine = Engine(
        max_epochs=max_epochs,
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        callbacks=[recorder, *checkpoints, *callbacks],
        **trainer_kwargs,
    )
    with PeakMemory() as memory:
        start = time.perf_counter()
        engine.fit(model, datamodule=datamodule)
        fit_seconds = time.perf_counter() - start - recorder.evaluation_seconds
    nan = float("nan")
    [metrics] = engine.test(model, datamodule=datamodule, verbose=False) if test else [{}]
    other_metrics = {
        name: engine.test(model, datamodule=other, verbose=False)[0]
        for name, other in (also_test or {}).items()
    }
    return TrainingResult(
        image_auroc=metrics.get("image_AUROC", nan),
        pixel_auroc=metrics.get("pixel_AUROC", nan),
        fit_seconds=fit_seconds,
        epoch_seconds=recorder.epoch_seconds,
        validation_seconds=recorder.validation_seconds,
        epoch_image_aurocs=recorder.image_aurocs,
        peak_memory_mb=memory.peak_mb,
        metrics=metrics,
        other_metrics=other_metrics,
    )

"""The default budget (used only when the user sets none) and the one-cycle schedule it feeds."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from anomalib.engine import Engine
from lightning.pytorch import Callback, LightningModule, Trainer

from anomalib_fastflow import FastFlow, MVTec
from anomalib_fastflow.training.budget import MAX_DEFAULT_EPOCHS, MIN_DEFAULT_EPOCHS, default_epochs
from anomalib_fastflow.training.schedule import budget_one_cycle


@pytest.mark.parametrize(
    ("steps_per_epoch", "epochs"),
    [(5, 25), (7, 18), (3, 42), (1000, MIN_DEFAULT_EPOCHS), (1, MAX_DEFAULT_EPOCHS), (0, MIN_DEFAULT_EPOCHS)],
)
def test_default_epochs_adapt_to_the_steps_per_epoch(steps_per_epoch: int, epochs: int) -> None:
    assert default_epochs(steps_per_epoch) == epochs


def test_one_cycle_refuses_an_unbounded_run_and_scales_a_long_one() -> None:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=5e-3)
    steps = {"num_training_batches": 3, "accumulate_grad_batches": 1}  # 3 steps per epoch: default 126 steps
    unbounded = SimpleNamespace(estimated_stepping_batches=float("inf"), max_epochs=-1, max_steps=-1, **steps)
    with pytest.raises(
        ValueError, match=r"max_epochs=-1 and max_steps=-1 leave the run unbounded \(-1 means no limit\)"
    ):
        budget_one_cycle(optimizer, unbounded, 5e-3)
    long_run = SimpleNamespace(estimated_stepping_batches=600, **steps)
    scaled = budget_one_cycle(optimizer, long_run, 5e-3)
    assert scaled.total_steps == 600
    assert max(group["max_lr"] for group in optimizer.param_groups) == pytest.approx(5e-3 * 126 / 600)
    short_run = SimpleNamespace(estimated_stepping_batches=60, **steps)
    assert budget_one_cycle(optimizer, short_run, 5e-3).total_steps == 60
    assert max(group["max_lr"] for group in optimizer.param_groups) == pytest.approx(5e-3)


class _BudgetSpy(Callback):
    """Records the run's epoch budget and the lr schedule's length, then stops after one step."""

    def __init__(self) -> None:
        self.max_epochs: int | None = None
        self.schedule_steps: int | None = None
        self.peak_lr: float | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.max_epochs = trainer.max_epochs
        schedulers = trainer.lr_scheduler_configs
        self.schedule_steps = schedulers[0].scheduler.total_steps if schedulers else None
        self.peak_lr = trainer.optimizers[0].param_groups[0].get("max_lr")

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        trainer.should_stop = True


def _budget(tiny_dataset: Path, tmp_path: Path, **trainer_kwargs: object) -> _BudgetSpy:
    spy = _BudgetSpy()
    datamodule = MVTec(
        root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0
    )
    engine = Engine(
        default_root_dir=tmp_path, logger=False, limit_val_batches=0, callbacks=[spy], **trainer_kwargs
    )
    engine.fit(FastFlow(input_size=64, flow_steps=2, lr=5e-3), datamodule=datamodule)
    return spy


@pytest.mark.slow
def test_no_budget_given_trains_for_the_default_budget(tiny_dataset: Path, tmp_path: Path) -> None:
    """12 training images in batches of 4: 3 steps per epoch, so 42 epochs, not Lightning's 1000."""
    spy = _budget(tiny_dataset, tmp_path)
    assert spy.max_epochs == default_epochs(3) == 42
    assert spy.schedule_steps == 42 * 3  # the one-cycle schedule spans the default budget
    assert (
        "max_epochs" not in FastFlow(input_size=64, flow_steps=2).trainer_arguments
    )  # would beat the user's


@pytest.mark.parametrize(
    ("trainer_kwargs", "max_epochs", "schedule_steps"),
    [({"max_epochs": 3}, 3, 9), ({"max_steps": 5}, -1, 5), ({"max_epochs": 200}, 200, 600)],
)
@pytest.mark.slow
def test_an_explicit_budget_always_wins(
    tiny_dataset: Path, tmp_path: Path, trainer_kwargs: dict, max_epochs: int, schedule_steps: int
) -> None:
    spy = _budget(tiny_dataset, tmp_path, **trainer_kwargs)
    assert (spy.max_epochs, spy.schedule_steps) == (max_epochs, schedule_steps)


@pytest.mark.parametrize(("max_epochs", "peak_lr"), [(42, 5e-3), (3, 5e-3), (200, 5e-3 * 126 / 600)])
@pytest.mark.slow
def test_a_budget_beyond_the_default_peaks_lower(
    tiny_dataset: Path, tmp_path: Path, max_epochs: int, peak_lr: float
) -> None:
    """3 steps per epoch: the default budget is 42 epochs (126 steps); 200 epochs (600 steps) peak
    at 126/600 of ``lr``, the same rate integral; shorter budgets peak at ``lr``."""
    spy = _budget(tiny_dataset, tmp_path, max_epochs=max_epochs)
    assert spy.peak_lr == pytest.approx(peak_lr, rel=1e-9)

"""How long FastFlow trains when the user does not say, and when it validates (``DefaultBudget``).

Without ``max_epochs``, ``max_steps`` or ``max_time`` Lightning trains for 1000 epochs; FastFlow
trains for ``default_epochs`` instead: about ``DEFAULT_STEPS`` optimizer steps, within epoch bounds.
FastFlow keeps its last weights, so validation selects nothing and only feeds the post-processor's
thresholds: it runs once, after the last epoch.
"""

import math

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info

from ..errors import InputError

LIGHTNING_DEFAULT_MAX_EPOCHS = 1000  # what Lightning trains for when no limit is given
DEFAULT_STEPS = 125  # optimizer steps of the default budget, at least ...
MIN_DEFAULT_EPOCHS = 10  # ... this many epochs (each of the 4 views of an image seen 2-3 times) ...
MAX_DEFAULT_EPOCHS = 100  # ... and at most this many


def default_epochs(steps_per_epoch: int) -> int:
    """Epochs of the default budget: ``DEFAULT_STEPS`` optimizer steps, within the epoch bounds.

    A small training set (few steps per epoch) gets more epochs, a large one fewer: 40 images in
    batches of 8 train 25 epochs, MVTec AD's 209 bottle images in batches of 32 train 18.
    """
    if steps_per_epoch <= 0:  # unknown (no datamodule to count): the fewest epochs
        return MIN_DEFAULT_EPOCHS
    return min(max(math.ceil(DEFAULT_STEPS / steps_per_epoch), MIN_DEFAULT_EPOCHS), MAX_DEFAULT_EPOCHS)


def default_steps(steps_per_epoch: int) -> int:
    """Optimizer steps of the default budget for this many steps per epoch."""
    return default_epochs(steps_per_epoch) * max(steps_per_epoch, 1)


def has_lightning_default_budget(trainer: Trainer) -> bool:
    """Whether the run's only limit is the 1000 epochs Lightning sets when none was given.

    Lightning turns ``max_epochs=None`` into 1000 before any model hook runs; an explicit
    ``max_epochs=1000`` looks the same from here, so it counts as "not given" (``max_steps`` or
    ``max_time`` say "train this long" unambiguously).
    """
    return trainer.max_epochs == LIGHTNING_DEFAULT_MAX_EPOCHS and trainer.max_steps == -1


def require_training(trainer: Trainer) -> None:
    """Refuse a fit that would train nothing, before it writes a model whose metrics mean nothing.

    Raises:
        InputError: ``max_epochs`` or ``max_steps`` is 0.
    """
    for name in ("max_epochs", "max_steps"):
        if getattr(trainer, name) == 0:
            msg = (
                f"{name}=0 trains nothing, and an untrained FastFlow's metrics and thresholds mean nothing: "
                f"give {name} of at least 1, or leave max_epochs, max_steps and max_time unset for the "
                "default budget."
            )
            raise InputError(msg)


def set_default_budget(trainer: Trainer, batches_per_epoch: int) -> int:
    """Make ``trainer`` train for ``default_epochs`` instead of Lightning's 1000 (0 batches: unknown)."""
    steps_per_epoch = math.ceil(batches_per_epoch / trainer.world_size / trainer.accumulate_grad_batches)
    epochs = default_epochs(steps_per_epoch)
    trainer.fit_loop.max_epochs = epochs
    rank_zero_info(
        "FastFlow: no max_epochs, max_steps or max_time given, so it trains for its default budget: "
        f"{epochs} epochs, of {steps_per_epoch or 'an unknown number of'} steps each, not Lightning's 1000."
    )
    return epochs


class DefaultBudget(Callback):
    """Sets the default budget when the user gave none, and validates after the last epoch only."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Before a fit, before Lightning counts the optimizer steps for the learning-rate schedule.

        Raises:
            InputError: ``max_epochs=0`` or ``max_steps=0``: a fit that trains nothing.
        """
        del pl_module
        if stage == TrainerFn.FITTING:
            require_training(trainer)
        if stage == TrainerFn.FITTING and has_lightning_default_budget(trainer):
            datamodule = trainer.datamodule
            set_default_budget(trainer, len(datamodule.train_dataloader()) if datamodule is not None else 0)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Validate once, after the last epoch (anomalib's default validation split is the test split).
        An explicit ``check_val_every_n_epoch`` other than 1, or an unbounded ``max_epochs``, is kept."""
        del pl_module
        if trainer.check_val_every_n_epoch == 1 and trainer.max_epochs is not None and trainer.max_epochs > 1:
            trainer.check_val_every_n_epoch = trainer.max_epochs

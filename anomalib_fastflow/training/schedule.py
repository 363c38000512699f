"""How long FastFlow trains and how its learning rate moves.

- The default budget: when the user gives Lightning no ``max_epochs``, ``max_steps`` or
  ``max_time``, Lightning trains for 1000 epochs; FastFlow trains for ``default_epochs`` instead
  (chosen on the demo data: ``docs/budget_study/``).
- The one-cycle schedule: a warm-up to the peak rate, then a cosine decay to near zero over the
  run's steps. A run longer than the default budget takes a proportionally lower peak
  (``budget_peak_lr``): the same rate integral, spread over more steps. At a fixed peak, image
  AUROC fell as budgets grew (demo retina: 0.98 after 25 epochs, 0.74 after 100); at the scaled
  peak it holds (0.98 after 100, ``docs/budget_study/``).
"""

import math

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities import rank_zero_info

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


def has_lightning_default_budget(trainer: Trainer) -> bool:
    """Whether the run's only limit is the 1000 epochs Lightning sets when none was given.

    Lightning turns ``max_epochs=None`` into 1000 before any model hook runs; an explicit
    ``max_epochs=1000`` looks the same from here, so it counts as "not given" (``max_steps`` or
    ``max_time`` say "train this long" unambiguously).
    """
    return trainer.max_epochs == LIGHTNING_DEFAULT_MAX_EPOCHS and trainer.max_steps == -1


def set_default_budget(trainer: Trainer, batches_per_epoch: int, cycles: int = 1) -> int:
    """Make ``trainer`` train for ``default_epochs`` (times ``cycles``: at most that many default budgets,
    for a run that stops itself) instead of Lightning's 1000 (0 batches: unknown); return ``default_epochs``."""
    steps_per_epoch = math.ceil(batches_per_epoch / trainer.world_size / trainer.accumulate_grad_batches)
    epochs = default_epochs(steps_per_epoch)
    trainer.fit_loop.max_epochs = epochs * cycles
    budget = f"{epochs} epochs" if cycles == 1 else f"cycles of {epochs} epochs until self-validation stops improving, at most {cycles}"
    rank_zero_info(
        "FastFlow: no max_epochs, max_steps or max_time given, so it trains for its default budget: "
        f"{budget}, of {steps_per_epoch or 'an unknown number of'} steps each epoch, not Lightning's 1000."
    )
    return epochs


def default_steps(steps_per_epoch: int) -> int:
    """Optimizer steps of the default budget for this many steps per epoch."""
    return default_epochs(steps_per_epoch) * max(steps_per_epoch, 1)


def budget_peak_lr(peak_lr: float, total_steps: int, steps_per_epoch: int) -> float:
    """``peak_lr`` for runs up to the default budget; beyond it, scaled by default / actual steps."""
    return peak_lr * min(1.0, default_steps(steps_per_epoch) / total_steps)


def one_cycle(
    optimizer: torch.optim.Optimizer, total_steps: int, peak_lr: float, warmup_fraction: float
) -> torch.optim.lr_scheduler.OneCycleLR:
    """Warm-up over ``warmup_fraction`` of ``total_steps`` to ``peak_lr``, then cosine decay to near zero."""
    if warmup_fraction * total_steps == 1:
        # OneCycleLR divides by zero for a warm-up of exactly one step (pytorch/pytorch#180187),
        # e.g. 10 steps at the default 0.1; a hair more gives that schedule's limit: step 0 at
        # the initial rate, then the decay from (nearly) the peak.
        warmup_fraction *= 1 + 1e-9
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=peak_lr, total_steps=total_steps, pct_start=warmup_fraction, cycle_momentum=False
    )


def budget_one_cycle(
    optimizer: torch.optim.Optimizer,
    trainer: Trainer,
    peak_lr: float,
    warmup_fraction: float,
    scale_lr_to_budget: bool,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """``one_cycle`` over ``trainer``'s optimizer steps, its peak scaled to the budget if asked.

    Raises:
        ValueError: The run is not bounded (no ``max_epochs`` or ``max_steps``).
    """
    total_steps = trainer.estimated_stepping_batches
    if not 0 < total_steps < float("inf"):
        msg = "lr_schedule='one_cycle' needs a bounded run: set trainer.max_epochs or trainer.max_steps."
        raise ValueError(msg)
    batches = trainer.num_training_batches
    if scale_lr_to_budget and math.isfinite(batches):
        steps_per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
        peak_lr = budget_peak_lr(peak_lr, int(total_steps), steps_per_epoch)
    return one_cycle(optimizer, int(total_steps), peak_lr, warmup_fraction)


ONE_CYCLE_DIV_FACTOR = 25.0  # OneCycleLR's defaults: start at peak / 25 ...
ONE_CYCLE_FINAL_DIV_FACTOR = 1e4  # ... and end at that start / 1e4


def _cosine(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * fraction) + 1)


def one_cycle_factor(step: int, cycle_steps: int, warmup_fraction: float) -> float:
    """The learning rate at ``step`` of a one-cycle of ``cycle_steps`` steps, as a fraction of its
    peak: OneCycleLR's cosine warm-up and decay (its default start and end rates)."""
    start, end = 1 / ONE_CYCLE_DIV_FACTOR, 1 / ONE_CYCLE_DIV_FACTOR / ONE_CYCLE_FINAL_DIV_FACTOR
    warmup_end = max(warmup_fraction * cycle_steps - 1, 0.0)
    if step <= warmup_end and warmup_end > 0:
        return _cosine(start, 1.0, step / warmup_end)
    return _cosine(1.0, end, min((step - warmup_end) / max(cycle_steps - 1 - warmup_end, 1), 1.0))


def cyclic_one_cycle(
    optimizer: torch.optim.Optimizer, cycle_steps: int, warmup_fraction: float, peak_decay: float = 0.5
) -> torch.optim.lr_scheduler.LambdaLR:
    """One-cycles of ``cycle_steps`` steps, one after another, for a run whose length is not known in
    advance: each ends annealed (a natural point to evaluate and stop), each peaks ``peak_decay``
    times lower than the one before. The optimizer's ``lr`` is the first cycle's peak."""
    def factor(step: int) -> float:
        cycle, within = divmod(step, cycle_steps)
        return peak_decay**cycle * one_cycle_factor(within, cycle_steps, warmup_fraction)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

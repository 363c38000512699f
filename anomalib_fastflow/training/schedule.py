"""How FastFlow's learning rate moves: a one-cycle over the run's steps.

A warm-up over ``WARMUP_FRACTION`` of the steps to the peak rate, then a cosine decay to near zero.
A run longer than the default budget (``budget``) takes a proportionally lower peak
(``budget_peak_lr``): the same rate integral, spread over more steps, so that a long budget does
not lose what a fixed peak loses.
"""

import math

import torch
from lightning.pytorch import Trainer

from ..errors import InputError
from .budget import default_steps

WARMUP_FRACTION = 0.1  # share of the steps spent warming up


def budget_peak_lr(peak_lr: float, total_steps: int, steps_per_epoch: int) -> float:
    """``peak_lr`` for runs up to the default budget; beyond it, scaled by default / actual steps."""
    return peak_lr * min(1.0, default_steps(steps_per_epoch) / total_steps)


def one_cycle(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    peak_lr: float,
    warmup_fraction: float = WARMUP_FRACTION,
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
    optimizer: torch.optim.Optimizer, trainer: Trainer, peak_lr: float
) -> torch.optim.lr_scheduler.OneCycleLR:
    """``one_cycle`` over ``trainer``'s optimizer steps, its peak scaled to the budget.

    Raises:
        InputError: The run is not bounded (``max_epochs=-1`` without ``max_steps``, or only ``max_time``).
    """
    total_steps = trainer.estimated_stepping_batches
    if not 0 < total_steps < float("inf"):
        msg = (
            "lr_schedule='one_cycle' decays over a known number of steps, but "
            f"max_epochs={getattr(trainer, 'max_epochs', None)} and max_steps={getattr(trainer, 'max_steps', None)} "
            "leave the run unbounded (-1 means no limit): give max_epochs or "
            "max_steps of at least 1, leave all limits unset for the default budget, or train with "
            "lr_schedule='constant'."
        )
        raise InputError(msg)
    batches = trainer.num_training_batches
    if math.isfinite(batches):
        steps_per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
        peak_lr = budget_peak_lr(peak_lr, int(total_steps), steps_per_epoch)
    return one_cycle(optimizer, int(total_steps), peak_lr)

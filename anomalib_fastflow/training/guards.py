"""Stop training before a non-finite loss or gradient can reach the weights.

The weights are still finite then (no bad step was taken): they are saved to
``<default_root_dir>/last_good_weights.ckpt`` and training stops with a ``FloatingPointError``
naming the epoch, the step, what was not finite and the checkpoint.
"""

from collections.abc import Iterable
from pathlib import Path

import torch
from lightning.pytorch import Trainer


def non_finite_gradient(parameters: Iterable[torch.nn.Parameter]) -> bool:
    """Whether any gradient of ``parameters`` holds a NaN or an infinity (one reduction per tensor)."""
    sums = [parameter.grad.sum() for parameter in parameters if parameter.grad is not None]
    return bool(sums) and not bool(torch.isfinite(torch.stack(sums)).all())


def stop_training(trainer: Trainer, reason: str) -> None:
    """Save the (still finite) weights and raise.

    Raises:
        FloatingPointError: Names the epoch, the step, ``reason`` and the saved checkpoint.
    """
    path = Path(trainer.default_root_dir) / "last_good_weights.ckpt"
    trainer.save_checkpoint(path)
    msg = (
        f"Training stopped at epoch {trainer.current_epoch}, step {trainer.global_step}: {reason}. "
        f"The last good weights are saved in {path}."
    )
    raise FloatingPointError(msg)

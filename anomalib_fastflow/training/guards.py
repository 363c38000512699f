"""Stop training before a non-finite loss or gradient can reach the weights (``NonFiniteGuard``).

The weights are still finite then (no bad step was taken): they are saved to
``<default_root_dir>/last_good_weights.ckpt`` and training stops with a ``FloatingPointError``
naming the epoch, the step, what was not finite and the checkpoint.
"""

from collections.abc import Iterable
from pathlib import Path

import torch
from anomalib.data import Batch
from lightning.pytorch import Callback, LightningModule, Trainer


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


class NonFiniteGuard(Callback):
    """Stops a fit at a non-finite loss (naming the batch's images) or gradient, before the optimizer step."""

    def __init__(self) -> None:
        self._image_paths: list[str] | None = None

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Batch, batch_idx: int
    ) -> None:
        """Remember the batch's images, to name them if its loss is not finite."""
        del trainer, pl_module, batch_idx
        self._image_paths = batch.image_path

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        """Stop on a non-finite loss."""
        del pl_module
        if not torch.isfinite(loss):
            stop_training(trainer, f"the training loss is {loss.item()} for images {self._image_paths}")

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        """Stop on a non-finite gradient."""
        del optimizer
        if non_finite_gradient(pl_module.parameters()):
            stop_training(trainer, "a gradient is not finite")

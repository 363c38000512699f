"""Trainer callbacks that FastFlow adds to every run."""

from pathlib import Path

import torch
from anomalib.data import Batch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DistributedSampler, RandomSampler

from .data.samplers import EpochSeededSampler, FixedShardSampler


class ValidateAfterLastEpoch(Callback):
    """Validate once, after the last epoch, instead of after every epoch (Lightning's default).

    FastFlow trains on a fixed schedule and keeps its last weights, so validation selects nothing:
    it only feeds the post-processor's thresholds. anomalib's default validation split is the test
    split, so validating every epoch would cost a pass over the test images per epoch for nothing.
    An explicit ``check_val_every_n_epoch`` other than 1, or an unbounded ``max_epochs``, is kept.
    """

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Move the validation interval to the epoch budget."""
        del pl_module
        if trainer.check_val_every_n_epoch == 1 and trainer.max_epochs is not None and trainer.max_epochs > 1:
            trainer.check_val_every_n_epoch = trainer.max_epochs


class SeededTrainingOrder(Callback):
    """Make the training order a function of the seed and the epoch (``data/samplers.py``).

    A shuffling loader of one process draws its order from torch's global random state, which a
    run resumed from a checkpoint does not share with the run it continues; its ``RandomSampler``
    becomes an ``EpochSeededSampler`` seeded with ``torch.initial_seed()`` (the seed given to
    ``seed_everything``). Under DDP, Lightning's ``DistributedSampler`` (already seeded per epoch)
    deals new shards every epoch; it becomes a ``FixedShardSampler`` (epoch 0's shard, order
    reshuffled per epoch), so each process's feature cache holds its shard only. A loader that
    does not shuffle is kept.
    """

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Swap the training loader's sampler before the first epoch."""
        del pl_module
        batch_sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        sampler = getattr(batch_sampler, "sampler", None)
        if isinstance(sampler, DistributedSampler):
            batch_sampler.sampler = FixedShardSampler(sampler)
        elif isinstance(sampler, RandomSampler) and not sampler.replacement:
            batch_sampler.sampler = EpochSeededSampler(len(sampler.data_source), torch.initial_seed())


class StopOnNonFinite(Callback):
    """Stop training before a non-finite loss or gradient can reach the weights.

    The weights are still finite then (no bad step was taken): they are saved to
    ``<default_root_dir>/last_good_weights.ckpt`` and training stops with a ``FloatingPointError``
    naming the epoch, the step, the batch's images (for a loss) and the checkpoint.
    """

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
            self._stop(trainer, f"the training loss is {loss.item()} for images {self._image_paths}")

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        """Stop on a non-finite gradient."""
        del optimizer
        gradients = [weight.grad.sum() for weight in pl_module.parameters() if weight.grad is not None]
        if gradients and not torch.isfinite(torch.stack(gradients)).all():
            self._stop(trainer, "a gradient is not finite")

    @staticmethod
    def _stop(trainer: Trainer, reason: str) -> None:
        path = Path(trainer.default_root_dir) / "last_good_weights.ckpt"
        trainer.save_checkpoint(path)
        msg = (
            f"Training stopped at epoch {trainer.current_epoch}, step {trainer.global_step}: {reason}. "
            f"The last good weights are saved in {path}."
        )
        raise FloatingPointError(msg)

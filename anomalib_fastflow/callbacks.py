"""Trainer callbacks that FastFlow adds to every run."""

from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DistributedSampler

from .data.fixed_shards import FixedShardSampler


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


class FixedTrainingShards(Callback):
    """Under DDP, train each process on the same shard of the training set in every epoch.

    Lightning gives the training loader a ``DistributedSampler``, which deals new shards every
    epoch; this hands the loader's batch sampler a ``FixedShardSampler`` (epoch 0's shard, order
    reshuffled per epoch) when training starts, so each process's feature cache holds its shard
    only. Without a distributed sampler (one process) nothing changes.
    """

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Swap the distributed sampler of the training loader for its fixed-shard version."""
        del pl_module
        batch_sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if isinstance(getattr(batch_sampler, "sampler", None), DistributedSampler):
            batch_sampler.sampler = FixedShardSampler(batch_sampler.sampler)

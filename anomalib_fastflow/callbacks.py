"""Trainer callbacks that FastFlow adds to every run."""

from lightning.pytorch import Callback, LightningModule, Trainer


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

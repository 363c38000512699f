"""anomalib's post-processor, with thresholds that can come from held-out normal images.

anomalib's ``PostProcessor`` fits min-max normalisation and F1-optimal thresholds on the validation
split, which needs defective images. ``FastFlowPostProcessor.fit_held_out`` fits them on normal
training images held out of the fit and the same images with synthetic defects
(``training.self_validation``): normalisation and the pixel threshold as validation would fit them,
and the image threshold at the highest held-out normal score, so that nothing the held-out normal
images score is flagged (an F1-optimal cut on synthetic defects moves with how plain they are).
"""

import torch
from anomalib.data import ImageBatch
from anomalib.post_processing import PostProcessor
from lightning.pytorch import LightningModule, Trainer


class FastFlowPostProcessor(PostProcessor):
    """anomalib's ``PostProcessor`` (same arguments), plus ``fit_held_out``.

    The held-out image threshold is a buffer of its own (``held_out_image_threshold``, NaN when
    unset), saved with the model and exported with it; while set, it is the image threshold.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.register_buffer("held_out_image_threshold", torch.tensor(float("nan")))
        self.held_out_image_threshold: torch.Tensor

    def fit_held_out(self, batch: ImageBatch) -> None:
        """Normalisation and thresholds from ``batch``: held-out normal images (``gt_label`` 0) and the
        same images with synthetic defects (1, with ``gt_mask``), scored by the trained model.

        Raises:
            ValueError: ``batch`` has no normal image.
        """
        normal = batch.gt_label == 0
        if not normal.any():
            msg = "fit_held_out needs held-out normal images (gt_label 0)."
            raise ValueError(msg)
        self.on_validation_batch_end(None, None, batch)
        self.on_validation_epoch_end(None, None)
        if self.enable_thresholding:
            self.held_out_image_threshold.fill_(batch.pred_score.flatten()[normal.flatten()].max())

    def on_validation_epoch_end(self, trainer: Trainer | None, pl_module: LightningModule | None) -> None:
        """anomalib's, and the held-out image threshold forgotten: a validation run refits the thresholds."""
        super().on_validation_epoch_end(trainer, pl_module)
        self.held_out_image_threshold.fill_(float("nan"))

    @property
    def image_threshold(self) -> torch.Tensor:
        """The held-out image threshold where one is set, else anomalib's."""
        held_out = self.held_out_image_threshold
        return torch.where(torch.isnan(held_out), super().image_threshold, held_out)

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
from torchmetrics.utilities import dim_zero_cat


class FastFlowPostProcessor(PostProcessor):
    """anomalib's ``PostProcessor`` (same arguments), plus ``fit_held_out``.

    The held-out image threshold and the validation one placed between two scores are buffers of
    their own (``held_out_image_threshold``, ``validation_image_threshold``; NaN when unset), saved
    with the model and exported with it; the first that is set is the image threshold, else anomalib's.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.register_buffer("held_out_image_threshold", torch.tensor(float("nan")))
        self.register_buffer("validation_image_threshold", torch.tensor(float("nan")))
        self.held_out_image_threshold: torch.Tensor
        self.validation_image_threshold: torch.Tensor

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
        """anomalib's, then its image threshold moved between two validation scores; the held-out
        image threshold is forgotten: a validation run refits the thresholds."""
        metric = self._image_threshold_metric
        fitting = self.enable_thresholding and metric.update_called and metric.thresholds is None
        scores = dim_zero_cat(metric.preds).flatten() if fitting else None
        super().on_validation_epoch_end(trainer, pl_module)
        self.held_out_image_threshold.fill_(float("nan"))
        if scores is not None:
            self.validation_image_threshold.copy_(between_scores(super().image_threshold, scores))

    @property
    def image_threshold(self) -> torch.Tensor:
        """The held-out image threshold where one is set, else the validation one between two
        scores, else anomalib's (e.g. of a checkpoint saved before these buffers)."""
        validation = self.validation_image_threshold
        fitted = torch.where(torch.isnan(validation), super().image_threshold, validation)
        held_out = self.held_out_image_threshold
        return torch.where(torch.isnan(held_out), fitted, held_out)


def between_scores(threshold: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``threshold`` (one of ``scores``, flagging those ``>=`` it) moved halfway down to the next lower
    score, so that ``score > result`` flags the same images and none sits on it. When no score is
    lower (every image flagged), it moves down by half the gap to the next higher score; when every
    score is the same, just below it. A threshold that is not finite is returned as it is."""
    if not torch.isfinite(threshold):
        return threshold
    lower, higher = scores[scores < threshold], scores[scores > threshold]
    if lower.numel():
        return (threshold + lower.max()) / 2
    if higher.numel():
        return threshold - (higher.min() - threshold) / 2
    return torch.nextafter(threshold, torch.tensor(float("-inf"), dtype=threshold.dtype))

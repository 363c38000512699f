"""``FastFlowTraining``: everything FastFlow changes about a fit, in the one callback its model returns.

Lightning users look for changes to the trainer and the datamodule in callbacks; FastFlow's
``configure_callbacks`` returns this one, which

- sets the default budget when the user gave none (``schedule``); with self-validation, that
  budget adapts: cycles of the default budget while the self-validation score improves
  (``cycle_stopping``), the best cycle's weights kept; within an explicit budget, ``keep_best_epoch``
  keeps the weights of the epoch with the best self-validation score instead of the last;
- trains on fixed views of each image whose backbone features are computed once (``views``,
  ``view_features``, ``feature_cache``, ``cached_views``): it wraps the datamodule's training set
  for the fit and gives it back afterwards, also when training fails;
- makes the training order a function of the seed and the epoch (``samplers``);
- validates once, after the last epoch, instead of after every epoch;
- stops before a non-finite loss or gradient reaches the weights (``guards``);
- with ``self_validation``, holds a few normal training images out, scores them with and without
  synthetic defects after every epoch, logs the label-free estimate and prints it after the fit
  (``self_validation``); after the fit, the post-processor's thresholds and normalisation are
  fitted on that set instead of the validation split (which anomalib's MVTec default makes the
  test split), through the post-processor's own validation hooks, the image threshold by
  ``thresholds``.

The model asks it for each batch's features (``features``).
"""

from pathlib import Path

import torch
from anomalib.data import Batch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn, TrainerStatus
from lightning.pytorch.utilities import rank_zero_info

from .cycle_stopping import CycleStopping
from .guards import non_finite_gradient, stop_training
from .samplers import seeded_sampler
from .schedule import has_lightning_default_budget, set_default_budget
from .self_validation import SelfValidationScores, SelfValidationSet
from .thresholds import image_threshold
from .view_features import Backbone, ViewFeatures
from .views import AugmentationChoice, resolve_augmentation


class FastFlowTraining(Callback):
    """The training machinery of one ``FastFlow`` model (see the module's docstring).

    Args:
        augmentation: Training views: ``auto`` (the paper's flips and rotations where the datamodule's
            category allows them, ``views.SAFE_AUGMENTATIONS``), ``paper`` or ``none``.
        augmentation_views: Fixed views per training image when augmenting (view 0 is the image).
        affine_augmentation: Probability that a view also gets a small random zoom, rotation and shift.
        affine_scale: Their ranges as a multiple of the paper's (``views.AFFINE_RANGES``).
        cache_bytes: Memory for cached features per process (the rest spills to disk); ``None``
            computes the backbone every time.
        self_validation: Normal training images held out for the label-free estimate (0: none).
        seed: Seed of which images are held out and of their synthetic defects.
        stopping: When an adaptive budget (self-validation, no budget given) stops.
        keep_best_epoch: With self-validation and an explicit budget, put back the weights of the epoch
            whose self-validation score (``SelfValidationScores.selection_score``) was the highest (the
            later one of a tie) after the last epoch, instead of keeping the last epoch's.

    Raises:
        ValueError: An unknown ``augmentation``, fewer than one view, or an ``affine_augmentation``
            outside [0, 1], a negative ``self_validation``, or ``keep_best_epoch`` without it.
    """

    def __init__(
        self,
        augmentation: AugmentationChoice = "auto",
        augmentation_views: int = 4,
        affine_augmentation: float = 0.0,
        affine_scale: float = 1.0,
        cache_bytes: int | None = 4 * 2**30,
        self_validation: int = 0,
        seed: int = 0,
        stopping: CycleStopping | None = None,
        keep_best_epoch: bool = False,
    ) -> None:
        if self_validation < 0:
            msg = f"self_validation={self_validation}: hold out 0 (none) or more normal training images."
            raise ValueError(msg)
        if keep_best_epoch and not self_validation:
            msg = "keep_best_epoch=True needs self_validation > 0: the best epoch is chosen by its score."
            raise ValueError(msg)
        if not 0 <= affine_augmentation <= 1:
            msg = f"affine_augmentation={affine_augmentation}: a probability must be in [0, 1]."
            raise ValueError(msg)
        if affine_scale <= 0:
            msg = f"affine_scale={affine_scale}: the affine views' ranges must be a positive multiple of the paper's."
            raise ValueError(msg)
        if augmentation_views < 1:
            msg = f"augmentation_views must be at least 1, got {augmentation_views}."
            raise ValueError(msg)
        resolve_augmentation(augmentation, None, affine_augmentation)  # refuses an unknown choice now
        self.augmentation = augmentation
        self.augmentation_views = augmentation_views
        self.affine_augmentation = affine_augmentation
        self.affine_scale = affine_scale
        self.cache_bytes = cache_bytes
        self.self_validation = self_validation
        self.seed = seed
        self.stopping = stopping or CycleStopping()
        self.keep_best_epoch = keep_best_epoch
        self.view_features: ViewFeatures | None = None  # during a fit
        self.validation_set: SelfValidationSet | None = None  # during a fit
        self.self_validation_scores: list[SelfValidationScores] = []  # one per epoch of the last fit
        self._full_train_data: object | None = None
        self.cycle_epochs: int | None = None  # epochs per cycle of an adaptive budget (no budget given)
        self._best_weights: dict[str, torch.Tensor] | None = None  # its best cycle's, or the best epoch's
        self.best_epoch: int | None = None  # with ``keep_best_epoch``: the best epoch so far (1-based)
        self._best_epoch_score = float("-inf")
        self._epoch_scores: SelfValidationScores | None = None  # an epoch's, scored at its last batch
        self._image_paths: list[str] | None = None

    def features(self, batch: Batch, epoch: int, backbone: Backbone) -> list[torch.Tensor]:
        """``(N, C_i, H_i, W_i)`` per scale: the features of ``epoch``'s view of each image of the batch
        (outside a fit, of the images as they are)."""
        if self.view_features is None:
            return backbone(batch.image)
        return self.view_features(batch, epoch, backbone)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Before a fit: the default budget if none was given, then the views and their cache.

        This runs before Lightning first builds the training loader (which it does early, to count
        the optimizer steps for the lr schedule), so the loader reads the wrapped training set.
        """
        if stage != TrainerFn.FITTING:
            return
        datamodule = trainer.datamodule
        self.self_validation_scores = []
        if self.self_validation and datamodule is not None:
            self._full_train_data = datamodule.train_data
            datamodule.train_data, self.validation_set = SelfValidationSet.hold_out(
                datamodule.train_data, self.self_validation, self.seed
            )
            if trainer.is_global_zero:  # process 0 scores the set for all (``_evaluate``)
                self.validation_set.cache_features(pl_module.pre_processor.transform, pl_module.model.feature_extractor)
        self.cycle_epochs = None
        if has_lightning_default_budget(trainer):
            batches = len(datamodule.train_dataloader()) if datamodule is not None else 0
            if self.validation_set is None:
                set_default_budget(trainer, batches)
            else:  # train in cycles of the default budget while self-validation improves
                self.cycle_epochs = set_default_budget(trainer, batches, self.stopping.max_cycles)
                self.stopping = self.stopping.restarted()
        self._best_weights, self.best_epoch, self._best_epoch_score = None, None, float("-inf")
        augmentation = resolve_augmentation(
            self.augmentation, getattr(datamodule, "category", None), self.affine_augmentation, self.affine_scale
        )
        self.view_features = ViewFeatures.for_fit(
            datamodule,
            augmentation,
            self.augmentation_views,
            cache_bytes=self.cache_bytes,
            spill_dir=Path(trainer.default_root_dir, "feature_cache", f"rank{trainer.global_rank}"),
            rank=trainer.global_rank,
        )

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Validate after the last epoch only: FastFlow keeps its last weights, so validation selects
        nothing and only feeds the post-processor's thresholds (and anomalib's default validation
        split is the test split). An explicit ``check_val_every_n_epoch`` other than 1, or an
        unbounded ``max_epochs``, is kept."""
        del pl_module
        if self.cycle_epochs is not None:  # validate where a cycle may end the run, on its final weights
            trainer.check_val_every_n_epoch = self.cycle_epochs
        elif trainer.check_val_every_n_epoch == 1 and trainer.max_epochs is not None and trainer.max_epochs > 1:
            trainer.check_val_every_n_epoch = trainer.max_epochs

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Swap the training loader's shuffling sampler for a seeded one before the first epoch."""
        del pl_module
        batch_sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        sampler = seeded_sampler(getattr(batch_sampler, "sampler", None))
        if sampler is not None:
            batch_sampler.sampler = sampler

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Tell the training set which views are cached before the epoch's loader starts."""
        del pl_module
        if self.view_features is not None:
            self.view_features.start_epoch(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Score the self-validation set and log the estimate (progress bar and logger)."""
        if self.validation_set is None:
            return
        scores = self._epoch_scores or self._evaluate(trainer, pl_module)
        self._epoch_scores = None
        self.self_validation_scores.append(scores)
        metrics = {"image_AUROC": scores.image_auroc, "pixel_AUROC": scores.pixel_auroc, "AUPRO": scores.aupro}
        for name, value in metrics.items():
            pl_module.log(f"self_validation/{name}", value, prog_bar=name == "image_AUROC", sync_dist=False)

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule) -> SelfValidationScores:
        """The self-validation set scored by process 0, on every process: each holds the whole set
        (nothing to gather or pad), and all log the same estimate and take the same decision, which a
        distributed run needs (a process that stops alone leaves the others waiting)."""
        scores = self.validation_set.evaluate(pl_module.model) if trainer.is_global_zero else None
        return trainer.strategy.broadcast(scores, src=0)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: object, batch: Batch, batch_idx: int
    ) -> None:
        """At an epoch's last batch, with self-validation: score the set (logged at the epoch's end).
        An adaptive budget ends a cycle here (``_end_cycle``); ``keep_best_epoch`` keeps the epoch's
        weights if they are the best so far (``_keep_if_best``). This runs before the epoch's
        validation, so validation (the post-processor's thresholds) sees the weights that are kept."""
        del outputs, batch, batch_idx
        if self.validation_set is None or not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        scores = self._epoch_scores = self._evaluate(trainer, pl_module)
        if self.cycle_epochs is not None:
            if (trainer.current_epoch + 1) % self.cycle_epochs == 0:
                self._end_cycle(trainer, pl_module, scores)
        elif self.keep_best_epoch:
            self._keep_if_best(trainer, pl_module, scores)

    def _end_cycle(self, trainer: Trainer, pl_module: LightningModule, scores: SelfValidationScores) -> None:
        """Keep the cycle's weights if it is the new best (``cycle_stopping``); if the rule stops here,
        put the best weights back and stop."""
        cycle = (trainer.current_epoch + 1) // self.cycle_epochs
        improved, stop = self.stopping.update(cycle, scores.selection_score)
        if improved:
            self._best_weights = _flow_weights(pl_module)
        if not stop:
            return
        trainer.should_stop = True
        self._put_back(
            pl_module,
            f"FastFlow: self-validation peaked after cycle {self.stopping.best_cycle} of {cycle} "
            f"({self.stopping.best_cycle * self.cycle_epochs} epochs); its weights are kept.",
        )

    def _keep_if_best(
        self, trainer: Trainer, pl_module: LightningModule, scores: SelfValidationScores
    ) -> None:
        """Keep the epoch's weights if its score is the best so far (a tie: the later epoch); after the
        budget's last epoch, put the best back."""
        epoch = trainer.current_epoch + 1
        if scores.selection_score >= self._best_epoch_score:
            self.best_epoch, self._best_epoch_score = epoch, scores.selection_score
            self._best_weights = _flow_weights(pl_module)
        last_epoch = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if last_epoch or 0 < trainer.max_steps <= trainer.global_step:
            self._put_best_epoch_back(pl_module)

    def _put_best_epoch_back(self, pl_module: LightningModule) -> None:
        """Load the best epoch's weights (``keep_best_epoch``), once."""
        if self._best_weights is None or self.cycle_epochs is not None:
            return
        self._put_back(
            pl_module,
            f"FastFlow: the weights of epoch {self.best_epoch} are kept, the best by self-validation "
            f"(score {self._best_epoch_score:.4f}).",
        )
        self._best_weights = None

    def _put_back(self, pl_module: LightningModule, message: str) -> None:
        """Load the kept weights into the model and say which they are."""
        pl_module.model.load_state_dict(self._best_weights, strict=False)
        rank_zero_info(message)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A budget that ended otherwise (``max_time``, a callback stopping the run) still keeps the
        best epoch."""
        del trainer
        self._put_best_epoch_back(pl_module)

    @property
    def best_cycle(self) -> int | None:
        """The cycle whose weights an adaptive budget keeps (so far), or ``None``."""
        return self.stopping.best_cycle if self._best_weights is not None else None

    def state_dict(self) -> dict[str, object]:
        """The best cycle so far of an adaptive budget, or the best epoch so far with ``keep_best_epoch``
        (its number, score and weights), for a resumed run."""
        if self._best_weights is None:
            return {}
        if self.cycle_epochs is None:
            return {"best_epoch": self.best_epoch, "best_score": self._best_epoch_score,
                    "best_weights": self._best_weights}  # fmt: skip
        return {"best_cycle": self.stopping.best_cycle, "best_score": self.stopping.best_score,
                "best_weights": self._best_weights}  # fmt: skip

    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        """Take the best cycle back from a checkpoint (also one 0.2.0 wrote: ``{"best": {score, cycle, weights}}``)."""
        if "best" in state_dict:
            old = state_dict["best"]
            state_dict = {"best_cycle": old["cycle"], "best_score": old["score"], "best_weights": old["weights"]}
        if "best_epoch" in state_dict:
            self.best_epoch = int(state_dict["best_epoch"])
            self._best_epoch_score = float(state_dict["best_score"])
        elif "best_weights" in state_dict:
            self.stopping.best_cycle = int(state_dict["best_cycle"])
            self.stopping.best_score = float(state_dict["best_score"])
        if "best_weights" in state_dict:
            self._best_weights = state_dict["best_weights"]

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

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Fit the thresholds on the self-validation set (if any), free the feature cache and its spill
        folder and give the datamodule its training set back."""
        if self.validation_set is not None and trainer.state.status != TrainerStatus.INTERRUPTED:
            self._fit_thresholds(trainer, pl_module)
        if self.view_features is not None:
            self.view_features.close(trainer.datamodule)
            self.view_features = None
        if self._full_train_data is not None:
            trainer.datamodule.train_data = self._full_train_data
            self._full_train_data = None
        if self.validation_set is not None and self.self_validation_scores:
            rank_zero_info(f"Self-validation estimate: {self.self_validation_scores[-1]}")
        self.validation_set = None

    def _fit_thresholds(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The post-processor's thresholds and min-max normalisation from the self-validation set
        scored by the final weights (by process 0, for every process), fed through its validation hooks
        (pixel threshold F1-optimal on the synthetic defects); then the image threshold set to the
        highest held-out normal score (``thresholds``: it held where the F1-optimal one did not)."""
        post_processor = getattr(pl_module, "post_processor", None)
        if post_processor is None:
            return
        predicted = self.validation_set.predict(pl_module.model) if trainer.is_global_zero else None
        batch = trainer.strategy.broadcast(predicted)
        post_processor.on_validation_batch_end(trainer, pl_module, batch)
        post_processor.on_validation_epoch_end(trainer, pl_module)
        if getattr(post_processor, "enable_thresholding", False):  # anomalib's PostProcessor keeps it in a buffer
            post_processor._image_threshold.fill_(image_threshold(batch.pred_score, batch.gt_label))
        rank_zero_info(
            f"FastFlow: thresholds and normalisation fitted on the self-validation set ({len(self.validation_set)} "
            "held-out normal training images, each also with a synthetic defect), not on the validation split: "
            "the image threshold at the highest held-out normal score, the pixel threshold F1-optimal on the "
            "synthetic defects."
        )

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Clean up as after a fit when training fails, too."""
        del exception
        self.on_fit_end(trainer, pl_module)


def _flow_weights(pl_module: LightningModule) -> dict[str, torch.Tensor]:
    """Copies of the model's trained weights (all but the frozen backbone's)."""
    return {name: value.detach().clone() for name, value in pl_module.model.state_dict().items()
            if not name.startswith("feature_extractor.")}  # fmt: skip

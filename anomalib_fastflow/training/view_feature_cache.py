"""``ViewFeatureCache``: a fit trains on fixed views of each image, their backbone features computed once."""

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from ..errors import InputError
from .view_features import ViewFeatures
from .views import AugmentationChoice, resolve_augmentation


class ViewFeatureCache(Callback):
    """Builds a fit's ``ViewFeatures`` from the datamodule and gives it to the model
    (``pl_module.view_features``); frees it and gives the datamodule its training set back after
    the fit, also when the fit fails.

    Args:
        augmentation: ``auto`` (the safe set of the datamodule's category, ``views.SAFE_AUGMENTATIONS``),
            ``paper`` or ``none``.
        num_views: Fixed views per training image when augmenting (view 0 is the image).
        affine_views: A small random zoom, rotation and shift in every view but view 0, its ranges
            as a multiple of ``views.AFFINE_RANGES`` (0: none).
        cache_bytes: Memory for cached features per process (the rest spills to disk); ``None``
            computes the backbone every time.

    Raises:
        ValueError: An unknown ``augmentation``, fewer than one view or a negative ``affine_views``.
    """

    def __init__(
        self,
        augmentation: AugmentationChoice = "auto",
        num_views: int = 4,
        affine_views: float = 0.0,
        cache_bytes: int | None = 4 * 2**30,
    ) -> None:
        if num_views < 1:
            msg = f"augmentation_views must be at least 1, got {num_views}."
            raise InputError(msg)
        if affine_views < 0:
            msg = f"affine_views={affine_views}: the views' ranges are 0 (none) or a positive multiple of the paper's."
            raise InputError(msg)
        resolve_augmentation(augmentation, None, affine_views)  # refuses an unknown choice now
        self.augmentation = augmentation
        self.num_views = num_views
        self.affine_views = affine_views
        self.cache_bytes = cache_bytes

    def wrap_training_set(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Build the fit's ``ViewFeatures`` around the datamodule's training set as it is now.

        Called by ``FastFlow.setup``, the model's hook, which Lightning runs after every callback's
        ``setup`` and before it first builds the training loader (to count the optimizer steps): the
        views wrap the training set that other callbacks left (``SelfValidation`` holds images out
        in its ``setup``), whatever the callbacks' order, and the loader reads the wrapped set.
        """
        datamodule = trainer.datamodule
        augmentation = resolve_augmentation(
            self.augmentation, getattr(datamodule, "category", None), self.affine_views
        )
        pl_module.view_features = ViewFeatures.for_fit(
            datamodule,
            augmentation,
            self.num_views,
            cache_bytes=self.cache_bytes,
            spill_dir=Path(trainer.default_root_dir, "feature_cache", f"rank{trainer.global_rank}"),
            rank=trainer.global_rank,
        )

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Tell the training set which views are cached before the epoch's loader starts."""
        if pl_module.view_features is not None:
            pl_module.view_features.start_epoch(trainer.current_epoch)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Free the cache and its spill folder and give the datamodule its training set back."""
        if pl_module.view_features is not None:
            pl_module.view_features.close(trainer.datamodule)
            pl_module.view_features = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """The same when the fit fails."""
        del exception
        self.on_fit_end(trainer, pl_module)

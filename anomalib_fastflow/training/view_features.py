"""The frozen backbone's features of each epoch's training views, computed once per view.

FastFlow trains its flows on a frozen backbone, so the features of one view of one image never
change. ``ViewFeatures`` turns a training batch into the features of the epoch's views: it picks
each image's view (``views.TrainingViews``), reads the views seen before from the
``FeatureCache`` and runs the backbone on the others only. For a fit it also wraps the
datamodule's training set (``CachedViewsDataset``) so that batches whose views are all cached are
not read from disk, and gives the set back afterwards, also when training fails.
"""

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from anomalib.data import AnomalibDataModule, Batch
from anomalib.data.datasets.base import AnomalibDataset
from lightning.pytorch.utilities import rank_zero_warn

from .cached_views import CachedViewsDataset
from .feature_cache import FeatureCache
from .views import Augmentation, TrainingViews, common_folder

logger = logging.getLogger(__name__)

Backbone = Callable[[torch.Tensor], list[torch.Tensor]]


class ViewFeatures:
    """Features of the epoch's training views, from the cache where it holds them.

    Args:
        views: The views each training image is seen in.
        cache: Where computed features are kept (``None``: computed every time).
        rank: The training process (in distributed training), named in the cache's report.
    """

    def __init__(self, views: TrainingViews, cache: FeatureCache | None = None, rank: int = 0) -> None:
        self.views = views
        self.cache = cache
        self.rank = rank
        self.dataset: CachedViewsDataset | None = None

    @classmethod
    def for_fit(
        cls,
        datamodule: AnomalibDataModule | None,
        augmentation: Augmentation,
        num_views: int,
        cache_bytes: int | None,
        spill_dir: Path,
        rank: int = 0,
    ) -> "ViewFeatures":
        """The views of ``datamodule``'s training images and, with ``cache_bytes``, their cache.

        The cache stays off (with a warning) when the datamodule has ``train_augmentations``,
        which change the images every epoch; otherwise the training set is wrapped to leave the
        images of cached views unread. Call ``close`` after the fit.
        """
        train_data = getattr(datamodule, "train_data", None)
        paths = list(train_data.samples["image_path"]) if isinstance(train_data, AnomalibDataset) else []
        view_features = cls(TrainingViews(augmentation, num_views, root=common_folder(paths)), rank=rank)
        logger.info("Training views: %d per image, %s", view_features.views.num_views, augmentation)
        if cache_bytes is None:
            return view_features
        if getattr(datamodule, "train_augmentations", None) is not None:
            rank_zero_warn(
                "The feature cache is off: the datamodule has train_augmentations, which change images "
                "every epoch. Use FastFlow's own `augmentation` to augment and cache."
            )
            return view_features
        view_features.cache = FeatureCache(cache_bytes, spill_dir)
        if isinstance(train_data, AnomalibDataset):
            view_features.dataset = CachedViewsDataset(train_data, view_features.views)
            datamodule.train_data = view_features.dataset
        return view_features

    def start_epoch(self, epoch: int) -> None:
        """Tell the training set which views are cached before the epoch's loader starts."""
        if self.dataset is not None and self.cache is not None:
            self.dataset.start_epoch(epoch, self.cache.keys())

    def __call__(self, batch: Batch, epoch: int, backbone: Backbone) -> list[torch.Tensor]:
        """``(N, C_i, H_i, W_i)`` per scale: the features of ``epoch``'s view of each image.

        Samples found in the cache are read from it; the others are made into their views, passed
        through ``backbone`` and stored.
        """
        if batch.image_path is None:
            rank_zero_warn("The batch has no image paths: training without views or feature cache.")
            return backbone(batch.image)
        paths = [str(path) for path in batch.image_path]
        views = self.views.views_for_epoch(paths, epoch)
        keys = list(zip(paths, views, strict=True))
        samples = [self.cache.get(key) if self.cache is not None else None for key in keys]
        missing = [index for index, sample in enumerate(samples) if sample is None]
        if missing:
            missing_paths, missing_views = [paths[i] for i in missing], [views[i] for i in missing]
            computed = backbone(self.views.apply(batch.image[missing], missing_paths, missing_views))
            if self.cache is not None:
                self.cache.store([keys[i] for i in missing], computed)
                # in the cache's precision, as later epochs (or a resumed run) will read them
                computed = [feature.to(self.cache.dtype).to(feature.dtype) for feature in computed]
            if len(missing) == len(keys):
                return computed
            for position, index in enumerate(missing):
                samples[index] = [feature[position] for feature in computed]
        return [
            torch.stack([sample[scale] for sample in samples]).to(batch.image.device, batch.image.dtype)
            for scale in range(len(samples[0]))
        ]

    def close(self, datamodule: AnomalibDataModule | None) -> None:
        """Report and free the cache (its spill folder too) and give ``datamodule`` its training set back
        (if it still holds the wrapped one: a callback that swapped the set before may have restored it)."""
        if self.cache is not None:
            logger.info(
                "Feature cache of process %d: %d samples of %d images, %.1f MiB in memory, %d on disk",
                self.rank,
                len(self.cache),
                self.cache.images,
                self.cache.memory_bytes / 2**20,
                self.cache.spilled,
            )
            self.cache.clear()
            self.cache = None
        if self.dataset is not None and getattr(datamodule, "train_data", None) is self.dataset:
            datamodule.train_data = self.dataset.dataset
        self.dataset = None

"""A training set that leaves unread the images whose view of the epoch is in the feature cache.

Once a view's backbone features are cached, its image is not needed again: decoding and resizing
it would only be thrown away. ``CachedViewsDataset`` wraps the datamodule's training set for one
fit and reads batches through ``__getitems__`` (PyTorch's ``DataLoader`` calls it with the indices
of one batch): when every sample of the batch has its view of the epoch cached, each item carries
the image path and label and a 1x1 placeholder image, and the flows train on the cached features;
otherwise the wrapped dataset reads the whole batch as usual.
"""

import torch
from anomalib.data import ImageItem
from anomalib.data.datasets.base import AnomalibDataset
from torch.utils.data import Dataset

from .feature_cache import CacheKey
from .views import TrainingViews


class CachedViewsDataset(Dataset[ImageItem]):
    """``dataset`` without reading the images of batches that are all cached.

    ``start_epoch`` gives it the epoch and the cached keys before the epoch's loader iterator (and
    with it any worker process) starts. Every other attribute is the wrapped dataset's.

    Args:
        dataset: The datamodule's training set (an anomalib dataset: image paths in ``samples``).
        views: The views the model trains on, to name each sample's view of an epoch.
    """

    def __init__(self, dataset: AnomalibDataset, views: TrainingViews) -> None:
        self.dataset = dataset
        self.views = views
        self.epoch = 0
        self.cached: frozenset[CacheKey] = frozenset()

    def start_epoch(self, epoch: int, cached: frozenset[CacheKey]) -> None:
        """Take the epoch about to start and the keys cached before it."""
        self.epoch = epoch
        self.cached = cached

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> ImageItem:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> list[ImageItem]:
        """One batch: placeholders when all its views of the epoch are cached, else the images."""
        samples = self.dataset.samples.iloc[indices]
        paths = [str(path) for path in samples["image_path"]]
        views = self.views.views_for_epoch(paths, self.epoch)
        if not all(key in self.cached for key in zip(paths, views, strict=True)):
            return [self.dataset[index] for index in indices]
        return [
            ImageItem(image=torch.zeros(3, 1, 1), gt_label=torch.tensor(label), image_path=path)
            for path, label in zip(paths, samples["label_index"], strict=True)
        ]

    def __getattr__(self, name: str) -> object:
        """The wrapped dataset's attributes (``samples``, ``task``, ``collate_fn``, ...)."""
        if name == "dataset":  # not set yet (unpickling in a worker): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

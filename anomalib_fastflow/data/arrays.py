"""A test or training split as one array batch, for export parity checks, calibration and timing."""

from pathlib import Path

import numpy as np
import torch
from anomalib.data.datasets import MVTecADDataset
from anomalib.data.datasets.base import AnomalibDataset
from torchvision.transforms.v2.functional import resize


def dataset_arrays(
    dataset: AnomalibDataset, size: tuple[int, int], limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` (default: all) images of ``dataset`` resized to ``size``.

    Returns ``(N, 3, H, W)`` float32 images in ``[0, 1]`` and labels ``(N,)``: 0 for normal images,
    1 for anomalous ones (anomalib's ``gt_label``).
    """
    items = [dataset[index] for index in range(min(len(dataset), limit or len(dataset)))]
    images = torch.stack([resize(item.image, list(size), antialias=True) for item in items])
    labels = np.array([int(item.gt_label) for item in items])
    return images.numpy().astype(np.float32), labels


def split_arrays(root: str | Path, category: str, split: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of the MVTec-AD-layout split ``root/category/split`` (see ``dataset_arrays``).

    Raises:
        ValueError: The split holds no images.
    """
    dataset = MVTecADDataset(root=root, category=category, split=split)
    if len(dataset) == 0:
        msg = f"No {split} images found in {Path(root) / category}"
        raise ValueError(msg)
    return dataset_arrays(dataset, size)

"""An MVTec-AD-layout split as one array batch, for export parity checks and calibration."""

from pathlib import Path

import numpy as np
import torch
from anomalib.data.datasets import MVTecADDataset
from torchvision.transforms.v2.functional import resize


def split_arrays(root: str | Path, category: str, split: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Images of ``root/category/split`` resized to ``size``: ``(N, 3, H, W)`` float32 in ``[0, 1]``, labels ``(N,)``.

    Labels are 0 for ``good`` images and 1 for defective ones (anomalib's ``gt_label``).

    Raises:
        ValueError: The split holds no images.
    """
    dataset = MVTecADDataset(root=root, category=category, split=split)
    if len(dataset) == 0:
        msg = f"No {split} images found in {Path(root) / category}"
        raise ValueError(msg)
    items = [dataset[index] for index in range(len(dataset))]
    images = torch.stack([resize(item.image, list(size), antialias=True) for item in items])
    labels = np.array([int(item.gt_label) for item in items])
    return images.numpy().astype(np.float32), labels

"""Images as arrays: a split as one array batch (export parity checks, calibration, timing), and one
array written as an image file."""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from anomalib.data.datasets import MVTecADDataset
from anomalib.data.datasets.base import AnomalibDataset
from PIL import Image
from torchvision.transforms.v2.functional import resize

from ..errors import InputError
from .checks import check_image_files


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


def split_arrays(
    root: str | Path, category: str, split: str, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of the MVTec-AD-layout split ``root/category/split`` (see ``dataset_arrays``).

    Raises:
        InputError: The split holds no images, or one of them cannot be read faithfully.
    """
    dataset = MVTecADDataset(root=root, category=category, split=split)
    if len(dataset) == 0:
        msg = f"No {split} images found in {Path(root) / category}"
        raise InputError(msg)
    check_image_files(dataset.samples["image_path"])
    return dataset_arrays(dataset, size)


def require_known(categories: Sequence[str], known: Sequence[str], what: str) -> None:
    """Raise ``InputError`` naming the categories of ``categories`` that are not ``known`` ``what``."""
    unknown = sorted(set(categories) - set(known))
    if unknown:
        msg = f"Unknown {what} {unknown}; choose from {list(known)}."
        raise InputError(msg)


def save_image(image: np.ndarray, path: Path) -> None:
    """Write ``(H, W, 3)`` or ``(H, W)`` values in ``[0, 1]`` as an 8-bit PNG, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)).save(path)


def write_category(
    folder: Path,
    normal: Callable[[], np.ndarray],
    defective: Callable[[str, int], tuple[np.ndarray, np.ndarray]],
    kinds: Sequence[str],
    num_train: int,
    num_test_good: int,
    num_test_per_defect: int,
) -> None:
    """Write one category in MVTec AD layout under ``folder``, drawing images in this order:
    ``train/good/000.png`` ... from ``normal()``, ``test/good/...`` likewise, then per kind
    ``test/<kind>/000.png`` and ``ground_truth/<kind>/000_mask.png`` from ``defective(kind, index)``."""
    for i in range(num_train):
        save_image(normal(), folder / "train" / "good" / f"{i:03d}.png")
    for i in range(num_test_good):
        save_image(normal(), folder / "test" / "good" / f"{i:03d}.png")
    for kind in kinds:
        for i in range(num_test_per_defect):
            image, mask = defective(kind, i)
            save_image(image, folder / "test" / kind / f"{i:03d}.png")
            save_image(mask.astype(np.float32), folder / "ground_truth" / kind / f"{i:03d}_mask.png")

"""Real defects: monocrystalline solar cells of ELPV laid out as anomalib ``Folder`` categories.

The ``elpv-dataset`` package (``pip install "anomalib-fastflow[elpv]"``) ships 2,624 electroluminescence
images of solar cells (300x300, grey), each labelled with a defect probability (0, 1/3, 2/3, 1) and
the cell type (``mono``, ``poly``). The images are licensed CC BY-NC-SA 4.0, so the splits are
built from the installed package at run time and never shipped. Only ``mono`` cells are read
(``poly`` cells are kept for independent checks); the labels file is parsed here rather than with
the package's ``load_dataset``, which decodes every image of both types.

A seeded split takes the good cells (probability 0) in a random order: the first ``train_images``
train, the last ``test_good`` are the normal test images; the first ``test_defective`` cells of
probability 1, in a random order of their own, are the anomalous ones. Each training-set size is
a category of its own with the same test images (whichever sizes are built, and when)::

    root/mono_200/train/good/cell0004.png
    root/mono_200/test/good/...
    root/mono_200/test/defective/...
    root/mono_100/...           (the first 100 of mono_200's training images)
    root/mono_32/...            (the first 32)

No masks: image metrics only.
"""

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..extras import require

CELL_TYPE = "mono"
TRAIN_SIZES = (200, 100, 32)


@dataclass(frozen=True)
class Cell:
    """One labelled image of the package: its path relative to its data folder, defect probability, type."""

    path: str
    probability: float
    cell_type: str


def read_labels() -> tuple[Path, list[Cell]]:
    """The installed package's data folder and every cell's label (no image is read).

    Raises:
        MissingExtraError: ``elpv-dataset`` is not installed (the message says how to install it).
    """
    require("elpv", ["elpv_dataset"], "the ELPV solar-cell dataset")
    folder = Path(str(resources.files("elpv_dataset") / "data"))
    cells = []
    for line in (folder / "labels.csv").read_text().splitlines():
        if line.strip():
            path, probability, cell_type = line.split()
            cells.append(Cell(path, float(probability), cell_type))
    return folder, cells


def category_name(train_images: int) -> str:
    """The category folder of a split with ``train_images`` training cells, e.g. ``mono_200``."""
    return f"{CELL_TYPE}_{train_images}"


def train_size(category: str) -> int:
    """The training-set size a category name stands for: ``mono_200`` -> 200.

    Raises:
        ValueError: The name is not ``mono_<N>``.
    """
    prefix, _, size = category.partition("_")
    if prefix != CELL_TYPE or not size.isdigit():
        msg = (
            f"ELPV category {category!r}: expected {CELL_TYPE}_<training images>, e.g. {category_name(200)}."
        )
        raise ValueError(msg)
    return int(size)


def build_elpv_categories(
    root: Path = Path("datasets/elpv"),
    train_sizes: Sequence[int] = TRAIN_SIZES,
    test_good: int = 100,
    test_defective: int = 100,
    seed: int = 0,
) -> list[str]:
    """Lay out ELPV's monocrystalline solar cells (real defects) as Folder categories ``mono_<N>``.

    The cells (image labels, no masks) come from the installed ``elpv-dataset`` package. Train on
    them with ``demo --dataset ELPV --root DIR --categories [mono_200]``, the benchmark
    (``--grid.data.name ELPV``) or ``anomalib train --data Folder``. The images are CC BY-NC-SA 4.0:
    the folders are for your own runs, not for redistribution. A category that already exists is
    left as it is (delete it to rebuild with other settings).

    Args:
        root: Where the categories are written.
        train_sizes: Training images per category (each at least 1); every category has the same
            good and defective test cells, none of them in any training set.
        test_good: Good test cells.
        test_defective: Defective test cells.
        seed: Seed of the split.

    Returns:
        The categories' names.

    Raises:
        MissingExtraError: ``elpv-dataset`` is not installed.
        InputError: A size below 1, or the package has fewer good or defective mono cells than asked for.
    """
    for name, values in {
        "train_sizes": train_sizes,
        "test_good": [test_good],
        "test_defective": [test_defective],
    }.items():
        if not values or min(values) < 1:
            msg = f"{name}={list(values) if name == 'train_sizes' else values[0]}: every size must be at least 1."
            raise InputError(msg)
    folder, cells = read_labels()
    good = sorted(cell.path for cell in cells if cell.cell_type == CELL_TYPE and cell.probability == 0)
    defective = sorted(cell.path for cell in cells if cell.cell_type == CELL_TYPE and cell.probability == 1)
    largest = max(train_sizes)
    if largest + test_good > len(good) or test_defective > len(defective):
        msg = (
            f"ELPV has {len(good)} good and {len(defective)} defective {CELL_TYPE} cells; asked for "
            f"{largest} + {test_good} good and {test_defective} defective."
        )
        raise InputError(msg)
    rng = np.random.default_rng(seed)
    good = [good[i] for i in rng.permutation(len(good))]
    defective = [defective[i] for i in rng.permutation(len(defective))]
    splits = {"test/good": good[len(good) - test_good :], "test/defective": defective[:test_defective]}
    names = []
    for size in train_sizes:
        name = category_name(size)
        names.append(name)
        category = Path(root) / name
        if category.is_dir():
            continue
        partial = category.with_name(f".{name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        for split, paths in {"train/good": good[:size], **splits}.items():
            (partial / split).mkdir(parents=True)
            for path in paths:
                shutil.copyfile(folder / path, partial / split / Path(path).name)
        partial.rename(category)  # a category is either whole or absent
    return names

"""Which data a benchmark runs on: the bundled demo data, MVTec AD, BTAD, any folder of images laid
out as MVTec AD (anomalib's ``Folder``, masks optional), ELPV's solar cells or CIFAR-10 one-class."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from anomalib.data import AnomalibDataModule
from lightning.pytorch.trainer.states import TrainerFn

from ..data import BTAD, CIFAR10, MVTec
from ..data.arrays import dataset_arrays, split_arrays
from ..data.demo import TEXTURES, build_demo_categories
from ..data.elpv import build_elpv_categories, train_size
from ..data.folder import folder_datamodule

DatasetName = Literal["demo", "MVTec", "BTAD", "Folder", "ELPV", "CIFAR10"]


@dataclass
class DataSpec:
    """A dataset and the categories to run.

    Attributes:
        name: ``demo`` (built under ``root`` when missing; the aligned textures and objects and
            the production-line parts), ``MVTec`` or ``BTAD`` (downloaded by
            anomalib when ``root/category`` is missing and a network is there), ``Folder`` (each
            category a folder of ``train/good``, ``test/good``, ``test/<defect>`` and, optionally,
            ``ground_truth/<defect>`` masks: ``data.folder``), ``ELPV`` (solar cells as ``Folder``
            categories ``mono_200``, ``mono_100``, ``mono_32``, split by the seed and built under ``root`` when
            missing: ``data.elpv``), or ``CIFAR10`` one-class (``root`` holds
            ``cifar-10-batches-py``). Without masks only image metrics are computed.
        root: Dataset root folder.
        categories: Categories to run, e.g. ``[bottle, cable]`` for MVTec AD, ``["01"]`` for BTAD,
            the normal classes (``[airplane, automobile, ...]``) for CIFAR10.
        batch_size: Training and evaluation batch size.
    """

    name: DatasetName = "demo"
    root: Path = Path("datasets/demo")
    categories: list[str] = field(default_factory=lambda: list(TEXTURES))
    batch_size: int = 8

    def datamodule(self, category: str, seed: int = 0, train_images: int | None = None) -> AnomalibDataModule:
        """The datamodule of one category (in-process loading: the fastest on a few CPU cores).

        ``train_images`` keeps only the first that many training images (for timing epochs on a
        few images: every epoch then sees the same images, as every epoch of a full run does).

        Raises:
            ValueError: ``train_images`` is not between 1 and the number of training images.
        """
        if self.name == "demo" and not (Path(self.root) / category).is_dir():
            build_demo_categories(self.root, [category], seed=seed)
        if self.name == "ELPV" and not (Path(self.root) / category).is_dir():
            build_elpv_categories(self.root, [train_size(category)], seed=seed)
        loading = {"train_batch_size": self.batch_size, "eval_batch_size": self.batch_size, "num_workers": 0}
        if self.name == "CIFAR10":
            datamodule = CIFAR10(root=self.root, normal_class=category, seed=seed, **loading)
        elif self.name in {"Folder", "ELPV"}:
            datamodule = folder_datamodule(Path(self.root) / category, seed=seed, **loading)
        else:
            datamodule_class = BTAD if self.name == "BTAD" else MVTec
            datamodule = datamodule_class(root=self.root, category=category, seed=seed, **loading)
        if train_images is not None:
            datamodule.setup(TrainerFn.FITTING)  # as the trainer would; its own setup then keeps the split
            available = len(datamodule.train_data)
            if not 1 <= train_images <= available:
                msg = f"train_images={train_images}, but {self.root}/{category} has {available} training images."
                raise ValueError(msg)
            datamodule.train_data = datamodule.train_data.subsample(list(range(train_images)))
        return datamodule

    def test_arrays(
        self, category: str, size: tuple[int, int], limit: int = 16
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first ``limit`` test images of ``category`` resized to ``size``, and their labels."""
        if self.name not in {"CIFAR10", "Folder", "ELPV"}:
            images, labels = split_arrays(self.root, category, "test", size)
            return images[:limit], labels[:limit]
        datamodule = self.datamodule(category)
        datamodule.prepare_data()
        datamodule.setup("test")
        return dataset_arrays(datamodule.test_data, size, limit)

"""Which data a benchmark runs on: the bundled demo textures, MVTec AD or BTAD, and their categories."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from anomalib.data import AnomalibDataModule

from ..data import BTAD, MVTec, build_demo_dataset
from ..data.demo import TEXTURES


@dataclass
class DataSpec:
    """A dataset in MVTec AD layout and the categories to run.

    Attributes:
        name: ``demo`` (built under ``root`` when missing), ``MVTec`` or ``BTAD`` (downloaded by
            anomalib when ``root/category`` is missing and a network is there).
        root: Dataset root folder.
        categories: Categories to run, e.g. ``[bottle, cable]`` for MVTec AD or ``["01"]`` for BTAD.
        batch_size: Training and evaluation batch size.
    """

    name: Literal["demo", "MVTec", "BTAD"] = "demo"
    root: Path = Path("datasets/demo")
    categories: list[str] = field(default_factory=lambda: list(TEXTURES))
    batch_size: int = 8

    def datamodule(self, category: str, seed: int = 0) -> AnomalibDataModule:
        """The datamodule of one category (in-process loading: the fastest on a few CPU cores)."""
        if self.name == "demo" and not (Path(self.root) / category).is_dir():
            build_demo_dataset(self.root, [category], seed=seed)
        datamodule_class = BTAD if self.name == "BTAD" else MVTec
        return datamodule_class(
            root=self.root,
            category=category,
            train_batch_size=self.batch_size,
            eval_batch_size=self.batch_size,
            num_workers=0,
            seed=seed,
        )

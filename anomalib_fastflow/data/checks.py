"""Fail fast on bad data: empty splits and unreadable images are reported before training starts."""

from collections.abc import Iterable
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image, UnidentifiedImageError


def check_image_files(paths: Iterable[str | Path]) -> None:
    """Open and decode every image header; raise on the first file that is missing or corrupt.

    Raises:
        ValueError: Names the unreadable file and why.
    """
    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, UnidentifiedImageError, SyntaxError) as error:
            msg = f"Unreadable image {path}: {error}"
            raise ValueError(msg) from error


class DataCheck(Callback):
    """Checks the datamodule's images once, at ``setup``, for every anomalib datamodule.

    Raises:
        ValueError: The training split is empty, or an image or mask cannot be read.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Verify every image and mask of the datasets this stage will read."""
        del pl_module
        datamodule = trainer.datamodule
        if datamodule is None:
            return
        names = {"fit": ("train_data", "val_data"), "validate": ("val_data",), "test": ("test_data",)}
        for name in names.get(stage, ("test_data",)):
            dataset = getattr(datamodule, name, None)
            samples = getattr(dataset, "samples", None)
            if samples is None:
                continue
            if name == "train_data" and len(samples) == 0:
                where = Path(getattr(datamodule, "root", "?")) / getattr(datamodule, "category", "")
                msg = f"No training images found for {type(datamodule).__name__} in {where}"
                raise ValueError(msg)
            check_image_files(samples["image_path"])
            if "mask_path" in samples:
                check_image_files(path for path in samples["mask_path"] if isinstance(path, str) and path)

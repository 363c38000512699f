"""Fail fast on bad data: empty splits and unreadable images are reported before training starts.

Every image is decoded whole, so a truncated file is found here and not halfway through a run.
Images of more than 8 bits per channel are refused: anomalib reads them through PIL's RGB
conversion, which clips a 16-bit grey image's values to 255 (almost all white) without a word;
convert them to 8 bit first (``docs/errors.md``).
"""

import functools
from collections.abc import Iterable
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image, UnidentifiedImageError

from ..errors import InputError

HIGH_BIT_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # PIL modes anomalib would clip


def check_image_file(path: str | Path) -> None:
    """Decode the image at ``path`` whole and refuse it if anomalib could not read it faithfully.

    Raises:
        InputError: Names the file and what is wrong: missing, empty, not an image, truncated or
            corrupt, larger than PIL decodes safely (a decompression bomb), or more than 8 bits deep.
    """
    try:
        with Image.open(path) as image:
            mode = image.mode
            image.load()
    except FileNotFoundError:
        msg = f"Image not found: {path}"
        raise InputError(msg) from None
    except Image.DecompressionBombError as error:
        msg = f"Unreadable image {path}: {error} (a decompression bomb, or an image far too large to use)"
        raise InputError(msg) from None
    except UnidentifiedImageError:
        empty = Path(path).is_file() and Path(path).stat().st_size == 0
        msg = f"Unreadable image {path}: {'the file is empty' if empty else 'not an image PIL can read'}."
        raise InputError(msg) from None
    except (OSError, SyntaxError, ValueError) as error:
        msg = f"Unreadable image {path}: {error} (truncated or corrupt)."
        raise InputError(msg) from None
    if mode in HIGH_BIT_DEPTH_MODES:
        msg = (
            f"Image {path} has more than 8 bits per channel (PIL mode {mode}); anomalib would clip it to "
            "8 bits on reading. Convert it to 8-bit grey or RGB first, scaling its range "
            "(e.g. with PIL: Image.fromarray((array / array.max() * 255).astype('uint8')))."
        )
        raise InputError(msg)


def check_image_files(paths: Iterable[str | Path]) -> None:
    """``check_image_file`` for every path, in order; raise on the first bad one.

    A file that passed before in this process, unchanged since (same size and modification time),
    is not decoded again: the demo checks its data before the Engine runs, ``DataCheck`` at each
    stage, and a validation split drawn from the test split would otherwise be decoded twice.

    Raises:
        InputError: Names the first bad file and why.
    """
    for path in paths:
        try:
            status = Path(path).stat()
        except FileNotFoundError:
            msg = f"Image not found: {path}"
            raise InputError(msg) from None
        _check_unchanged(str(path), status.st_mtime_ns, status.st_size)


@functools.cache
def _check_unchanged(path: str, mtime_ns: int, size: int) -> None:
    """``check_image_file``, remembered by path, modification time and size (only passes are kept)."""
    del mtime_ns, size  # part of the cache key only
    check_image_file(path)


def check_datamodule(datamodule: object, stage: str) -> None:
    """Verify every image and mask of the datasets ``stage`` reads (``fit``, ``validate``, ``test``,
    ``predict``) of a datamodule that is set up.

    Raises:
        InputError: The training split is empty, or an image or mask cannot be read faithfully.
    """
    names = {"fit": ("train_data", "val_data"), "validate": ("val_data",), "test": ("test_data",)}
    for name in names.get(stage, ("test_data",)):
        dataset = getattr(datamodule, name, None)
        samples = getattr(dataset, "samples", None)
        if samples is None:
            continue
        if name == "train_data" and len(samples) == 0:
            where = Path(getattr(datamodule, "root", "?")) / getattr(datamodule, "category", "")
            msg = f"No training images found for {type(datamodule).__name__} in {where}"
            raise InputError(msg)
        check_image_files(samples["image_path"])
        if "mask_path" in samples:
            check_image_files(path for path in samples["mask_path"] if isinstance(path, str) and path)


class DataCheck(Callback):
    """Checks the datamodule's images once, at ``setup``, for every anomalib datamodule
    (``check_datamodule``).

    Raises:
        InputError: The training split is empty, or an image or mask cannot be read faithfully.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Verify every image and mask of the datasets this stage will read."""
        del pl_module
        if trainer.datamodule is not None:
            check_datamodule(trainer.datamodule, stage)

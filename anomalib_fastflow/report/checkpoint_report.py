"""The report of a trained checkpoint: tested on a dataset, or scoring a folder of new images.

``write_checkpoint_report`` is what ``anomalib-fastflow report`` runs, callable from Python. Its
inputs are checked before the model loads (the output folder can be written, every new image can
be read), the checkpoint is read once and weights-only, and the page is written beside its folder
and moved into place whole, so a failed run leaves the previous page as it was.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from anomalib.data import PredictDataset
from anomalib.data.utils.image import get_image_filenames
from anomalib.engine import Engine
from anomalib.visualization import ImageVisualizer
from torch.utils.data import DataLoader

from ..benchmark.datasets import DataSpec
from ..checkpoint import read_fastflow_checkpoint
from ..data.checks import check_image_files
from ..errors import InputError, MissingInputError, require_at_least
from ..lightning_model import FastFlow
from .collector import ReportCollector
from .page import write_page
from .run import describe_run, thresholds
from .staging import staged_folder

ANOMALIB_ENGINE_LOGGER = "anomalib.engine.engine"
NO_CKPT_PATH_MESSAGE = "ckpt_path is not provided"  # anomalib's warning when the Engine loads no weights


def write_checkpoint_report(
    ckpt_path: Path,
    data: DataSpec | None = None,
    images: Path | None = None,
    output: Path = Path("results/report"),
    batch_size: int = 8,
) -> Path:
    """Write ``output/index.html`` for the checkpoint on ``data`` (with metrics) or ``images`` (without).

    Args:
        ckpt_path: A FastFlow checkpoint.
        data: Dataset and categories to test on (``benchmark.datasets.DataSpec``).
        images: A folder of new images to score instead (no labels: histogram and gallery only).
        output: The report's folder (replaced whole once the new page is written).
        batch_size: Images per batch.

    Returns:
        The page's path.

    Raises:
        InputError: Both or neither of ``data`` and ``images``, ``batch_size`` below 1, an output
            that cannot be written, a folder without images or a bad image, or a file that is not
            a FastFlow checkpoint (all before the model loads or predicts).
    """
    if (data is None) == (images is None):
        msg = "report: give either --data (a dataset to test on) or --images (a folder of new images)."
        raise InputError(msg)
    require_at_least("batch_size", batch_size, 1, "the images per batch")
    with staged_folder(output) as folder:
        if images is not None:
            check_image_files(new_images(images))
        checkpoint = read_fastflow_checkpoint(ckpt_path, FastFlow.checkpoint_safe_globals())
        model = FastFlow.from_checkpoint(checkpoint)
        visualizer = model.visualizer if isinstance(model.visualizer, ImageVisualizer) else None
        model.visualizer = None  # the report draws each image once, into its own folder
        collector = ReportCollector(folder, visualizer=visualizer)
        engine = Engine(default_root_dir=folder / "run", logger=False, callbacks=[collector])
        metrics: dict[str, dict[str, float]] = {}
        with _weights_already_loaded():
            if images is not None:
                collector.set_category(Path(images).name)
                dataset = PredictDataset(images, image_size=tuple(model.input_size))
                loader = DataLoader(dataset, batch_size=batch_size, collate_fn=dataset.collate_fn)
                engine.predict(model, loader)
            else:
                data = DataSpec(data.name, data.root, data.categories, batch_size)
                for category in data.categories:
                    collector.set_category(category)
                    [metrics[category]] = engine.test(
                        model, datamodule=data.datamodule(category), verbose=False
                    )
                    metrics[category] |= thresholds(model)
        start = time.perf_counter()
        run = describe_run(model, checkpoint.epochs, checkpoint.steps, str(ckpt_path))
        write_page(folder, f"FastFlow report: {Path(ckpt_path).name}", run, metrics, collector.images)
        page_seconds = time.perf_counter() - start
    logging.getLogger(__name__).info(
        "Report %s: panels %.1f s during the predictions, page %.1f s after them",
        output,
        collector.seconds,
        page_seconds,
    )
    return Path(output) / "index.html"


def new_images(folder: Path) -> list[Path]:
    """The image files of a folder of new images, as anomalib's ``PredictDataset`` finds them.

    Raises:
        MissingInputError: No such folder or file.
        InputError: It holds no image file anomalib reads.
    """
    folder = Path(folder)
    if not folder.exists():
        msg = f"No folder of new images at {folder}"
        raise MissingInputError(msg)
    try:
        paths = sorted(get_image_filenames(folder))
    except ValueError as error:  # anomalib refuses e.g. a name with non-printable characters
        if not str(error).startswith("Found 0"):
            msg = f"Cannot read the images in {folder}: {error}"
            raise InputError(msg) from None
        paths = []
    if not paths:
        msg = f"No images in {folder}: give a folder of image files (png, jpg, bmp, tiff, ...)."
        raise InputError(msg)
    return paths


@contextmanager
def _weights_already_loaded() -> Iterator[None]:
    """Quiet anomalib's "ckpt_path is not provided. Model weights will not be loaded.": the weights
    came from the checkpoint the user named, loaded before the Engine ran."""

    def keep(record: logging.LogRecord) -> bool:
        return NO_CKPT_PATH_MESSAGE not in record.getMessage()

    logger = logging.getLogger(ANOMALIB_ENGINE_LOGGER)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)

"""A Lightning callback that keeps what a report needs of each test or predicted image."""

import time
from dataclasses import dataclass
from pathlib import Path

from anomalib.data import ImageBatch
from anomalib.models.components import AnomalibModule
from anomalib.visualization import ImageVisualizer
from anomalib.visualization.image.item_visualizer import visualize_image_item
from lightning.pytorch import Callback, Trainer

OVERLAY_SIZE = (192, 192)  # (width, height) of each panel of a gallery image
JPEG_QUALITY = 85


@dataclass
class ScoredImage:
    """One image of a report.

    Attributes:
        category: Dataset category (the datamodule's, or the folder's name).
        path: The source image's path.
        score: anomalib's normalised image score (the image threshold sits at 0.5).
        decision: Whether anomalib's post-processor called the image anomalous.
        label: Ground truth (True: anomalous), or None for unlabelled images.
        panels: The gallery image (anomalib's visualizer: image, masks, overlays), relative to the page.
    """

    category: str
    path: str
    score: float
    decision: bool
    label: bool | None
    panels: str


class ReportCollector(Callback):
    """Records every test and predict batch's images for a report, and draws their panels with
    anomalib's ``visualize_image_item`` and the model's visualizer settings into ``folder/images``.

    Args:
        folder: The report's folder (panels go to ``folder/images``).
        category: Category name for the images that follow (``set_category`` changes it).
        visualizer: Whose fields and overlays to draw; default: the model's, if it has an
            ``ImageVisualizer``, else anomalib's defaults.
    """

    def __init__(self, folder: Path, category: str = "", visualizer: ImageVisualizer | None = None) -> None:
        self.folder = Path(folder)
        self.category = category
        self.visualizer = visualizer
        self.images: list[ScoredImage] = []
        self._pending: list[ImageBatch] = []
        self.seconds = 0.0  # spent drawing and writing panels

    def set_category(self, category: str) -> None:
        """Name the category of the images collected from now on."""
        self.category = category

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: AnomalibModule, outputs: ImageBatch, *args, **kwargs
    ) -> None:
        """Keep the batch of predictions: the model's post-processor, a callback that runs after this
        one, normalises its scores and decides in place; they are read at the epoch's end."""
        del trainer, pl_module, args, kwargs
        self._pending.append(outputs)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: AnomalibModule) -> None:
        """Record the epoch's images (scores, decisions, labels) and write their panels."""
        del trainer
        start = time.perf_counter()
        (self.folder / "images").mkdir(parents=True, exist_ok=True)
        visualizer = self.visualizer or pl_module.visualizer
        visualizer = visualizer if isinstance(visualizer, ImageVisualizer) else ImageVisualizer()
        for item in (item for batch in self._pending for item in batch):
            name = f"images/{len(self.images):05d}.jpg"
            panels = visualize_image_item(
                item,
                fields=visualizer.fields,
                overlay_fields=visualizer.overlay_fields,
                field_size=OVERLAY_SIZE,
                fields_config=visualizer.fields_config,
                overlay_fields_config=visualizer.overlay_fields_config,
                text_config=visualizer.text_config,
            )
            panels.convert("RGB").save(self.folder / name, quality=JPEG_QUALITY)
            self.images.append(
                ScoredImage(
                    category=self.category,
                    path=str(item.image_path),
                    score=float(item.pred_score),
                    decision=bool(item.pred_label),
                    label=None if item.gt_label is None else bool(item.gt_label),
                    panels=name,
                )
            )
        self._pending.clear()
        self.seconds += time.perf_counter() - start

    def on_predict_batch_end(self, *args, **kwargs) -> None:
        """The same for predicted (unlabelled) images."""
        self.on_test_batch_end(*args, **kwargs)

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: AnomalibModule) -> None:
        """The same for predicted (unlabelled) images."""
        self.on_test_epoch_end(trainer, pl_module)

"""The demo: build the demo data, train and test FastFlow per category, summarise, write a report page.

``run_demo`` is what ``anomalib-fastflow demo`` runs, callable from Python, and ``format_demo`` what
it prints. It takes any ``DataSpec`` dataset too (your own ``Folder`` categories, ELPV's cells).
"""

import csv
import time
from dataclasses import dataclass
from pathlib import Path

from anomalib.engine import Engine
from lightning.pytorch import seed_everything

from .backbones import OFFLINE_BACKBONE
from .benchmark.datasets import DatasetName, DataSpec
from .data.checks import check_datamodule
from .data.demo import CATEGORIES, build_demo_categories
from .errors import InputError, require_at_least
from .lightning_model import FastFlow
from .report import ReportCollector, describe_run, staged_folder, thresholds, write_page

DemoRow = dict[str, float | str]


@dataclass(frozen=True)
class DemoResult:
    """What ``run_demo`` did: a row per category, the summary CSV and the report page."""

    rows: list[DemoRow]
    backbone: str
    dataset: str
    metrics_csv: Path
    page: Path


def run_demo(
    root: Path = Path("datasets/demo"),
    output: Path = Path("results/demo"),
    categories: list[str] = list(CATEGORIES),
    backbone: str = OFFLINE_BACKBONE,
    max_epochs: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    dataset: DatasetName = "demo",
) -> DemoResult:
    """Build the demo dataset, train and test FastFlow per category, summarise and write a page.

    Heatmaps (image, ground truth, anomaly map, predicted mask) are written by anomalib's
    visualizer under ``output/FastFlow/MVTec/<category>/latest/images``; a summary goes to
    ``output/metrics.csv`` and a page to look at to ``output/report/index.html``. The same runs on
    other data: ``--dataset Folder --root DIR`` with categories laid out as MVTec AD's
    (``data.folder``; pixel AUROC only where there are masks), ``--dataset ELPV`` (real solar-cell
    defects, ``build-elpv``), ``MVTec`` or ``BTAD``.

    Every category's images are checked before the first one trains, so a bad file stops the run
    before anything is written; the report folder is replaced only when every category ran.

    Args:
        root: Where the demo dataset is written (MVTec AD layout), or the dataset's root.
        output: Where results, checkpoints and heatmaps go.
        categories: Demo categories to run: textures and objects (the default), or the
            production-line parts (``gear``, ``nut``, ``label``, ``board``; ``data.line``); the
            dataset's categories for other datasets.
        backbone: timm backbone name; the default needs no download.
        max_epochs: Training epochs per category (None: FastFlow's default budget).
        batch_size: Training and evaluation batch size.
        seed: Seed for the data and the training.
        dataset: Which dataset ``root`` holds (``benchmark.datasets.DataSpec``).

    Returns:
        Per category (``rows``): ``category``, ``epochs``, ``image_AUROC``, ``pixel_AUROC`` (``""``
        without masks), ``seconds`` (fit and test) and ``heatmaps`` (anomalib's images of the
        category); and where the summary and the page went.

    Raises:
        InputError: ``batch_size`` or ``max_epochs`` below 1, an empty training split or a bad image.
    """
    require_at_least("batch_size", batch_size, 1, "the images per batch")
    if max_epochs is not None:
        require_at_least("max_epochs", max_epochs, 1, "the training epochs per category")
    output = Path(output)
    data = DataSpec(name=dataset, root=root, categories=categories, batch_size=batch_size)
    if dataset == "demo":
        build_demo_categories(root, categories, seed=seed)
    datamodules = {category: data.datamodule(category, seed) for category in categories}
    for category, datamodule in datamodules.items():
        try:
            datamodule.setup()
        except RuntimeError as error:  # anomalib's datasets: "Found 0 ... images in <folder>"
            if not str(error).startswith("Found 0"):
                raise
            msg = f"{category}: {error}"
            raise InputError(msg) from None
        check_datamodule(datamodule, "fit")
        check_datamodule(datamodule, "test")
    rows: list[DemoRow] = []
    all_metrics: dict[str, dict[str, float]] = {}
    with staged_folder(output / "report") as report_folder:
        collector = ReportCollector(report_folder)
        for category, datamodule in datamodules.items():
            seed_everything(seed, workers=True)
            start = time.perf_counter()
            model = FastFlow(backbone=backbone)
            engine = Engine(
                max_epochs=max_epochs, default_root_dir=output, logger=False, callbacks=[collector]
            )
            engine.fit(model, datamodule=datamodule)
            collector.set_category(category)
            [metrics] = engine.test(model, datamodule=datamodule)
            all_metrics[category] = metrics | thresholds(model)
            rows.append(
                {
                    "category": category,
                    "epochs": engine.trainer.max_epochs,
                    "image_AUROC": round(metrics["image_AUROC"], 4),
                    "pixel_AUROC": round(metrics["pixel_AUROC"], 4) if "pixel_AUROC" in metrics else "",
                    "seconds": round(time.perf_counter() - start, 1),
                    "heatmaps": str(
                        output / "FastFlow" / datamodule.name / datamodule.category / "latest" / "images"
                    ),
                }
            )
        run = describe_run(model, None, None, f"anomalib-fastflow demo, seed {seed}")
        run["budget"] = ", ".join(f"{row['category']} {row['epochs']} epochs" for row in rows)
        write_page(report_folder, f"FastFlow demo ({dataset} data)", run, all_metrics, collector.images)
    with (output / "metrics.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return DemoResult(rows, backbone, dataset, output / "metrics.csv", output / "report" / "index.html")


def format_demo(result: DemoResult) -> str:
    """The demo's summary as the command prints it: a line per category, then where the files are."""
    lines = [f"FastFlow demo ({result.backbone}, {result.dataset} data):"]
    for row in result.rows:
        pixel = f"pixel AUROC {row['pixel_AUROC']:.4f}" if row["pixel_AUROC"] != "" else "no masks"
        lines.append(
            f"  {row['category']:<8} {row['epochs']:>3} epochs  image AUROC {row['image_AUROC']:.4f}  "
            f"{pixel}  {row['seconds']:>6.1f} s  heatmaps: {row['heatmaps']}"
        )
    lines.append(f"Summary written to {result.metrics_csv}; report: {result.page}")
    return "\n".join(lines)

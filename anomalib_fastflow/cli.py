"""``anomalib-fastflow``: what the ``anomalib`` command cannot do for this plugin.

Subcommands:
    demo              build the demo dataset, train and test FastFlow on each category, print AUROCs
    build-demo-data   write the demo dataset only
    build-elpv        lay out ELPV's monocrystalline solar cells (real defects) as Folder categories
    disturb           write a non-aligned (disturbed) copy of a dataset's test split (paper Sec. 8)
    export            export a checkpoint to ONNX / OpenVINO / TensorRT and report parity and latency
    compare-training  train ours and anomalib's Fastflow side by side: accuracy, time, memory
    benchmark         the paper's comparison (Tables 1 and 2) with PatchCore, CFlow and Fastflow
    report            one HTML page of a trained model on a dataset or on new images
"""

from . import quiet  # noqa: F401, I001 - first: filters third-party import warnings before they fire

import csv
import sys
import time
from pathlib import Path

import torch
from anomalib.engine import Engine
from jsonargparse import auto_cli
from lightning.pytorch import seed_everything

from . import __version__
from .backbones import OFFLINE_BACKBONE, PRESETS, PRETRAINED_WEIGHTS
from .benchmark.datasets import DatasetName, DataSpec
from .benchmark.epoch_time import format_epoch_times, measure_epoch_times, write_epoch_seconds
from .benchmark.grid import BenchmarkConfig, run_grid
from .benchmark.report import provenance, write_report
from .benchmark.versus_anomalib import compare_with_anomalib_fastflow
from .data.arrays import split_arrays
from .data.demo import ALL_CATEGORIES, CATEGORIES, build_demo_categories
from .data.elpv import TRAIN_SIZES, build_elpv_categories
from .data.disturbed import Disturbance, write_disturbed_copy
from .export import (
    FORMATS,
    ParityRow,
    TorchRuntime,
    openvino_bf16_unavailable_reason,
    export_formats,
    format_report,
    load_runtime,
    parity_report,
    torch_bf16_unavailable_reason,
)
from .export.exporter import require_export_extra
from .extras import MissingExtraError
from .lightning_model import FastFlow
from .packaged_configs import config_files
from .report import ReportCollector, checkpoint_progress, describe_run, thresholds, write_page


def demo(
    root: Path = Path("datasets/demo"),
    output: Path = Path("results/demo"),
    categories: list[str] = list(CATEGORIES),
    backbone: str = OFFLINE_BACKBONE,
    max_epochs: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    dataset: DatasetName = "demo",
) -> list[dict[str, float | str]]:
    """Build the demo dataset, train and test FastFlow per category, and print the results.

    Heatmaps (image, ground truth, anomaly map, predicted mask) are written by anomalib's
    visualizer under ``output/FastFlow/MVTec/<category>/latest/images``; a summary goes to
    ``output/metrics.csv`` and a page to look at to ``output/report/index.html`` (``report``).
    The same runs on other data: ``--dataset Folder --root DIR`` with categories laid out as
    MVTec AD's (``data.folder``; pixel AUROC only where there are masks), ``--dataset ELPV`` (real
    solar-cell defects, ``build-elpv``), ``MVTec`` or ``BTAD``.

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
    """
    data = DataSpec(name=dataset, root=root, categories=categories, batch_size=batch_size)
    if dataset == "demo":
        build_demo_categories(root, categories, seed=seed)
    rows: list[dict[str, float | str]] = []
    collector = ReportCollector(output / "report")
    all_metrics: dict[str, dict[str, float]] = {}
    for category in categories:
        seed_everything(seed, workers=True)
        start = time.perf_counter()
        model = FastFlow(backbone=backbone)
        datamodule = data.datamodule(category, seed)
        engine = Engine(max_epochs=max_epochs, default_root_dir=output, logger=False, callbacks=[collector])
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
                    Path(output) / "FastFlow" / datamodule.name / datamodule.category / "latest" / "images"
                ),
            }
        )
    output.mkdir(parents=True, exist_ok=True)
    with (output / "metrics.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nFastFlow demo ({backbone}, {dataset} data):")
    for row in rows:
        pixel = f"pixel AUROC {row['pixel_AUROC']:.4f}" if row["pixel_AUROC"] != "" else "no masks"
        print(
            f"  {row['category']:<8} {row['epochs']:>3} epochs  image AUROC {row['image_AUROC']:.4f}  "
            f"{pixel}  {row['seconds']:>6.1f} s  heatmaps: {row['heatmaps']}"
        )
    run = describe_run(model, None, None, f"anomalib-fastflow demo, seed {seed}")
    run["budget"] = ", ".join(f"{row['category']} {row['epochs']} epochs" for row in rows)
    page = write_page(
        output / "report", f"FastFlow demo ({dataset} data)", run, all_metrics, collector.images
    )
    print(f"Summary written to {output / 'metrics.csv'}; report: {page}")
    return rows


def build_demo_data(
    root: Path = Path("datasets/demo"), categories: list[str] = list(ALL_CATEGORIES), seed: int = 0
) -> Path:
    """Write the demo dataset (MVTec AD layout) under ``root`` and return it.

    Args:
        root: Dataset root.
        categories: The aligned textures and objects (``brick``, ``grass``, ``gravel``, ``cup``,
            ``retina``) and the production-line parts with pose and light nuisance (``gear``,
            ``nut``, ``label``, ``board``); all by default.
        seed: Seed of every image drawn.
    """
    return build_demo_categories(root, categories, seed=seed)


def build_elpv(
    root: Path = Path("datasets/elpv"), train_sizes: list[int] = list(TRAIN_SIZES), seed: int = 0
) -> list[str]:
    """Lay out ELPV's monocrystalline solar cells (real defects, image labels, no masks) as ``Folder``
    categories ``mono_<N>`` under ``root``, from the installed ``elpv-dataset`` package.

    Train on them with ``demo --dataset ELPV --root DIR --categories [mono_200]``, the benchmark
    (``--grid.data.name ELPV``) or ``anomalib train --data Folder`` (``data.elpv`` gives the layout).
    The images are CC BY-NC-SA 4.0: the folders are for your own runs, not for redistribution.

    Args:
        root: Where the categories are written (an existing one is kept).
        train_sizes: Training images per category; every category has the same 100 good and 100
            defective test cells.
        seed: Seed of the split.
    """
    names = build_elpv_categories(root, train_sizes, seed=seed)
    print(f"ELPV mono cells under {root}: {', '.join(names)}")
    return names


def configs(names: list[str] | None = None, output: Path | None = None) -> list[Path]:
    """Print the paths of the preset configs shipped with the package, or copy them to ``output``.

    Each config works as it is with ``anomalib train -c PATH`` (model configs) or
    ``anomalib-fastflow benchmark --config PATH`` (``benchmark/`` grids); copy one to edit it.

    Args:
        names: Configs to list or copy, by file name without ``.yaml`` (e.g. ``fastflow_resnet18``,
            ``benchmark/quick``); all of them by default.
        output: Folder to copy them to (created if missing); ``None`` prints the installed paths.
    """
    paths = config_files(names, output)
    for path in paths:
        print(path)
    return paths


def disturb(
    root: Path,
    output: Path,
    categories: list[str],
    copies: int = 4,
    seed: int = 0,
    disturbance: Disturbance = Disturbance(),
) -> dict[str, int]:
    """Write a non-aligned copy of an MVTec-AD-layout dataset: the paper's disturbed test sets (Sec. 8).

    Each test image (and its mask) is written ``copies`` times under a random zoom (ratio 0.85),
    rotation (+-15 degrees) and translation (+-0.15 of the size); training images are copied
    unchanged. Test any anomalib model on it with ``anomalib test ... --data MVTec --data.root
    <output> --data.category <category>``. See ``data.disturbed`` for the layout and the fill.

    Args:
        root: Dataset root in MVTec AD layout (``<root>/<category>/test/<defect>/...``).
        output: Root of the disturbed copy (its categories are replaced).
        categories: Categories to copy.
        copies: Disturbed copies per test image (the paper: 4).
        seed: Seed of the transforms; the same seed writes the same files.
        disturbance: Ranges, fill and resampling, e.g. ``--disturbance.max_rotation 10
            --disturbance.fill reflect --disturbance.interpolation bilinear``.
    """
    written = write_disturbed_copy(root, output, categories, copies, seed, disturbance)
    for category, count in written.items():
        print(f"{category}: {count} disturbed test images in {Path(output) / category / 'test'}")
    return written


def export(
    ckpt_path: Path,
    data_root: Path,
    category: str,
    output: Path = Path("results/export"),
    formats: list[str] = list(FORMATS),
    torch_bf16: bool = True,
    calibration_images: int = 32,
    repeats: int = 20,
) -> list[ParityRow]:
    """Export a FastFlow checkpoint and check every format against PyTorch on a test split.

    Prints, per format: the precision it runs in (read back from OpenVINO's compiled model),
    max/mean absolute anomaly-map difference to PyTorch eager, image AUROC and its drop, latency
    (median, min-max) and FPS at batch 1 and 8. Formats that cannot run here (TensorRT without a
    GPU, bf16 where the CPU has none: its file is still written) are listed with the reason. The
    table goes to ``output/parity.md`` with the command, the CPU and the package versions that
    made it.

    Args:
        ckpt_path: Lightning checkpoint of ``anomalib_fastflow.FastFlow``.
        data_root: Dataset root in MVTec AD layout.
        category: Category whose ``test`` split is compared and whose ``train`` images calibrate INT8.
        output: Folder for the exported models and the report.
        formats: Any of onnx, openvino_fp32, openvino_fp16, openvino_int8, openvino_int8_ptq,
            openvino_bf16 (bf16 but for the image's first stage), tensorrt_fp32, tensorrt_fp16.
        torch_bf16: Also compare PyTorch eager under bf16 CPU autocast (where oneDNN has bf16).
        calibration_images: Normal training images used to calibrate ``openvino_int8_ptq``.
        repeats: Timed runs per latency figure (after two warm-up runs).
    """
    require_export_extra(formats, run=True)
    model = FastFlow.from_checkpoint(ckpt_path)
    size = tuple(model.input_size)
    images, labels = split_arrays(data_root, category, "test", size)
    normal_images, _ = split_arrays(data_root, category, "train", size)
    paths, skipped = export_formats(model, output, formats, normal_images[:calibration_images])
    if "openvino_bf16" in paths and (reason := openvino_bf16_unavailable_reason()):
        skipped["openvino_bf16"] = f"{reason} (written to {paths.pop('openvino_bf16')}, not measured)"
    runtimes = {name: load_runtime(name, path) for name, path in paths.items()}
    if torch_bf16:
        if reason := torch_bf16_unavailable_reason():
            skipped["torch_bf16"] = reason
        else:
            runtimes["torch_bf16"] = TorchRuntime(model, autocast_dtype=torch.bfloat16)
    rows = parity_report(TorchRuntime(model), runtimes, images, labels, repeats=repeats)
    report = format_report(rows) + "".join(
        f"\n\n{name}: skipped: {reason}" for name, reason in skipped.items()
    )
    heading = f"{provenance()}\n\nParity against PyTorch eager on {len(images)} test images of {category}:"
    (Path(output) / "parity.md").write_text(f"{heading}\n\n{report}\n")
    print(f"\n{heading}\n{report}")
    return rows


def compare_training(
    data: DataSpec = DataSpec(),
    output: Path = Path("results/compare_training"),
    backbone: str = OFFLINE_BACKBONE,
    weights: str = PRETRAINED_WEIGHTS,
    epochs: int = 25,
    seed: int = 0,
    epoch_time_backbones: list[str] = list(PRESETS),
    epoch_time_images: int = 4,
    epoch_time_epochs: int = 8,
    epoch_time_rounds: int = 5,
) -> None:
    """Train our FastFlow and anomalib's Fastflow side by side and print both tables.

    1. Per category of ``data``: both models on ``backbone`` for ``epochs`` epochs (same data,
       input size, seed): image/pixel AUROC, fit wall time, training seconds per epoch, peak memory,
       and the wall time ours needs to reach anomalib's final image AUROC. Written to
       ``output/comparison.md`` and ``comparison.csv``; ``--epochs 0`` skips it.
    2. Per backbone preset of ``epoch_time_backbones`` (random weights, a training set of the
       first ``epoch_time_images`` images of the first category): seconds per epoch, ours /
       anomalib's, each the median of the epochs after the first, in interleaved rounds (the
       table gives medians over rounds). Written to ``output/epoch_time.md``, every epoch's
       seconds to ``output/epoch_time.csv``; ``--epoch_time_backbones []`` skips it (CaiT-M48
       takes minutes per epoch on a CPU).

    Args:
        data: Dataset and categories, e.g. ``--data.name MVTec --data.root datasets/MVTecAD
            --data.categories [bottle]``; the default is the demo data (built when missing).
        output: Folder for the runs and the tables.
        backbone: Backbone of the accuracy comparison.
        weights: Backbone weights of the accuracy comparison: ``pretrained``, ``random`` or a file.
        epochs: Training epochs of both models (0: only the seconds per epoch per preset).
        seed: Seed of data order and initialisation, the same for both.
        epoch_time_backbones: Presets whose seconds per epoch are compared.
        epoch_time_images: Training images (one batch, the same every epoch) for that comparison.
        epoch_time_epochs: Epochs per model and preset for that comparison (at least 2).
        epoch_time_rounds: Interleaved runs of both models per preset (ours, anomalib's, ...).
    """
    if epochs > 0:
        compare_with_anomalib_fastflow(data, output, backbone, weights, epochs, seed)
    if epoch_time_backbones:
        rows = measure_epoch_times(
            epoch_time_backbones,
            data,
            output / "epoch_time",
            epoch_time_images,
            epoch_time_epochs,
            seed,
            epoch_time_rounds,
        )
        title = f"Seconds per training epoch (random weights, {epoch_time_images} images)"
        report = f"{title}:\n\n{format_epoch_times(rows)}\n"
        (output / "epoch_time.md").write_text(report)
        write_epoch_seconds(rows, output / "epoch_time.csv")
        print(f"\n{report}")


def benchmark(grid: BenchmarkConfig = BenchmarkConfig()) -> str:
    """Run a benchmark grid and write its CSVs, ``report.md`` and plots under ``grid.output``.

    Example: ``anomalib-fastflow benchmark --config configs/benchmark/quick.yaml``. Finished runs
    are kept in ``accuracy.csv`` and ``cost.csv``; running the same command again resumes the grid
    (failed runs are retried). See ``BenchmarkConfig`` for every setting (``--grid.<name>``).

    Args:
        grid: Models, backbones, data, epochs per model, runtimes, timing and output folder.
    """
    accuracy, cost = run_grid(grid)
    heading = (
        f"# Benchmark: {', '.join(grid.models)} on {', '.join(grid.backbones)} ({grid.weights} weights)\n\n"
        f"{provenance()}\n\n"
        f"Data: {grid.data.name} {grid.data.categories} in {grid.data.root}; epochs {grid.epochs}; "
        f"model options {grid.model_options or 'none'}; "
        f"seed {grid.seed}; {grid.timing.threads} threads, {grid.timing.warmup} warm-up runs, "
        f"median of {grid.timing.repeats}.\n\nEvery model gets the same backbone weights, input size and "
        "pre-processing. anomalib's Fastflow runs with our preset's flow settings (on a backbone it does "
        "not accept, with our feature extractor and its norms and flows rebuilt as its constructor "
        "builds them); PatchCore takes the backbone's stride-8/16 stages, CFlow its stride-8/16/32 stages."
    )
    report = write_report(accuracy, cost, Path(grid.output), heading)
    print(report)
    return report


def report(
    ckpt_path: Path,
    data: DataSpec | None = None,
    images: Path | None = None,
    output: Path = Path("results/report"),
    batch_size: int = 8,
) -> Path:
    """Test a trained FastFlow on a dataset, or score a folder of new images, and write one HTML page.

    The page (``output/index.html``, its images beside it; nothing fetched when it opens) shows the
    run (settings, budget, thresholds and where they came from, CPU, versions), anomalib's test
    metrics per category, a histogram of image scores with the threshold, ROC and precision-recall
    curves where there are labels, and a gallery sorted by score: missed defects and false alarms
    first. Examples: ``report --ckpt_path CKPT --data.name Folder --data.root DIR
    --data.categories [parts]``; new, unlabelled images: ``report --ckpt_path CKPT --images DIR``.

    Args:
        ckpt_path: A FastFlow checkpoint.
        data: Dataset and categories to test on (``benchmark.datasets.DataSpec``: MVTec, BTAD,
            Folder with or without masks, ELPV, the demo).
        images: A folder of new images to score instead (no labels: histogram and gallery only).
        output: The report's folder.
        batch_size: Images per batch.
    """
    from anomalib.data import PredictDataset
    from anomalib.visualization import ImageVisualizer
    from torch.utils.data import DataLoader

    if (data is None) == (images is None):
        msg = "report: give either --data (a dataset to test on) or --images (a folder of new images)."
        raise ValueError(msg)
    model = FastFlow.from_checkpoint(ckpt_path)
    visualizer = model.visualizer if isinstance(model.visualizer, ImageVisualizer) else None
    model.visualizer = None  # the report draws each image once, into its own folder
    collector = ReportCollector(output, visualizer=visualizer)
    engine = Engine(default_root_dir=output / "run", logger=False, callbacks=[collector])
    metrics: dict[str, dict[str, float]] = {}
    if images is not None:
        collector.set_category(Path(images).name)
        dataset = PredictDataset(images, image_size=tuple(model.input_size))
        engine.predict(model, DataLoader(dataset, batch_size=batch_size, collate_fn=dataset.collate_fn))
    else:
        data = DataSpec(data.name, data.root, data.categories, batch_size)
        for category in data.categories:
            collector.set_category(category)
            [metrics[category]] = engine.test(model, datamodule=data.datamodule(category), verbose=False)
            metrics[category] |= thresholds(model)
    start = time.perf_counter()
    epochs, steps = checkpoint_progress(ckpt_path)
    run = describe_run(model, epochs, steps, str(ckpt_path))
    page = write_page(output, f"FastFlow report: {Path(ckpt_path).name}", run, metrics, collector.images)
    print(
        f"Report: {page} (panels {collector.seconds:.1f} s during the predictions, "
        f"page {time.perf_counter() - start:.1f} s after them)"
    )
    return page


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``anomalib-fastflow`` command.

    A command that needs an extra that is not installed exits with one line saying which to install.
    """
    try:
        auto_cli(
            {
                "demo": demo,
                "build-demo-data": build_demo_data,
                "build-elpv": build_elpv,
                "configs": configs,
                "disturb": disturb,
                "export": export,
                "compare-training": compare_training,
                "benchmark": benchmark,
                "report": report,
            },
            args=args,
            as_positional=False,
            prog="anomalib-fastflow",
            version=__version__,
        )
    except MissingExtraError as error:
        print(f"anomalib-fastflow: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

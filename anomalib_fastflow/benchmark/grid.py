"""The benchmark grid: models x backbones x categories (accuracy) and x runtimes (inference cost).

Every finished run is appended to a CSV at once, so an interrupted grid resumes where it stopped;
a run that fails is recorded with its error and the grid goes on. Each model and backbone trained
in this run gets a report page of its aligned test sets (``report``) under ``output/reports``.
"""

import copy
import dataclasses
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from anomalib.data import AnomalibDataModule
from anomalib.metrics import AUPRO, AUROC, Evaluator
from anomalib.models.components import AnomalibModule
from rich.console import Console
from rich.progress import Progress

from ..backbones import OFFLINE_BACKBONE, PRETRAINED_WEIGHTS
from ..data.disturbed import Disturbance, write_disturbed_copy
from ..export.availability import runtime_unavailable_reason
from ..lightning_model import FastFlow
from ..report import ReportCollector, describe_run, thresholds, write_page
from .baselines import anomalib_cflow, anomalib_fastflow, anomalib_patchcore, anomalib_patchflow
from .datasets import DataSpec
from .inference import RuntimeUnavailable, inference_cost
from .results_table import ResultsTable
from .training import seeded, train_and_test

ModelName = Literal[
    "fastflow", "anomalib_fastflow", "anomalib_patchcore", "anomalib_cflow", "anomalib_patchflow"
]
RuntimeName = Literal["torch", "onnxruntime", "openvino", "tensorrt", "tensorrt_fp16"]
TestSet = Literal["aligned", "disturbed"]


def fastflow(backbone: str, weights: str = PRETRAINED_WEIGHTS, **kwargs: object) -> FastFlow:
    """Our FastFlow with the backbone's preset and our defaults."""
    return FastFlow(backbone, weights=weights, **kwargs)


BUILDERS: dict[str, Callable[..., AnomalibModule]] = {
    "fastflow": fastflow,
    "anomalib_fastflow": anomalib_fastflow,
    "anomalib_patchcore": anomalib_patchcore,
    "anomalib_cflow": anomalib_cflow,
    "anomalib_patchflow": anomalib_patchflow,
}
ACCURACY_FIELDS = (
    "model", "backbone", "category", "test_set", "status", "image_AUROC", "pixel_AUROC", "pixel_AUPRO",
    "fit_seconds", "seconds_per_epoch", "peak_memory_mb", "error",
)  # fmt: skip
COST_FIELDS = (
    "model", "backbone", "runtime", "status", "backbone_ms", "backbone_min_ms", "backbone_max_ms",
    "model_ms", "model_min_ms", "model_max_ms", "additional_ms", "fps", "additional_parameters",
    "trainable_parameters", "error",
)  # fmt: skip


@dataclass
class Timing:
    """How inference is timed: batch 1, ``warmup`` runs, then the median of ``repeats``, on ``threads``."""

    warmup: int = 3
    repeats: int = 20
    threads: int = 2


@dataclass
class BenchmarkConfig:
    """One benchmark grid (``configs/benchmark/*.yaml``).

    Attributes:
        models: Models to compare.
        backbones: timm backbones; every model runs on each at our preset's input size.
        data: Dataset and categories.
        epochs: Training epochs per model (one budget per model family); 0 measures inference
            cost only (untrained weights time the same; PatchCore then only with the bank sizes);
            null trains for the model's own default budget (FastFlow's ``training.budget.default_epochs``;
            Lightning's 1000 epochs for models without one).
        runtimes: Runtimes in which each model's inference cost is measured (TensorRT ones are
            recorded as skipped, with the reason, where TensorRT or a GPU is missing).
        model_options: Constructor arguments per model, on top of the benchmark's own (e.g.
            ``anomalib_patchcore: {coreset_sampling_ratio: 0.01}``).
        weights: Backbone weights for every model: ``pretrained``, ``random`` or a file.
        patchcore_bank_sizes: Also time PatchCore with memory banks of these sizes (random
            patches of the right width: timing only), besides the bank it learned.
        timing: How inference is timed.
        test_sets: Test sets each trained model is tested on: ``aligned`` (the dataset's own) and
            ``disturbed`` (its non-aligned copy, paper Sec. 8, written under
            ``output/disturbed_data`` by ``data.disturbed``; training data is never disturbed).
        disturbance: Ranges and fill of the disturbed test set.
        disturbed_copies: Disturbed copies per test image (the paper: 4).
        seed: Seed of every run (and of the disturbed test set).
        output: Folder for the CSVs, the report and the plots.
    """

    models: list[ModelName] = field(default_factory=lambda: list(BUILDERS))
    backbones: list[str] = field(default_factory=lambda: [OFFLINE_BACKBONE])
    data: DataSpec = field(default_factory=DataSpec)
    epochs: dict[str, int | None] = field(
        default_factory=lambda: {
            "fastflow": 10,
            "anomalib_fastflow": 10,
            "anomalib_patchcore": 1,
            "anomalib_cflow": 2,
            "anomalib_patchflow": 10,
        }
    )
    runtimes: dict[str, list[RuntimeName]] = field(
        default_factory=lambda: {"fastflow": ["torch", "openvino"]}
    )
    model_options: dict[str, dict[str, object]] = field(default_factory=dict)
    weights: str = PRETRAINED_WEIGHTS
    patchcore_bank_sizes: list[int] = field(default_factory=lambda: [20000])
    timing: Timing = field(default_factory=Timing)
    test_sets: list[TestSet] = field(default_factory=lambda: ["aligned"])
    disturbance: Disturbance = field(default_factory=Disturbance)
    disturbed_copies: int = 4
    seed: int = 0
    output: Path = Path("results/benchmark")


def accuracy_evaluator() -> Evaluator:
    """Image AUROC, pixel AUROC and pixel AUPRO on the test split, the same for every model (the
    pixel metrics are left out on datasets without masks, e.g. CIFAR-10 one-class)."""
    return Evaluator(
        test_metrics=[
            AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
            AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
            AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
        ]
    )


def _failure(error: Exception) -> str:
    last = traceback.format_exception(error)[-1].strip()
    return last.replace("\n", " ")[:300]


def _with_bank_size(model: AnomalibModule, size: int, seed: int) -> AnomalibModule:
    """A copy of a trained PatchCore whose bank holds ``size`` random patches of its width (timing only)."""
    generator = torch.Generator().manual_seed(seed)
    resized = copy.deepcopy(model)
    width = sum(resized.model.feature_extractor.out_dims)  # the bank stores concatenated stage features
    resized.model.memory_bank = torch.randn(size, width, generator=generator)
    return resized


def run_grid(config: BenchmarkConfig) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Run every missing job of the grid; return the accuracy and cost rows (old and new)."""
    torch.set_num_threads(config.timing.threads)
    output = Path(config.output)
    accuracy = ResultsTable(
        output / "accuracy.csv", ACCURACY_FIELDS, ACCURACY_FIELDS[:4], {"test_set": "aligned"}
    )
    cost = ResultsTable(output / "cost.csv", COST_FIELDS, COST_FIELDS[:3])
    jobs = [(m, b, c) for m in config.models for b in config.backbones for c in config.data.categories]
    console = Console()
    # In Jupyter, rich's stderr proxy and the kernel's stream flush call each other without end
    # once something else writes to stderr (e.g. PatchCore's tqdm bar): RecursionError.
    redirect = not console.is_jupyter
    reports: dict[tuple[str, str], _Report] = {}
    with Progress(console=console, redirect_stdout=redirect, redirect_stderr=redirect) as progress:
        task = progress.add_task("benchmark", total=len(jobs))
        for model_name, backbone, category in jobs:
            progress.update(task, description=f"{model_name} {backbone} {category}")
            _run_job(config, accuracy, cost, model_name, backbone, category, reports)
            progress.advance(task)
    for (model_name, backbone), report in reports.items():
        run = describe_run(
            report.model, None, None, f"the benchmark grid, epochs {config.epochs.get(model_name, 1)}"
        )
        title = f"{model_name} on {backbone}: {config.data.name} data"
        folder = output / "reports" / f"{model_name}_{backbone}"
        page = write_page(folder, title, run, report.metrics, report.collector.images)
        console.print(f"Report: {page}")
    return accuracy.rows, cost.rows


@dataclass
class _Report:
    """What one model and backbone's report page gathers over the grid's categories."""

    collector: ReportCollector
    model: AnomalibModule | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def _run_job(
    config: BenchmarkConfig,
    accuracy: ResultsTable,
    cost: ResultsTable,
    model_name: str,
    backbone: str,
    category: str,
    reports: dict[tuple[str, str], "_Report"],
) -> None:
    """Train and test one model on one category (unless done); time it on the first category;
    gather its aligned test images into ``reports`` (grids that also test disturbed copies write none).

    Every model validates once, after its last epoch (what ours does by default): per-epoch
    validation on the test split would add the same test pass to every epoch of the others.
    """
    epochs = config.epochs.get(model_name, 1)
    runtimes = config.runtimes.get(model_name, ["torch"]) if category == config.data.categories[0] else []
    pending = [runtime for runtime in runtimes if _pending(cost, model_name, backbone, runtime)]
    tested = all(accuracy.done(model_name, backbone, category, test_set) for test_set in config.test_sets)
    if (epochs == 0 or tested) and not pending:
        return
    key = {"model": model_name, "backbone": backbone, "category": category}
    output = Path(config.output)
    try:
        options = config.model_options.get(model_name, {})
        build = partial(
            BUILDERS[model_name], backbone, config.weights, evaluator=accuracy_evaluator(), **options
        )
        model = seeded(build, config.seed)
        if epochs is None or epochs > 0:
            datamodule = config.data.datamodule(category, config.seed)
            root = output / "runs" / model_name / backbone
            disturbed = "disturbed" in config.test_sets
            also_test = {"disturbed": _disturbed_datamodule(config, category)} if disturbed else {}
            validation = {} if epochs is None else {"check_val_every_n_epoch": epochs}
            report = None if disturbed else reports.setdefault((model_name, backbone), _Report(ReportCollector(
                output / "reports" / f"{model_name}_{backbone}")))  # fmt: skip
            if report is not None:
                report.collector.set_category(category)
            collectors = [] if report is None else [report.collector]
            result = train_and_test(
                model,
                datamodule,
                epochs,
                root,
                config.seed,
                also_test=also_test,
                callbacks=collectors,
                **validation,
            )
            if report is not None:
                report.model = model
                report.metrics[category] = result.metrics | thresholds(model)
            costs = {
                "fit_seconds": round(result.fit_seconds, 2),
                "seconds_per_epoch": round(result.seconds_per_epoch, 3),
                "peak_memory_mb": round(result.peak_memory_mb),
            }
            for test_set in config.test_sets:
                metrics = result.metrics if test_set == "aligned" else result.other_metrics[test_set]
                accuracy.add({
                    **key, "test_set": test_set, "status": "ok", "image_AUROC": metrics["image_AUROC"],
                    "pixel_AUROC": metrics.get("pixel_AUROC", ""),
                    "pixel_AUPRO": metrics.get("pixel_AUPRO", ""), **costs,
                })  # fmt: skip
    except Exception as error:
        for test_set in config.test_sets:
            accuracy.add({**key, "test_set": test_set, "status": "failed", "error": _failure(error)})
        return
    if not pending:
        return
    images, _ = config.data.test_arrays(category, tuple(model.input_size))
    variants = [] if model_name == "anomalib_patchcore" and epochs == 0 else [(model_name, model)]
    if model_name == "anomalib_patchcore":
        variants += [
            (f"{model_name}_bank{size}", _with_bank_size(model, size, config.seed))
            for size in config.patchcore_bank_sizes
        ]
    for name, variant in variants:
        exports: dict[str, Path] = {}
        for runtime in pending:
            _measure(cost, name, backbone, runtime, variant, images, output, config.timing, exports)


def _disturbed_datamodule(config: BenchmarkConfig, category: str) -> AnomalibDataModule:
    """The datamodule of ``category``'s disturbed copy, written now from the dataset (which must
    exist: the aligned datamodule builds the demo data) and read as the dataset itself is."""
    root = Path(config.output) / "disturbed_data"
    write_disturbed_copy(
        config.data.root, root, [category], config.disturbed_copies, config.seed, config.disturbance
    )
    name = "BTAD" if config.data.name == "BTAD" else "MVTec"
    return dataclasses.replace(config.data, name=name, root=root).datamodule(category, config.seed)


def _pending(cost: ResultsTable, model_name: str, backbone: str, runtime: str) -> bool:
    """Whether a cost run is still to do: never ran, failed, or skipped but now able to run."""
    status = cost.status(model_name, backbone, runtime)
    if status == "skipped":
        return runtime_unavailable_reason(runtime) is None
    return status != "ok"


def _measure(
    cost: ResultsTable,
    name: str,
    backbone: str,
    runtime: str,
    model: AnomalibModule,
    images: np.ndarray,
    output: Path,
    timing: Timing,
    exports: dict[str, Path],
) -> None:
    """Time ``model`` in ``runtime`` and record the row (or the failure, or why it was skipped)."""
    key = {"model": name, "backbone": backbone, "runtime": runtime}
    folder = output / "exports" / name / backbone
    try:
        measured = inference_cost(model, images, runtime, folder, timing.warmup, timing.repeats, exports)
    except RuntimeUnavailable as reason:
        cost.add({**key, "status": "skipped", "error": str(reason)})
        return
    except Exception as error:
        cost.add({**key, "status": "failed", "error": _failure(error)})
        return
    cost.add({
        **key, "status": "ok",
        "backbone_ms": round(measured.backbone.median_ms, 2), "backbone_min_ms": round(measured.backbone.min_ms, 2),
        "backbone_max_ms": round(measured.backbone.max_ms, 2), "model_ms": round(measured.model.median_ms, 2),
        "model_min_ms": round(measured.model.min_ms, 2), "model_max_ms": round(measured.model.max_ms, 2),
        "additional_ms": round(measured.additional_ms, 2), "fps": round(measured.model.fps, 2),
        "additional_parameters": measured.additional_parameters, "trainable_parameters": measured.trainable_parameters,
    })  # fmt: skip

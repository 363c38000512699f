"""Why does PatchCore lead on solar cells and hand-placed parts, and what closes the gap where not chosen?

    python studies/patchcore_gap_study.py --source elpv --variants default --baselines anomalib_patchcore \
        --seeds 0 1 2 --output docs/patchcore_gap

Sources (``SOURCES``): ``elpv`` (real defects: ELPV's monocrystalline solar cells, 200, 100 and 32
training images, 100 good and 100 defective test cells; the split drawn by the seed, built under
``<root>/elpv/seed_<seed>`` from the installed ``elpv-dataset`` package; image AUROC only),
``line`` (the drawn production-line parts with pose and light nuisance, ``docs/nuisance.md``) and
``demo`` (the demo's objects and textures); the drawn data is the same for every seed (the default
draw), the seed changes the training. Our FastFlow runs as each of ``--variants`` (``VARIANTS``:
one cause changed at a time against the defaults, default budget unless the variant sets one);
anomalib's models as the benchmark builds them on the same backbone, input and pre-processing:
PatchCore with its defaults, anomalib's Fastflow for ``--fastflow-epochs``, anomalib's Patchflow for
``--patchflow-epochs`` (it has no budget of its own). Rows go to ``<output>/runs.csv`` as they
finish (a rerun resumes; ``--merge`` adds rows measured elsewhere, e.g. on a GPU), and
``<output>/README.md`` gets a table per source: per category and the mean over categories of the
mean over seeds, with fit time and the machine each row was measured on.
"""

import argparse
import csv
import dataclasses
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np
import torch

from anomalib_fastflow.backbones import OFFLINE_BACKBONE
from anomalib_fastflow.benchmark.datasets import DataSpec
from anomalib_fastflow.benchmark.grid import BUILDERS, accuracy_evaluator
from anomalib_fastflow.benchmark.results_table import ResultsTable
from anomalib_fastflow.benchmark.training import seeded, train_and_test
from anomalib_fastflow.data.demo import CATEGORIES as DEMO_CATEGORIES
from anomalib_fastflow.data.demo import build_demo_categories
from anomalib_fastflow.data.elpv import TRAIN_SIZES, category_name
from anomalib_fastflow.data.line import CATEGORIES as LINE_CATEGORIES
from anomalib_fastflow.hardware import cpu_model_and_flags
from anomalib_fastflow.provenance import provenance


@dataclasses.dataclass(frozen=True)
class Variant:
    """Our FastFlow with some constructor ``options`` changed, trained for ``epochs`` (None: its default budget)."""

    options: dict[str, object] = dataclasses.field(default_factory=dict)
    epochs: int | None = None


VARIANTS: dict[str, Variant] = {  # the top-k, channel-norm, max-fusion and log-likelihood rows of
    # docs/patchcore_gap/runs.csv were options until 0.2.0 (commit f2f10d9 runs them)
    "default": Variant(),  # the package's defaults when the study runs (feature_pooling=3 after 0.3.0)
    "pool1": Variant(
        {"feature_pooling": 1}
    ),  # the default until 0.3.0: the "default" rows of earlier runs.csv
    "pose_views": Variant({"affine_views": 0.25}),
    "full_range_views": Variant({"affine_views": 1.0}),
    "pool3": Variant({"feature_pooling": 3}),
    "pool3_fine": Variant({"feature_pooling": [3, 3, 1]}),  # stride 4 and 8 averaged, stride 16 not
    "pool3_coarse": Variant({"feature_pooling": [1, 3, 3]}),  # all but the finest: the default after 0.3.0
    "stride_8_16": Variant({"layers": [2, 3]}),
    "pool3_stride_8_16": Variant({"feature_pooling": 3, "layers": [2, 3]}),
    "pool5_stride_8_16": Variant({"feature_pooling": 5, "layers": [2, 3]}),
    "epochs_30": Variant(epochs=30),
    "pool3_epochs_30": Variant({"feature_pooling": 3}, epochs=30),
}
SOURCES: dict[str, tuple[str, list[str]]] = {
    "elpv": ("ELPV", [category_name(size) for size in TRAIN_SIZES]),
    "line": ("demo", list(LINE_CATEGORIES)),
    "demo": ("demo", list(DEMO_CATEGORIES)),
}
BASELINES = ("anomalib_patchcore", "anomalib_fastflow", "anomalib_patchflow")
FIELDS = (
    "data", "model", "category", "seed", "status", "image_AUROC", "pixel_AUROC", "pixel_AUPRO",
    "fit_seconds", "machine", "error",
)  # fmt: skip
METRICS = ("image_AUROC", "pixel_AUROC", "pixel_AUPRO")


def machine() -> str:
    """The device the run trained on: the GPU's name, else the CPU's (``hardware``)."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_model_and_flags()[0]


def data_spec(source: str, root: Path, seed: int, category: str) -> DataSpec:
    """The dataset of ``source`` for a run on ``category``; ELPV's split depends on the seed, so each
    seed has a folder of its own.

    A drawn category is built here with the default draw when missing, so that every seed trains on
    the same images whichever seed runs first (``DataSpec`` would draw it with the run's seed).
    """
    name, categories = SOURCES[source]
    if source == "elpv":
        return DataSpec(name=name, root=root / "elpv" / f"seed_{seed}", categories=categories, batch_size=8)
    if not (root / "demo" / category).is_dir():
        build_demo_categories(root / "demo", [category])
    return DataSpec(name=name, root=root / "demo", categories=categories, batch_size=8)


def run(
    source: str, root: Path, model: str, category: str, seed: int, baseline_epochs: dict[str, int], work: Path
) -> dict[str, object]:
    """Train and test one model (a variant name of ours, or a baseline) on one category; a baseline
    trains for ``baseline_epochs[model]`` epochs (PatchCore: 1)."""
    if model in BUILDERS:
        build = partial(BUILDERS[model], OFFLINE_BACKBONE, evaluator=accuracy_evaluator())
        epochs = baseline_epochs.get(model, 1)
    else:
        variant = VARIANTS[model]
        build = partial(
            BUILDERS["fastflow"], OFFLINE_BACKBONE, evaluator=accuracy_evaluator(), **variant.options
        )
        epochs = variant.epochs
    datamodule = data_spec(source, root, seed, category).datamodule(category, seed)
    validation = {} if epochs is None else {"check_val_every_n_epoch": epochs}
    accelerator = {"accelerator": "gpu", "devices": 1} if torch.cuda.is_available() else {}
    result = train_and_test(
        seeded(build, seed), datamodule, epochs, work / source / model, seed, **validation, **accelerator
    )
    return {
        "data": source, "model": model, "category": category, "seed": seed, "status": "ok",
        **{name: f"{result.metrics[name]:.4f}" if name in result.metrics else "" for name in METRICS},
        "fit_seconds": f"{result.fit_seconds:.1f}", "machine": machine(),
    }  # fmt: skip


def _mean(rows: list[dict[str, str]], name: str) -> float | None:
    values = [float(row[name]) for row in rows if row[name]]
    return float(np.mean(values)) if values else None


def _cell(values: list[float | None]) -> str:
    return " / ".join("-" if value is None else f"{value:.3f}" for value in values)


def report(rows: list[dict[str, str]], output: Path) -> None:
    """Per source: a table per category and the mean over categories, each the mean over seeds."""
    legend = (
        "Runs in `runs.csv`. Image AUROC / pixel AUROC / AUPRO (ELPV: image AUROC only, no masks), mean over "
        "seeds; fit seconds, the mean per machine that fitted."
    )
    lines = [
        "# Where PatchCore leads, and why",
        "",
        provenance("python studies/patchcore_gap_study.py"),
        "",
        legend,
        "",
    ]
    order = [*LINE_CATEGORIES, *DEMO_CATEGORIES, *(category_name(size) for size in TRAIN_SIZES)]
    for source in [name for name in SOURCES if any(row["data"] == name for row in rows)]:
        ok = [row for row in rows if row["data"] == source and row["status"] == "ok"]
        categories = sorted({row["category"] for row in ok}, key=order.index)
        models = list(dict.fromkeys(row["model"] for row in ok))
        groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
        for row in ok:
            groups[row["model"], row["category"]].append(row)
        lines += [f"## {source}", "", "| model | seeds | " + " | ".join(categories) + " | mean | fit s (machine) |",
                  "|---|---|" + "---|" * (len(categories) + 2)]  # fmt: skip
        for model in models:
            runs = [row for category in categories for row in groups[model, category]]
            cells = [
                _cell([_mean(groups[model, category], name) for name in METRICS]) for category in categories
            ]
            complete = all(groups[model, category] for category in categories)
            means = [_mean(groups[model, category], name) for category in categories for name in METRICS]
            per_metric = [[means[i] for i in range(j, len(means), len(METRICS))] for j in range(len(METRICS))]
            mean = (
                _cell([None if None in values else float(np.mean(values)) for values in per_metric])
                if complete
                else "(incomplete)"
            )
            seeds = ",".join(sorted({row["seed"] for row in runs}))
            by_machine: dict[str, list[float]] = defaultdict(list)
            for row in runs:
                by_machine[row["machine"]].append(float(row["fit_seconds"]))
            seconds = "; ".join(
                f"{np.mean(values):.0f} ({machine})" for machine, values in sorted(by_machine.items())
            )
            lines.append(f"| {model} | {seeds} | " + " | ".join(cells) + f" | **{mean}** | {seconds} |")
        lines.append("")
    (output / "README.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=list(SOURCES), default="elpv")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("datasets"),
        help="demo and ELPV data go under it (built when missing)",
    )
    parser.add_argument("--categories", nargs="+", default=None)
    parser.add_argument("--variants", nargs="*", default=["default"], choices=list(VARIANTS))
    parser.add_argument("--baselines", nargs="*", default=[], choices=list(BASELINES))
    parser.add_argument("--fastflow-epochs", type=int, default=30, help="anomalib's Fastflow's budget")
    parser.add_argument("--patchflow-epochs", type=int, default=10, help="anomalib's Patchflow's budget")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--merge", type=Path, nargs="*", default=[], help="runs.csv files measured elsewhere to add"
    )
    parser.add_argument(
        "--output", type=Path, default=Path("results/patchcore_gap"), help="runs.csv and README.md"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("results/patchcore_gap_runs"), help="checkpoints and heatmaps"
    )
    args = parser.parse_args()
    key = ("data", "model", "category", "seed")
    table = ResultsTable(args.output / "runs.csv", FIELDS, key, defaults={"machine": "not recorded"})
    for path in args.merge:
        with path.open(newline="") as file:
            for row in csv.DictReader(file):
                if row["status"] == "ok":
                    table.add(row)
    categories = args.categories or SOURCES[args.source][1]
    epochs = {"anomalib_fastflow": args.fastflow_epochs, "anomalib_patchflow": args.patchflow_epochs}
    for seed in args.seeds:
        for model in [*args.baselines, *args.variants]:
            for category in categories:
                if table.done(args.source, model, category, str(seed)):
                    continue
                print(f"{args.source} {model} {category} seed {seed}", flush=True)
                try:
                    table.add(run(args.source, args.root, model, category, seed, epochs, args.work))
                except Exception as error:
                    table.add({"data": args.source, "model": model, "category": category, "seed": seed,
                               "status": "failed", "error": str(error)[:300]})  # fmt: skip
                report(table.rows, args.output)
    report(table.rows, args.output)


if __name__ == "__main__":
    main()

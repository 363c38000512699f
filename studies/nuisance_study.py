"""Where does PatchCore beat FastFlow on parts with pose and light nuisance, and what closes the gap?

    python studies/nuisance_study.py --variants default --baselines anomalib_patchcore anomalib_fastflow \
        --seeds 0 1 2 --output docs/nuisance

Each run trains one model on one category of the production-line parts (``data.line``: drawn
parts placed by hand under a fixed camera, 32 training images, defect kinds no generator of ours
uses elsewhere) or of the aligned demo (``--data demo``, to check that nothing regresses) and tests
it with the benchmark's evaluator (image AUROC, pixel AUROC, AUPRO). Our FastFlow runs as each of
``--variants`` (``VARIANTS``: one option changed at a time against the defaults, default budget);
anomalib's models as the benchmark builds them on the same backbone and input: PatchCore with its
defaults (one pass), anomalib's Fastflow for ``--fastflow-epochs``. Rows go to
``<output>/runs.csv`` as they finish (a rerun resumes); ``<output>/README.md`` gets the tables:
per category and mean over categories (each the mean over seeds), with fit time, the CPU named.
"""

import argparse
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np

from anomalib_fastflow.backbones import OFFLINE_BACKBONE
from anomalib_fastflow.benchmark.grid import BUILDERS, accuracy_evaluator
from anomalib_fastflow.benchmark.report import provenance
from anomalib_fastflow.benchmark.results_table import ResultsTable
from anomalib_fastflow.benchmark.training import seeded, train_and_test
from anomalib_fastflow.data import MVTec
from anomalib_fastflow.data.demo import CATEGORIES as DEMO_CATEGORIES
from anomalib_fastflow.data.demo import build_demo_categories
from anomalib_fastflow.data.line import CATEGORIES as LINE_CATEGORIES

VARIANTS: dict[str, dict[str, object]] = {  # the log-likelihood, top-k, max-fusion, channel-norm and
    # half-affine rows of docs/nuisance/runs.csv were options until 0.2.0 (commit f2f10d9 runs them)
    "default": {},
    "pose_views": {"affine_views": 0.25},
    "full_range_views": {"affine_views": 1.0},
    "stride_8_16": {"layers": [2, 3]},
}
FIELDS = (
    "data",
    "model",
    "category",
    "seed",
    "status",
    "image_AUROC",
    "pixel_AUROC",
    "pixel_AUPRO",
    "fit_seconds",
    "error",
)
METRICS = ("image_AUROC", "pixel_AUROC", "pixel_AUPRO")


def run(
    data: str, root: Path, model: str, category: str, seed: int, fastflow_epochs: int, output: Path
) -> dict[str, object]:
    """Train and test one model (a variant name of ours, or a baseline) on one category."""
    if model in BUILDERS:
        build = partial(BUILDERS[model], OFFLINE_BACKBONE, evaluator=accuracy_evaluator())
        epochs = fastflow_epochs if model == "anomalib_fastflow" else 1
    else:
        build = partial(
            BUILDERS["fastflow"], OFFLINE_BACKBONE, evaluator=accuracy_evaluator(), **VARIANTS[model]
        )
        epochs = None
    datamodule = MVTec(
        root=root, category=category, train_batch_size=8, eval_batch_size=8, num_workers=0, seed=seed
    )
    validation = {} if epochs is None else {"check_val_every_n_epoch": epochs}
    result = train_and_test(
        seeded(build, seed), datamodule, epochs, output / "runs" / data / model, seed, **validation
    )
    return {
        "data": data, "model": model, "category": category, "seed": seed, "status": "ok",
        **{name: f"{result.metrics[name]:.4f}" for name in METRICS}, "fit_seconds": f"{result.fit_seconds:.1f}",
    }  # fmt: skip


def _mean(rows: list[dict[str, str]], name: str) -> float:
    return float(np.mean([float(row[name]) for row in rows]))


def report(rows: list[dict[str, str]], output: Path) -> None:
    """Per data set: a table per category and the mean over categories, each the mean over seeds."""
    lines = ["# FastFlow against PatchCore on parts with pose and light nuisance", "",
             provenance("python studies/nuisance_study.py"), "",
             "Runs in `runs.csv`. Image AUROC / pixel AUROC / AUPRO, mean over seeds; fit seconds (mean).",
             ""]  # fmt: skip
    for data in sorted({row["data"] for row in rows}):
        ok = [row for row in rows if row["data"] == data and row["status"] == "ok"]
        categories = sorted({row["category"] for row in ok}, key=[*LINE_CATEGORIES, *DEMO_CATEGORIES].index)
        models = list(dict.fromkeys(row["model"] for row in ok))
        groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
        for row in ok:
            groups[row["model"], row["category"]].append(row)
        lines += [f"## {data}", "", "| model | seeds | " + " | ".join(categories) + " | mean | fit s |",
                  "|---|---|" + "---|" * (len(categories) + 2)]  # fmt: skip
        for model in models:
            cells, means, seconds = [], [], []
            complete = all(groups[model, category] for category in categories)
            for category in categories:
                runs = groups[model, category]
                cells.append(" / ".join(f"{_mean(runs, name):.3f}" for name in METRICS) if runs else "")
                seconds += [float(row["fit_seconds"]) for row in runs]
            if complete:
                means = [
                    np.mean([_mean(groups[model, category], name) for category in categories])
                    for name in METRICS
                ]
            seeds = sorted({row["seed"] for category in categories for row in groups[model, category]})
            mean = " / ".join(f"**{value:.3f}**" for value in means) if means else "(incomplete)"
            lines.append(
                f"| {model} | {','.join(seeds)} | "
                + " | ".join(cells)
                + f" | {mean} | {np.mean(seconds):.0f} |"
            )
        lines.append("")
    (output / "README.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["line", "demo"], default="line")
    parser.add_argument(
        "--root", type=Path, default=Path("datasets/demo"), help="demo dataset root (built when missing)"
    )
    parser.add_argument("--categories", nargs="+", default=None)
    parser.add_argument("--variants", nargs="*", default=["default"], choices=list(VARIANTS))
    parser.add_argument(
        "--baselines", nargs="*", default=[], choices=["anomalib_patchcore", "anomalib_fastflow"]
    )
    parser.add_argument("--fastflow-epochs", type=int, default=30)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--output", type=Path, default=Path("results/nuisance"))
    args = parser.parse_args()
    root = args.root
    categories = args.categories or list(LINE_CATEGORIES if args.data == "line" else DEMO_CATEGORIES)
    missing = [category for category in categories if not (root / category).is_dir()]
    if missing:
        build_demo_categories(root, missing)
    table = ResultsTable(args.output / "runs.csv", FIELDS, ("data", "model", "category", "seed"))
    for seed in args.seeds:
        for model in [*args.baselines, *args.variants]:
            for category in categories:
                if table.done(args.data, model, category, str(seed)):
                    continue
                print(f"{args.data} {model} {category} seed {seed}", flush=True)
                try:
                    table.add(run(args.data, root, model, category, seed, args.fastflow_epochs, args.output))
                except Exception as error:
                    table.add({"data": args.data, "model": model, "category": category, "seed": seed,
                               "status": "failed", "error": str(error)[:300]})  # fmt: skip
                report(table.rows, args.output)


if __name__ == "__main__":
    main()

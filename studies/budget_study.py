"""Accuracy against the training budget: does image AUROC hold from 10 to many epochs?

    python studies/budget_study.py --budgets 10 25 50 100 --output docs/budget_study

Per demo category (textures and objects), three recipes on the offline backbone:

- ``default``: our FastFlow's defaults (one-cycle at 5e-3 over the budget, the peak scaled down
  for budgets beyond the default one): one run per budget, since the schedule depends on it;
- ``fixed_peak``: the same at a 5e-3 peak for every budget (the default until 2026-12-01; up to the
  default budget, 32 epochs here, it is the same computation as ``default``);
- ``paper``: our FastFlow with the paper's constant 1e-3: one run to the largest budget, with the
  flows' weights snapshotted after each budget's epoch;
- ``anomalib``: anomalib's ``Fastflow`` (constant 1e-3, its default): as ``paper``.

Each model trains on the first ``--train-images`` training images; the rest are held out, and the
mean negative log-likelihood of their features (per dimension, no views) is recorded with every
result: normal images the flows have not fitted, an honest overfitting signal that needs no test
label. Test metrics are computed on raw maps (no min-max normalisation, which clamps) with image
AUROC, pixel AUROC and AUPRO. ``--seed`` (default 0) seeds the initial weights, FrEIA's
permutations and the training order; rerunning a budget at other seeds measures run-to-run
noise. Rows are appended to ``budget.csv`` as they finish; a rerun skips the rows present.
``--report`` writes ``tables.md`` (seed 0, plus a table over seeds where there are several) and
``budget.png`` (curves, seed 0) from it.
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from anomalib.callbacks.checkpoint import ModelCheckpoint
from anomalib.data import AnomalibDataModule
from anomalib.engine import Engine
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from lightning.pytorch import Callback, LightningModule, Trainer

from anomalib_fastflow import FastFlow
from anomalib_fastflow.backbones import OFFLINE_BACKBONE
from anomalib_fastflow.benchmark.baselines import anomalib_fastflow
from anomalib_fastflow.benchmark.datasets import DataSpec
from anomalib_fastflow.benchmark.grid import accuracy_evaluator
from anomalib_fastflow.benchmark.results_table import ResultsTable
from anomalib_fastflow.benchmark.training import seeded
from anomalib_fastflow.data.arrays import split_arrays
from anomalib_fastflow.data.demo import CATEGORIES, OBJECTS
from anomalib_fastflow.loss import negative_log_likelihood
from anomalib_fastflow.provenance import provenance
from anomalib_fastflow.training.schedule import one_cycle

FIELDS = (
    "category",
    "kind",
    "recipe",
    "budget",
    "seed",
    "image_AUROC",
    "pixel_AUROC",
    "pixel_AUPRO",
    "heldout_nll",
    "fit_seconds",
)


class FixedPeakFastFlow(FastFlow):
    """FastFlow's one-cycle at its peak ``lr`` whatever the budget: the package scales the peak down
    for budgets longer than its default (``training.schedule.budget_peak_lr``) and dropped the switch
    that turned that off in 0.3.0; this recipe keeps the comparison runnable."""

    def configure_optimizers(self) -> dict:
        config = super().configure_optimizers()
        steps = int(self.trainer.estimated_stepping_batches)
        config["lr_scheduler"]["scheduler"] = one_cycle(config["optimizer"], steps, self.hparams.lr)
        return config


RECIPES: dict[str, Callable[..., AnomalibModule]] = {
    "default": lambda **kwargs: FastFlow(**kwargs),
    "fixed_peak": lambda **kwargs: FixedPeakFastFlow(**kwargs),
    "paper": lambda **kwargs: FastFlow(lr_schedule="constant", lr=1e-3, **kwargs),
    "anomalib": lambda **kwargs: anomalib_fastflow(OFFLINE_BACKBONE, **kwargs),
}


class Snapshots(Callback):
    """The model's weights after each of ``epochs`` (CPU copies), and the wall time to reach them."""

    def __init__(self, epochs: list[int]) -> None:
        self.epochs = set(epochs)
        self.states: dict[int, dict[str, torch.Tensor]] = {}
        self.seconds: dict[int, float] = {}
        self._start = 0.0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        del trainer, pl_module
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs:
            self.seconds[epoch] = time.perf_counter() - self._start
            self.states[epoch] = {
                key: value.detach().cpu().clone() for key, value in pl_module.state_dict().items()
            }


@torch.no_grad()
def heldout_nll(module: AnomalibModule, images: torch.Tensor) -> float:
    """Mean negative log-likelihood per feature dimension of held-out normal ``images`` ``(N, 3, H, W)``."""
    network = module.model
    was_training = network.training
    network.train()
    latents, log_jacobians = network(module.pre_processor.transform(images))
    network.train(was_training)
    dimensions = sum(z[0].numel() for z in latents)
    return float(negative_log_likelihood(latents, log_jacobians)) / dimensions


def _model(recipe: str, seed: int) -> AnomalibModule:
    return seeded(
        lambda: RECIPES[recipe](
            evaluator=accuracy_evaluator(), post_processor=PostProcessor(enable_normalization=False)
        ),
        seed,
    )


def _row(
    category: str, recipe: str, budget: int, seed: int, metrics: dict[str, float], nll: float, seconds: float
) -> dict[str, str]:
    """One ``budget.csv`` row, every value a string as the CSV reads back (the report compares them)."""
    kind = "object" if category in OBJECTS else "texture"
    scores = {name: f"{metrics[name]:.4f}" for name in ("image_AUROC", "pixel_AUROC", "pixel_AUPRO")}
    return {
        "category": category, "kind": kind, "recipe": recipe, "budget": str(budget), "seed": str(seed), **scores,
        "heldout_nll": f"{nll:.4f}", "fit_seconds": f"{seconds:.1f}",
    }  # fmt: skip


def run_category(
    data: DataSpec,
    category: str,
    recipe: str,
    budgets: list[int],
    train_images: int,
    results: Path,
    seed: int,
    done: Callable[..., bool],
) -> list[dict]:
    """Train ``recipe`` on ``category`` at ``seed`` for every budget that ``done(category, recipe,
    budget, seed)`` denies; return the new rows."""
    pending = [budget for budget in budgets if not done(category, recipe, str(budget), str(seed))]
    if not pending:
        return []
    datamodule: AnomalibDataModule = data.datamodule(category, train_images=train_images)
    train, _ = split_arrays(data.root, category, "train", (160, 160))
    heldout = torch.from_numpy(train[train_images:])
    rows = []
    runs = [[budget] for budget in pending] if recipe == "default" else [pending]
    for run in runs:
        model = _model(recipe, seed)
        snapshots = Snapshots(run)
        engine = Engine(
            max_epochs=max(run),
            default_root_dir=results,
            logger=False,
            enable_progress_bar=False,
            callbacks=[snapshots, ModelCheckpoint(save_top_k=0)],
            check_val_every_n_epoch=max(run),
        )  # fmt: skip  (a checkpoint callback that saves nothing keeps anomalib from adding its own)
        engine.fit(model, datamodule=datamodule)
        for budget in run:
            model.load_state_dict(snapshots.states[budget])
            [metrics] = engine.test(model, datamodule=datamodule, verbose=False)
            rows.append(
                _row(
                    category,
                    recipe,
                    budget,
                    seed,
                    metrics,
                    heldout_nll(model, heldout),
                    snapshots.seconds[budget],
                )
            )
            print(rows[-1], flush=True)
    return rows


def report(rows: list[dict[str, str]], output: Path) -> None:
    """Write ``tables.md`` (one table per recipe) and ``budget.png`` (curves) under ``output``."""
    import matplotlib

    all_seeds, rows = rows, [row for row in rows if row["seed"] == "0"]
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    categories = list(dict.fromkeys(row["category"] for row in rows))
    recipes = list(dict.fromkeys(row["recipe"] for row in rows))
    panels = (("image_AUROC", "image AUROC"), ("pixel_AUPRO", "AUPRO"), ("heldout_nll", "held-out NLL / dim"))
    figure, axes = plt.subplots(
        len(panels), len(categories), figsize=(3.2 * len(categories), 8), squeeze=False
    )
    for column, category in enumerate(categories):
        for row_index, (field, label) in enumerate(panels):
            axis = axes[row_index][column]
            for recipe in recipes:
                points = sorted(
                    (int(r["budget"]), float(r[field]))
                    for r in rows
                    if r["category"] == category and r["recipe"] == recipe
                )
                if points:
                    colour = f"C{recipes.index(recipe)}"  # one colour per recipe in every panel
                    axis.plot(*zip(*points, strict=True), marker="o", label=recipe, color=colour)
            axis.set_xscale("log")
            axis.set_title(category if row_index == 0 else "", fontsize=10)
            axis.set_ylabel(label if column == 0 else "")
            axis.set_xlabel("epochs" if row_index == len(panels) - 1 else "")
    handles = {
        label: line
        for axis in axes.flat
        for line, label in zip(*axis.get_legend_handles_labels(), strict=True)
    }
    axes[0][0].legend(handles.values(), handles.keys(), fontsize=8)  # every recipe, wherever it was run
    figure.tight_layout()
    figure.savefig(output / "budget.png", dpi=90)
    lines = [f"# Accuracy against the training budget\n\n{provenance('python studies/budget_study.py')}\n"]
    for recipe in recipes:
        budgets = sorted({int(r["budget"]) for r in rows if r["recipe"] == recipe})
        lines += [
            f"\n## {recipe}: image AUROC / pixel AUROC / AUPRO (held-out NLL per dimension)\n",
            "| category | "
            + " | ".join(f"{b} epochs" for b in budgets)
            + " | worst below best (image AUROC) |",
            "|---|" + "---|" * (len(budgets) + 1),
        ]
        for category in categories:
            cells, images = [], []
            for budget in budgets:
                match = [
                    r
                    for r in rows
                    if (r["category"], r["recipe"], int(r["budget"])) == (category, recipe, budget)
                ]
                if match:
                    r = match[0]
                    images.append(float(r["image_AUROC"]))
                    cells.append(
                        f"{r['image_AUROC']} / {r['pixel_AUROC']} / {r['pixel_AUPRO']} ({r['heldout_nll']})"
                    )
                else:
                    cells.append("")
            gap = f"{max(images) - min(images):.4f}" if images else ""
            lines.append(f"| {category} | " + " | ".join(cells) + f" | {gap} |")
    (output / "tables.md").write_text("\n".join(lines + _seed_table(all_seeds)) + "\n")


def _seed_table(rows: list[dict[str, str]]) -> list[str]:
    """Lines of a table of image AUROC over seeds, for each run repeated at several seeds."""
    runs: dict[tuple[str, str, int], dict[str, float]] = {}
    for row in rows:
        runs.setdefault((row["category"], row["recipe"], int(row["budget"])), {})[row["seed"]] = float(
            row["image_AUROC"]
        )
    repeated = {run: by_seed for run, by_seed in sorted(runs.items()) if len(by_seed) > 1}
    if not repeated:
        return []
    lines = [
        "\n## Run-to-run noise: image AUROC at several seeds\n",
        "| category | recipe | epochs | image AUROC by seed | mean | max - min |",
        "|---|---|---|---|---|---|",
    ]
    for (category, recipe, budget), by_seed in repeated.items():
        values = [by_seed[seed] for seed in sorted(by_seed, key=int)]
        cells = ", ".join(f"{seed}: {by_seed[seed]:.4f}" for seed in sorted(by_seed, key=int))
        lines.append(
            f"| {category} | {recipe} | {budget} | {cells} | {sum(values) / len(values):.4f} "
            f"| {max(values) - min(values):.4f} |"
        )
    return lines


def main() -> None:
    """Run what is missing from ``budget.csv``, then write the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path("datasets/demo"))
    parser.add_argument("--results", type=Path, default=Path("results/budget_study"))
    parser.add_argument("--output", type=Path, default=Path("docs/budget_study"))
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--budgets", nargs="+", type=int, default=[10, 25, 50, 100])
    parser.add_argument("--train-images", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", action="store_true", help="only write the report from budget.csv")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    # rows written before seeds were recorded are seed 0
    table = ResultsTable(
        args.output / "budget.csv", FIELDS, ("category", "recipe", "budget", "seed"), {"seed": "0"}
    )
    if not args.report:
        data = DataSpec("demo", args.root, args.categories)
        for category in args.categories:
            for recipe in args.recipes:
                for row in run_category(
                    data,
                    category,
                    recipe,
                    args.budgets,
                    args.train_images,
                    args.results,
                    args.seed,
                    table.has,
                ):
                    table.add(row)
    rows = table.rows
    report(rows, args.output)
    print(f"Wrote {table.path}, {args.output / 'tables.md'} and {args.output / 'budget.png'}")


if __name__ == "__main__":
    main()

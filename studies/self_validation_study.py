"""Does the label-free self-validation estimate track the test AUROC, and what does holding images out cost?

    python studies/self_validation_study.py --epochs 30 --held-out 8 --output docs/self_validation

Per demo category, FastFlow trains for ``--epochs`` epochs with ``self_validation=--held-out``:
after every epoch the self-validation estimate (held-out normal training images, as they are and
with synthetic defects) and, as a measurement only, the test split's image AUROC. Then the same
run without self-validation (all training images), to see what holding them out costs. With
``--adaptive``, also per category: no budget given, without self-validation (the default budget)
and with it (the adaptive budget), the test image AUROC after each (``adaptive.csv``). With
``--thresholds``, the test image F1 at the threshold each rule of ``training.thresholds`` puts on
the self-validation set's scores, against the best F1 on the test labels, after 25 epochs
(``thresholds.csv``; the raw scores in ``<results>/threshold_scores/``), and the test pixel F1 (the
pred_masks' Dice) at each rule's threshold on the set's pixels (``pixel_thresholds.csv``);
With ``--cycles``, per category: no budget given and self-validation on, every cycle of the
adaptive budget trained (none stopped early, ``--max-cycles``), the self-validation score and the
test image AUROC at each cycle's end (``cycles.csv``): the label-free estimate against the test
AUROC across budgets, and what each stopping rule of ``training.cycle_stopping`` would keep,
replayed on those scores (the schedule does not depend on when a run stops).
``--no-curves`` runs only these. Writes
``runs.csv`` (one row per category, seed, epoch), ``README.md`` (rank correlation of the estimate
with the test AUROC across epochs, per category and pooled; final AUROCs with and without the
held-out images) and ``curves.png`` (the estimate beside the test curve per category).
"""

import argparse
import time
from pathlib import Path
from typing import get_args

import numpy as np
import torch
from anomalib.engine import Engine
from lightning.pytorch import Callback, LightningModule, Trainer
from matplotlib.figure import Figure
from scipy.stats import spearmanr
from torchmetrics.functional.classification import binary_f1_score, binary_precision_recall_curve

from anomalib_fastflow import FastFlow, MVTec
from anomalib_fastflow.benchmark.measure import EpochRecorder, dataloader_image_auroc
from anomalib_fastflow.benchmark.report import provenance
from anomalib_fastflow.benchmark.results_table import ResultsTable
from anomalib_fastflow.benchmark.training import seeded
from anomalib_fastflow.data.demo import ALL_CATEGORIES, CATEGORIES, build_demo_categories
from anomalib_fastflow.data.line import CATEGORIES as LINE_CATEGORIES
from anomalib_fastflow.training.cycle_stopping import CycleStopping
from anomalib_fastflow.training.self_validation import SelfValidationScores, SelfValidationSet
from anomalib_fastflow.training.thresholds import ThresholdRule, f1_optimal_range, image_threshold

FIELDS = (
    "category",
    "seed",
    "held_out",
    "epoch",
    "self_image_AUROC",
    "self_pixel_AUROC",
    "self_AUPRO",
    "self_perlin_image_AUROC",
    "self_own_surface_image_AUROC",
    "test_image_AUROC",
    "fit_seconds",
)


def run(root: Path, category: str, seed: int, held_out: int, epochs: int, results: Path) -> list[dict[str, object]]:
    """One training run; a row per epoch (the self-validation columns empty without held-out images)."""
    datamodule = MVTec(root=root, category=category, train_batch_size=8, eval_batch_size=8, num_workers=0, seed=seed)
    model = seeded(lambda: FastFlow(self_validation=held_out), seed)
    recorder = EpochRecorder(evaluate_each_epoch=True)
    engine = Engine(
        max_epochs=epochs, default_root_dir=results / category, logger=False, callbacks=[recorder], limit_val_batches=0
    )
    start = time.perf_counter()
    engine.fit(model, datamodule=datamodule)
    seconds = time.perf_counter() - start - recorder.evaluation_seconds
    scores = model.training_callback.self_validation_scores or [None] * epochs
    rows = []
    for epoch, (score, test) in enumerate(zip(scores, recorder.image_aurocs, strict=True), start=1):
        rows.append({
            "category": category, "seed": seed, "held_out": held_out, "epoch": epoch,
            "self_image_AUROC": f"{score.image_auroc:.4f}" if score else "",
            "self_pixel_AUROC": f"{score.pixel_auroc:.4f}" if score else "",
            "self_AUPRO": f"{score.aupro:.4f}" if score else "",
            "self_perlin_image_AUROC": f"{score.family_image_auroc['perlin']:.4f}" if score else "",
            "self_own_surface_image_AUROC": f"{score.family_image_auroc['own_surface']:.4f}" if score else "",
            "test_image_AUROC": f"{test:.4f}", "fit_seconds": f"{seconds:.1f}",
        })  # fmt: skip
    return rows


ADAPTIVE_FIELDS = ("category", "seed", "budget", "epochs", "best_cycle", "test_image_AUROC", "fit_seconds")


def adaptive_run(root: Path, category: str, seed: int, held_out: int, results: Path) -> dict[str, object]:
    """No budget given: the default budget (``held_out=0``) or the adaptive one (self-validation on)."""
    datamodule = MVTec(root=root, category=category, train_batch_size=8, eval_batch_size=8, num_workers=0, seed=seed)
    model = seeded(lambda: FastFlow(self_validation=held_out), seed)
    engine = Engine(default_root_dir=results / f"{category}_adaptive{held_out}", logger=False, limit_val_batches=0)
    start = time.perf_counter()
    engine.fit(model, datamodule=datamodule)
    seconds = time.perf_counter() - start
    return {
        "category": category, "seed": seed, "budget": f"adaptive ({held_out} held out)" if held_out else "default",
        "epochs": engine.trainer.current_epoch, "best_cycle": model.training_callback.best_cycle or "",
        "test_image_AUROC": f"{dataloader_image_auroc(model, datamodule.test_dataloader()):.4f}",
        "fit_seconds": f"{seconds:.1f}",
    }  # fmt: skip


CYCLE_FIELDS = ("category", "seed", "cycle", "epochs", "self_image_AUROC", "self_pixel_AUROC", "selection_score",
                "test_image_AUROC", "fit_seconds")  # fmt: skip


class CycleEnds(Callback):
    """The test image AUROC of the weights each cycle of an adaptive budget ends with, measured before
    the model's own callback scores the cycle (or puts the best weights back); neither timed nor seen
    by model or trainer. ``fit_seconds``: the fit's wall time to each cycle's end, without these measurements."""

    def __init__(self) -> None:
        self.image_aurocs: list[float] = []
        self.fit_seconds: list[float] = []
        self._start = 0.0
        self._measuring = 0.0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the clock."""
        del trainer, pl_module
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: object, batch: object, batch_idx: int
    ) -> None:
        """At a cycle's last batch, score the test split."""
        del outputs, batch, batch_idx
        cycle_epochs = pl_module.training_callback.cycle_epochs
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch or (trainer.current_epoch + 1) % cycle_epochs:
            return
        start = time.perf_counter()
        self.fit_seconds.append(start - self._start - self._measuring)
        self.image_aurocs.append(dataloader_image_auroc(pl_module, trainer.datamodule.test_dataloader()))
        self._measuring += time.perf_counter() - start


def cycle_run(root: Path, category: str, seed: int, held_out: int, max_cycles: int, results: Path) -> list[dict[str, object]]:
    """No budget given, self-validation on, all ``max_cycles`` cycles trained; a row per cycle."""
    datamodule = MVTec(root=root, category=category, train_batch_size=8, eval_batch_size=8, num_workers=0, seed=seed)
    model = seeded(lambda: FastFlow(self_validation=held_out), seed)
    model.training_callback.stopping = CycleStopping(patience=max_cycles, max_cycles=max_cycles)  # never stops early
    cycle_ends = CycleEnds()
    engine = Engine(default_root_dir=results / f"{category}_cycles", logger=False, callbacks=[cycle_ends], limit_val_batches=0)
    engine.fit(model, datamodule=datamodule)
    cycle_epochs = model.training_callback.cycle_epochs
    scores = model.training_callback.self_validation_scores[cycle_epochs - 1 :: cycle_epochs]
    return [
        {"category": category, "seed": seed, "cycle": cycle, "epochs": cycle * cycle_epochs,
         "self_image_AUROC": f"{score.image_auroc:.4f}", "self_pixel_AUROC": f"{score.pixel_auroc:.4f}",
         "selection_score": f"{score.selection_score:.5f}", "test_image_AUROC": f"{test:.4f}", "fit_seconds": f"{seconds:.1f}"}
        for cycle, (score, test, seconds) in enumerate(zip(scores, cycle_ends.image_aurocs, cycle_ends.fit_seconds, strict=True), start=1)
    ]  # fmt: skip


THRESHOLD_FIELDS = ("category", "seed", "epochs", "rule", "threshold", "F1_at_self_validation_threshold",
                    "F1_at_test_optimal_threshold", "ratio")  # fmt: skip
PIXEL_THRESHOLD_FIELDS = ("category", "seed", "epochs", "rule", "threshold", "pixel_F1_at_self_validation_threshold",
                          "pixel_F1_at_test_optimal_threshold", "ratio")  # fmt: skip


@torch.no_grad()
def test_predictions(model: FastFlow, dataloader: torch.utils.data.DataLoader) -> dict[str, torch.Tensor]:
    """Raw image scores and anomaly maps (before the post-processor's normalisation), labels and
    masks of a test split: ``scores (N,)``, ``labels (N,)``, ``maps (N, H, W)``, ``masks (N, H, W)``."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {"scores": [], "labels": [], "maps": [], "masks": []}
    for batch in dataloader:
        output = model.model(model.pre_processor.transform(batch.image))
        masks = batch.gt_mask.reshape(len(batch.image), *batch.gt_mask.shape[-2:])
        maps = torch.nn.functional.interpolate(output.anomaly_map, size=masks.shape[-2:], mode="bilinear")
        parts["scores"].append(output.pred_score.flatten())
        parts["labels"].append(batch.gt_label.flatten())
        parts["maps"].append(maps[:, 0])
        parts["masks"].append(masks.bool())
    return {name: torch.cat(values) for name, values in parts.items()}


def threshold_run(
    root: Path, category: str, seed: int, held_out: int, epochs: int, results: Path
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Train with self-validation, score its held-out set and the test split, keep the raw image
    scores in ``<results>/threshold_scores/<category>_<seed>.pt``; return ``threshold_rows`` and
    ``pixel_threshold_rows`` of them."""
    datamodule = MVTec(root=root, category=category, train_batch_size=8, eval_batch_size=8, num_workers=0, seed=seed)
    model = seeded(lambda: FastFlow(self_validation=held_out), seed)
    engine = Engine(max_epochs=epochs, default_root_dir=results / f"{category}_thresholds", logger=False, limit_val_batches=0)
    engine.fit(model, datamodule=datamodule)
    _, validation_set = SelfValidationSet.hold_out(datamodule.train_data, held_out, 0)  # the set the fit held out
    validation_set.cache_features(model.pre_processor.transform, model.model.feature_extractor)
    validation = validation_set.predict(model.model)
    test = test_predictions(model, datamodule.test_dataloader())
    scores = {"validation_scores": validation.pred_score.flatten(), "validation_labels": validation.gt_label,
              "test_scores": test["scores"], "test_labels": test["labels"].int()}  # fmt: skip
    (results / "threshold_scores").mkdir(parents=True, exist_ok=True)
    torch.save(scores, results / "threshold_scores" / f"{category}_{seed}.pt")
    pixels = {"validation_maps": validation.anomaly_map.reshape(validation.gt_mask.shape), "validation_masks": validation.gt_mask,
              "test_maps": test["maps"], "test_masks": test["masks"]}  # fmt: skip
    return threshold_rows(category, seed, epochs, scores), pixel_threshold_rows(category, seed, epochs, pixels)


def threshold_rows(category: str, seed: int, epochs: int, scores: dict[str, torch.Tensor]) -> list[dict[str, object]]:
    """Test image F1 at the threshold each ``thresholds.ThresholdRule`` puts on the self-validation
    scores, against the best F1 any threshold reaches on the test labels (a reference no user has)."""
    test, labels = scores["test_scores"], scores["test_labels"]
    precision, recall, _ = binary_precision_recall_curve(test, labels)
    best = float((2 * precision * recall / (precision + recall).clamp_min(1e-12)).max())
    rows = []
    for rule in get_args(ThresholdRule):
        threshold = image_threshold(scores["validation_scores"], scores["validation_labels"], rule)
        at_threshold = float(binary_f1_score((test > threshold).int(), labels))  # anomalib's score > threshold
        rows.append({
            "category": category, "seed": seed, "epochs": epochs, "rule": rule, "threshold": f"{threshold:.6g}",
            "F1_at_self_validation_threshold": f"{at_threshold:.4f}", "F1_at_test_optimal_threshold": f"{best:.4f}",
            "ratio": f"{at_threshold / best:.3f}",
        })  # fmt: skip
    return rows


def pixel_threshold_rows(category: str, seed: int, epochs: int, pixels: dict[str, torch.Tensor]) -> list[dict[str, object]]:
    """Test pixel F1 (the pred_masks' Dice over the whole test split) at the threshold each
    ``thresholds.ThresholdRule`` puts on the self-validation set's pixels, against the best pixel F1
    any threshold reaches on the test masks. anomalib's post-processor fits ``f1_high`` (its
    ``F1AdaptiveThreshold``); ``highest_normal`` flags no pixel of a held-out normal image."""
    test, masks = pixels["test_maps"].flatten(), pixels["test_masks"].flatten()
    best = float(binary_f1_score((test > f1_optimal_range(test, masks)[1]).int(), masks.int()))
    rows = []
    for rule in get_args(ThresholdRule):
        threshold = image_threshold(pixels["validation_maps"].flatten(), pixels["validation_masks"].flatten(), rule)
        at_threshold = float(binary_f1_score((test > threshold).int(), masks.int()))
        rows.append({
            "category": category, "seed": seed, "epochs": epochs, "rule": rule, "threshold": f"{threshold:.6g}",
            "pixel_F1_at_self_validation_threshold": f"{at_threshold:.4f}",
            "pixel_F1_at_test_optimal_threshold": f"{best:.4f}", "ratio": f"{at_threshold / best:.3f}",
        })  # fmt: skip
    return rows


def _table_section(path: Path, fields: tuple[str, ...], key: tuple[str, ...], title: str) -> list[str]:
    """A Markdown section with the rows of a results table, if it exists."""
    if not path.exists():
        return []
    rows = ResultsTable(path, fields, key).rows
    return ["", f"## {title}", "", "| " + " | ".join(fields) + " |", "|" + "---|" * len(fields),
            *(f"| {' | '.join(str(row[name]) for name in fields)} |" for row in rows)]  # fmt: skip


def report(rows: list[dict[str, str]], output: Path, program: str, held_out: int) -> None:
    """Rank correlations, the cost of holding out, and the curves (from ``rows``, if any); the
    adaptive-budget and threshold tables (if measured) of runs that held ``held_out`` images out."""
    lines = ["# Self-validation: does the label-free estimate track the test AUROC?", "", provenance(program)]
    if rows:
        lines += _correlation_section(rows)
        _plot_curves(rows, output / "curves.png")
    lines += _table_section(output / "adaptive.csv", ADAPTIVE_FIELDS, ("category", "seed", "budget"),
                            "No budget given: the default budget against the adaptive one")  # fmt: skip
    lines += _cycles_section(output, held_out)
    lines += _threshold_summary(output / "thresholds.csv", THRESHOLD_FIELDS, "Thresholds without defective samples",
                                "Test image F1")  # fmt: skip
    lines += _threshold_summary(output / "pixel_thresholds.csv", PIXEL_THRESHOLD_FIELDS, "Pixel thresholds: pred_mask quality",
                                "Test pixel F1 (the pred_masks' Dice over the whole test split)")  # fmt: skip
    (output / "README.md").write_text("\n".join(lines) + "\n")


RULES = {  # stopping rules replayed on the cycle traces (``training.cycle_stopping``)
    "patience 1 (0.2.0)": CycleStopping(min_delta=0.0),
    "patience 1, min_delta 0.001": CycleStopping(min_delta=0.001),
    "patience 1, min_delta 0.005": CycleStopping(min_delta=0.005),
    "patience 1, min_delta 0.01 (default)": CycleStopping(),
    "patience 1, min_delta 0.02": CycleStopping(min_delta=0.02),
    "patience 2": CycleStopping(patience=2, min_delta=0.0),
    "patience 2, min_delta 0.01": CycleStopping(patience=2, min_delta=0.01),
    "first cycle only": CycleStopping(max_cycles=1),
}


def _cycles_section(output: Path, held_out: int) -> list[str]:
    """From ``cycles.csv``: the estimate against the test AUROC across budgets (cycle ends), and each
    stopping rule's kept cycle against the default budget (``adaptive.csv``) and the best cycle by
    test labels (a reference no user has); ``cycles.png``."""
    path = output / "cycles.csv"
    if not path.exists():
        return []
    rows = ResultsTable(path, CYCLE_FIELDS, ("category", "seed", "cycle")).rows
    runs: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in sorted(rows, key=lambda r: int(r["cycle"])):
        runs.setdefault((row["category"], row["seed"]), []).append(row)  # each run's cycles in order
    categories = sorted({category for category, _ in runs}, key=list(ALL_CATEGORIES).index)
    families = [(name, members) for name, members in (("demo", CATEGORIES), ("line parts", LINE_CATEGORIES))
                if set(members) & set(categories)]  # fmt: skip
    defaults = {}
    if (output / "adaptive.csv").exists():
        for row in ResultsTable(output / "adaptive.csv", ADAPTIVE_FIELDS, ("category", "seed", "budget")).rows:
            if row["budget"] == "default":
                defaults[row["category"], row["seed"]] = (float(row["test_image_AUROC"]), float(row["fit_seconds"]))
    lines = ["", "## The adaptive budget cycle by cycle", "",
             f"No budget given, self-validation on ({held_out} held out), every cycle trained (`--cycles`); at each cycle's end "
             "the selection score (mean of the estimate's image and pixel AUROC) and the test image AUROC; mean over "
             f"seeds (rows in `{path.name}`). Spearman rho of the selection score with the test image AUROC across "
             "the cycle ends, per run (mean over seeds) and over all runs of the category.", "",
             "| category | seeds | test AUROC by cycle | selection score by cycle | rho per run | rho, category | fit s by cycle |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for category in categories:
        chosen = {seed: runs[c, seed] for c, seed in runs if c == category}
        cycles = min(len(trace) for trace in chosen.values())
        def mean_by_cycle(column: str, traces: dict = chosen, cycles: int = cycles) -> list[float]:
            return [float(np.mean([float(trace[i][column]) for trace in traces.values()])) for i in range(cycles)]
        per_run = [spearmanr([float(r["selection_score"]) for r in t], [float(r["test_image_AUROC"]) for r in t]).statistic
                   for t in chosen.values()]  # fmt: skip
        pooled = spearmanr([float(r["selection_score"]) for t in chosen.values() for r in t],
                           [float(r["test_image_AUROC"]) for t in chosen.values() for r in t]).statistic  # fmt: skip
        lines.append(f"| {category} | {','.join(sorted(chosen))} | "
                     + " / ".join(f"{v:.3f}" for v in mean_by_cycle("test_image_AUROC")) + " | "
                     + " / ".join(f"{v:.3f}" for v in mean_by_cycle("selection_score")) + f" | {np.nanmean(per_run):.2f} | "
                     + f"{pooled:.2f} | " + " / ".join(f"{v:.0f}" for v in mean_by_cycle("fit_seconds")) + " |")  # fmt: skip
    lines += ["", "Each stopping rule replayed on these traces (the schedule does not depend on when a run stops): "
              "test image AUROC of the cycle it keeps / fit seconds to where it stops, mean over seeds; the default "
              "budget (all images, no hold-out) and the best cycle by test labels for reference.", "",
              "Kept minus default: mean and lowest over the categories of each family (aligned demo, production-line "
              "parts); negative is below the default. Below best: the largest shortfall from the best cycle.", "",
              "| rule | " + " | ".join(categories) + " | " + " | ".join(f"kept - default, {name}" for name, _ in families)
              + " | below best cycle (worst) |", "|---|" + "---|" * (len(categories) + len(families) + 1)]  # fmt: skip
    best_cycle = {}
    for category in categories:
        traces = [runs[c, seed] for c, seed in runs if c == category]
        cycles = min(len(trace) for trace in traces)
        best_cycle[category] = max(float(np.mean([float(t[i]["test_image_AUROC"]) for t in traces])) for i in range(cycles))
    default_means = {c: [v for (category, _), v in defaults.items() if category == c] for c in categories}
    blank = " |" * (len(families) + 1)
    lines.append("| default budget (no hold-out) | " + " | ".join(
        f"{np.mean([a for a, _ in default_means[c]]):.3f} / {np.mean([f for _, f in default_means[c]]):.0f}"
        if default_means[c] else "-" for c in categories) + " |" + blank)  # fmt: skip
    lines.append("| best cycle by test labels | " + " | ".join(f"{best_cycle[c]:.3f}" for c in categories) + " |" + blank)
    for name, rule in RULES.items():
        cells, kept_minus_default, gaps_best = [], {}, []
        for category in categories:
            kept = []
            for (c, _), trace in runs.items():
                if c != category:
                    continue
                try:
                    keep, stop = rule.replay([float(r["selection_score"]) for r in trace])
                except ValueError:  # the trace ends before this rule stops
                    kept = []
                    break
                kept.append((float(trace[keep - 1]["test_image_AUROC"]), float(trace[stop - 1]["fit_seconds"])))
            if not kept:
                cells.append("-")
                continue
            auroc_mean = float(np.mean([a for a, _ in kept]))
            cells.append(f"{auroc_mean:.3f} / {np.mean([f for _, f in kept]):.0f}")
            gaps_best.append(best_cycle[category] - auroc_mean)
            if default_means[category]:
                kept_minus_default[category] = auroc_mean - np.mean([a for a, _ in default_means[category]])
        complete = "-" not in cells  # a figure over some categories only would flatter the rule
        summaries = []
        for _, members in families:
            gaps = [kept_minus_default[c] for c in categories if c in members and c in kept_minus_default]
            summaries.append(f"{np.mean(gaps):+.3f} / {min(gaps):+.3f}" if gaps and complete else "-")
        worst_best = f"{max(gaps_best):+.3f}" if gaps_best and complete else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(summaries) + f" | {worst_best} |")
    _plot_cycles(runs, categories, output / "cycles.png")
    return lines


def _plot_cycles(runs: dict[tuple[str, str], list[dict[str, str]]], categories: list[str], path: Path) -> None:
    """The selection score beside the test image AUROC at each cycle's end, one panel per category."""
    panels: dict[str, list[Curve]] = {category: [] for category in categories}
    for (category, _), trace in sorted(runs.items()):
        epochs = [float(r["epochs"]) for r in trace]
        first = not panels[category]
        panels[category] += [
            (epochs, [float(r["test_image_AUROC"]) for r in trace], "k-o", "test (labels)" if first else None),
            (epochs, [float(r["selection_score"]) for r in trace], "C0--o", "selection score (self-validation)" if first else None),
        ]  # fmt: skip
    _plot_panels(panels, path, "epochs (cycle ends)", "AUROC", 0.5)


def _threshold_summary(path: Path, fields: tuple[str, ...], title: str, what: str) -> list[str]:
    """Per category, the test F1 at each rule's threshold / the test-optimal F1, mean over seeds,
    beside the test-optimal F1 itself (``fields[6]``)."""
    if not path.exists():
        return []
    rows = ResultsTable(path, fields, ("category", "seed", "epochs", "rule")).rows
    rules = get_args(ThresholdRule)
    categories = sorted({row["category"] for row in rows}, key=list(ALL_CATEGORIES).index)
    lines = ["", f"## {title}", "",
             f"{what} at the threshold each rule (`training.thresholds`) puts on the self-validation "
             "set after 25 epochs, as a fraction of the best F1 any threshold reaches on the test labels; "
             f"mean over seeds (rows in `{path.name}`).", "",
             "| category | seeds | best F1 on test | " + " | ".join(rules) + " |", "|---|---|---|" + "---|" * len(rules)]  # fmt: skip
    def mean(category: str, column: str, rule: str = "highest_normal") -> float:
        return float(np.mean([float(row[column]) for row in rows if row["category"] == category and row["rule"] == rule]))
    means = {(category, rule): mean(category, "ratio", rule) for category in categories for rule in rules}
    for category in categories:
        seeds = ",".join(sorted({row["seed"] for row in rows if row["category"] == category}))
        lines.append(f"| {category} | {seeds} | {mean(category, fields[6]):.3f} | "
                     + " | ".join(f"{means[category, rule]:.3f}" for rule in rules) + " |")  # fmt: skip
    for name, family in (("aligned demo", CATEGORIES), ("production-line parts", LINE_CATEGORIES)):
        chosen = [category for category in categories if category in family]
        if chosen:
            lowest = (min(means[category, rule] for category in chosen) for rule in rules)
            lines.append(f"| **lowest, {name}** | | | " + " | ".join(f"**{value:.3f}**" for value in lowest) + " |")
    return lines


def _correlation_section(rows: list[dict[str, str]]) -> list[str]:
    """Per category and seed: the estimate's rank correlation with the test AUROC across epochs."""
    categories = sorted({row["category"] for row in rows}, key=list(ALL_CATEGORIES).index)
    held = [row for row in rows if row["held_out"] != "0"]
    lines = [
        "",
        "Spearman rank correlation across epochs between the self-validation image AUROC (or its",
        "pixel AUROC, or one defect family's image AUROC) and the test image AUROC; final (last-epoch) AUROCs with and without",
        "the held-out images; the epoch `keep_best_epoch` keeps (the best selection score, the later of a",
        "tie; replayed on the recorded scores) and its test image AUROC.",
        "",
        "| category | seed | rho: estimate | rho: pixel estimate | rho: perlin | rho: own surface | final estimate | final test | final test, no hold-out | fit s | fit s, no hold-out | best epoch | its test |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    kept_minus_last = []
    pooled_self, pooled_pixel, pooled_test = [], [], []
    for category in categories:
        for seed in sorted({row["seed"] for row in held if row["category"] == category}):
            curve = [row for row in held if row["category"] == category and row["seed"] == seed]
            control = [r for r in rows if r["category"] == category and r["seed"] == seed and r["held_out"] == "0"]
            test = [float(row["test_image_AUROC"]) for row in curve]
            rhos = [spearmanr([float(row[column]) for row in curve], test).statistic for column in
                    ("self_image_AUROC", "self_pixel_AUROC", "self_perlin_image_AUROC", "self_own_surface_image_AUROC")]  # fmt: skip
            pooled_self += [float(row["self_image_AUROC"]) for row in curve]
            pooled_pixel += [float(row["self_pixel_AUROC"]) for row in curve]
            pooled_test += test
            last, base = curve[-1], control[-1] if control else None
            kept = kept_epoch(curve)
            kept_minus_last.append(test[kept] - test[-1])
            lines.append(
                f"| {category} | {seed} | " + " | ".join(f"{rho:.2f}" for rho in rhos)
                + f" | {float(last['self_image_AUROC']):.3f} | {float(last['test_image_AUROC']):.3f} | "
                + (f"{float(base['test_image_AUROC']):.3f}" if base else "-")
                + f" | {last['fit_seconds']} | {base['fit_seconds'] if base else '-'}"
                + f" | {kept + 1} | {test[kept]:.3f} |"
            )
    lines += [
        "",
        f"Pooled over categories and epochs: rho = {spearmanr(pooled_self, pooled_test).statistic:.2f} (image "
        f"estimate), {spearmanr(pooled_pixel, pooled_test).statistic:.2f} (pixel estimate).",
        "",
        f"`keep_best_epoch` against the last epoch, test image AUROC over {len(kept_minus_last)} runs: "
        f"mean {np.mean(kept_minus_last):+.4f}, lowest {min(kept_minus_last):+.4f}, "
        f"highest {max(kept_minus_last):+.4f}.",
    ]
    return lines


def kept_epoch(curve: list[dict[str, str]]) -> int:
    """The epoch index (0-based) ``keep_best_epoch`` keeps on a recorded curve: the best selection
    score, the later of a tie."""
    scores = [
        SelfValidationScores(
            float(row["self_image_AUROC"]), float(row["self_pixel_AUROC"]), float(row["self_AUPRO"]), 0, {}
        ).selection_score
        for row in curve
    ]
    return max(range(len(scores)), key=lambda index: (scores[index], index))


Curve = tuple[list[float], list[float], str, str | None]  # x, y, matplotlib format, legend label


def _plot_panels(panels: dict[str, list[Curve]], path: Path, xlabel: str, ylabel: str, bottom: float) -> None:
    """One panel of curves per category, side by side; the first panel carries the legend."""
    figure = Figure(figsize=(4 * len(panels), 3.2))
    for index, (category, curves) in enumerate(panels.items(), start=1):
        axes = figure.add_subplot(1, len(panels), index)
        for x, y, style, label in curves:
            axes.plot(x, y, style, ms=3, label=label)
        axes.set_title(category)
        axes.set_xlabel(xlabel)
        axes.set_ylim(bottom, 1.01)
        if index == 1:
            axes.set_ylabel(ylabel)
            axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def _plot_curves(rows: list[dict[str, str]], path: Path) -> None:
    """The estimate beside the test curve, one panel per category."""
    categories = sorted({row["category"] for row in rows}, key=list(ALL_CATEGORIES).index)
    held = [row for row in rows if row["held_out"] != "0"]
    panels: dict[str, list[Curve]] = {}
    for category in categories:
        for seed in sorted({row["seed"] for row in held if row["category"] == category}):
            curve = [row for row in held if row["category"] == category and row["seed"] == seed]
            epochs = [float(row["epoch"]) for row in curve]
            first = seed == min(row["seed"] for row in held if row["category"] == category)
            panels.setdefault(category, []).extend([
                (epochs, [float(row["test_image_AUROC"]) for row in curve], "k-", "test (labels)" if first else None),
                (epochs, [float(row["self_image_AUROC"]) for row in curve], "C0--", "self-validation, image" if first else None),
                (epochs, [float(row["self_pixel_AUROC"]) for row in curve], "C1:", "self-validation, pixel" if first else None),
            ])  # fmt: skip
    _plot_panels(panels, path, "epoch", "image AUROC", 0.4)


def main() -> None:
    """Run what is missing from ``runs.csv``, then write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("datasets/demo"))
    parser.add_argument("--results", type=Path, default=Path("results/self_validation_study"))
    parser.add_argument("--output", type=Path, default=Path("docs/self_validation"))
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--held-out", type=int, default=8)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--no-control", action="store_true", help="skip the runs without held-out images")
    parser.add_argument("--no-curves", action="store_true", help="skip the per-epoch runs (runs.csv)")
    parser.add_argument("--adaptive", action="store_true", help="also compare the default and adaptive budgets")
    parser.add_argument("--thresholds", action="store_true", help="also measure F1 at the self-validation threshold")
    parser.add_argument("--cycles", action="store_true", help="also trace every cycle of the adaptive budget")
    parser.add_argument("--max-cycles", type=int, default=5, help="cycles a --cycles run trains")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    missing = [category for category in args.categories if not (args.root / category).is_dir()]
    if missing:
        build_demo_categories(args.root, missing)
    table = ResultsTable(args.output / "runs.csv", FIELDS, ("category", "seed", "held_out", "epoch"))
    for category in [] if args.no_curves else args.categories:
        for seed in args.seeds:
            for held_out in (args.held_out,) if args.no_control else (args.held_out, 0):
                if table.has(category, str(seed), str(held_out), str(args.epochs)):
                    continue
                for row in run(args.root, category, seed, held_out, args.epochs, args.results):
                    table.add(row)
    adaptive = ResultsTable(args.output / "adaptive.csv", ADAPTIVE_FIELDS, ("category", "seed", "budget"))
    if args.adaptive:
        for category in args.categories:
            for seed in args.seeds:
                for held_out in (0, args.held_out):
                    budget = f"adaptive ({held_out} held out)" if held_out else "default"
                    if not adaptive.has(category, str(seed), budget):
                        adaptive.add(adaptive_run(args.root, category, seed, held_out, args.results))
    if args.cycles:
        cycles = ResultsTable(args.output / "cycles.csv", CYCLE_FIELDS, ("category", "seed", "cycle"))
        for category in args.categories:
            for seed in args.seeds:
                if not cycles.has(category, str(seed), str(args.max_cycles)):
                    for row in cycle_run(args.root, category, seed, args.held_out, args.max_cycles, args.results):
                        cycles.add(row)
                if not adaptive.has(category, str(seed), "default"):  # what the cycles are compared with
                    adaptive.add(adaptive_run(args.root, category, seed, 0, args.results))
    if args.thresholds:
        key = ("category", "seed", "epochs", "rule")
        thresholds = ResultsTable(args.output / "thresholds.csv", THRESHOLD_FIELDS, key)
        pixel_thresholds = ResultsTable(args.output / "pixel_thresholds.csv", PIXEL_THRESHOLD_FIELDS, key)
        for category in args.categories:
            for seed in args.seeds:
                if not all(table.has(category, str(seed), "25", "highest_normal") for table in (thresholds, pixel_thresholds)):
                    image_rows, pixel_rows = threshold_run(args.root, category, seed, args.held_out, 25, args.results)
                    for row in image_rows:
                        thresholds.add(row)
                    for row in pixel_rows:
                        pixel_thresholds.add(row)
    report(table.rows, args.output, "python studies/self_validation_study.py", args.held_out)
    print((args.output / "README.md").read_text())


if __name__ == "__main__":
    main()

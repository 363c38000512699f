"""The benchmark's outputs: Markdown tables laid out like the paper's Tables 1 and 2, and PNG plots."""

from collections import defaultdict
from pathlib import Path
from statistics import mean

from matplotlib.figure import Figure  # no pyplot: drawing files must not change anyone's backend

OURS = "fastflow"
METRICS = ("image_AUROC", "pixel_AUROC", "pixel_AUPRO")  # pixel ones empty for image-level datasets


def _ok(rows: list[dict[str, str]], test_set: str | None = None) -> list[dict[str, str]]:
    """Finished rows; of one test set only when given (rows without one are ``aligned``)."""
    return [
        row
        for row in rows
        if row["status"] == "ok" and (test_set is None or (row.get("test_set") or "aligned") == test_set)
    ]


def cost_table(cost: list[dict[str, str]], accuracy: list[dict[str, str]]) -> str:
    """Table 1: per model, backbone and runtime, batch-1 latency (median [min-max]) and parameters."""
    trained = defaultdict(list)
    for row in _ok(accuracy, "aligned"):
        trained[row["model"], row["backbone"]].append(row)
    lines = [
        "| model | backbone | runtime | backbone ms | model ms | additional ms | FPS | additional params (M) "
        "| trainable params (M) | train s (mean) | train peak MB (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in _ok(cost):
        runs = trained.get((row["model"].split("_bank")[0], row["backbone"]), [])
        fit = f"{mean(float(r['fit_seconds']) for r in runs):.1f}" if runs else "-"
        memory = f"{mean(float(r['peak_memory_mb']) for r in runs):.0f}" if runs else "-"
        lines.append(
            f"| {row['model']} | {row['backbone']} | {row['runtime']} "
            f"| {float(row['backbone_ms']):.1f} "
            f"[{float(row['backbone_min_ms']):.1f}-{float(row['backbone_max_ms']):.1f}] "
            f"| {float(row['model_ms']):.1f} [{float(row['model_min_ms']):.1f}-{float(row['model_max_ms']):.1f}] "
            f"| {float(row['additional_ms']):.1f} | {float(row['fps']):.1f} "
            f"| {int(row['additional_parameters']) / 1e6:.2f} | {int(row['trainable_parameters']) / 1e6:.2f} "
            f"| {fit} | {memory} |"
        )
    return "\n".join(lines)


def accuracy_table(accuracy: list[dict[str, str]]) -> str:
    """Table 2: image AUROC / pixel AUROC / pixel AUPRO per category and model, with the mean."""
    rows = _ok(accuracy)
    systems = list(dict.fromkeys((row["model"], row["backbone"]) for row in rows))
    categories = list(dict.fromkeys(row["category"] for row in rows))
    found = {(row["model"], row["backbone"], row["category"]): row for row in rows}
    header = " | ".join(f"{model} ({backbone})" for model, backbone in systems)
    lines = [f"| category | {header} |", "|---|" + "---|" * len(systems)]

    def cell(row: dict[str, str] | None) -> str:
        if row is None:
            return "-"
        return " / ".join(f"{float(row[name]):.3f}" if row[name] else "-" for name in METRICS)

    for category in categories:
        lines.append(f"| {category} | " + " | ".join(cell(found.get((*s, category))) for s in systems) + " |")
    means = []
    for system in systems:
        runs = [row for row in rows if (row["model"], row["backbone"]) == system]
        means.append(" / ".join(f"{_mean_of(tuple(runs), name):.3f}".replace("nan", "-") for name in METRICS))
    lines.append("| mean | " + " | ".join(means) + " |")
    return "\n".join(lines)


def alignment_table(accuracy: list[dict[str, str]]) -> str:
    """Aligned against disturbed test set (paper Sec. 8): mean image AUROC / pixel AUROC / pixel AUPRO
    of each model over the categories tested on both, and the drop."""
    found = {(r["model"], r["backbone"], r["category"], r["test_set"]): r for r in _ok(accuracy, "disturbed")}
    found |= {(r["model"], r["backbone"], r["category"], "aligned"): r for r in _ok(accuracy, "aligned")}
    lines = [
        "| model | backbone | categories | aligned | disturbed | drop |",
        "|---|---|---|---|---|---|",
    ]
    for model, backbone in dict.fromkeys((r["model"], r["backbone"]) for r in _ok(accuracy, "disturbed")):
        both = [
            (found[model, backbone, c, "aligned"], found[model, backbone, c, "disturbed"])
            for (m, b, c, t) in found
            if (m, b, t) == (model, backbone, "disturbed") and (model, backbone, c, "aligned") in found
        ]
        if not both:
            continue

        aligned, disturbed = ([_mean_of(rows, name) for name in METRICS] for rows in zip(*both, strict=True))
        cells = [" / ".join(f"{value:.3f}" for value in values) for values in (aligned, disturbed)]
        drop = " / ".join(f"{a - d:+.3f}" for a, d in zip(aligned, disturbed, strict=True))
        lines.append(f"| {model} | {backbone} | {len(both)} | {cells[0]} | {cells[1]} | {drop} |")
    return "\n".join(lines)


def _mean_of(rows: tuple[dict[str, str], ...], name: str) -> float:
    """Mean of column ``name`` over ``rows``; NaN where a row has no value (image-level datasets)."""
    return mean(float(row[name]) for row in rows) if all(row[name] for row in rows) else float("nan")


def target_ratios(cost: list[dict[str, str]]) -> list[str]:
    """Our additional time over each other model's, per backbone and runtime (lower is better)."""
    rows = _ok(cost)
    additional = {
        (row["model"], row["backbone"], row["runtime"]): float(row["additional_ms"]) for row in rows
    }
    lines = []
    for (model, backbone, runtime), value in sorted(additional.items()):
        if model != OURS:
            continue
        for (other, other_backbone, other_runtime), other_value in sorted(additional.items()):
            if other == OURS or other_backbone != backbone or other_value <= 0:
                continue
            if other_runtime == runtime or (other_runtime == "torch" and other == "anomalib_fastflow"):
                lines.append(
                    f"- {backbone}: ours ({runtime}) / {other} ({other_runtime}) additional time = "
                    f"{value:.1f} / {other_value:.1f} ms = {value / other_value:.2f}x"
                )
    return lines


def plot_accuracy_vs_time(accuracy: list[dict[str, str]], cost: list[dict[str, str]], path: Path) -> None:
    """Mean image AUROC against additional milliseconds (PyTorch eager), one point per model and backbone."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for row in (r for r in _ok(cost) if r["runtime"] == "torch"):
        system = (row["model"].split("_bank")[0], row["backbone"])
        runs = [r for r in _ok(accuracy, "aligned") if (r["model"], r["backbone"]) == system]
        if not runs:
            continue
        auroc = mean(float(r["image_AUROC"]) for r in runs)
        axes.scatter(float(row["additional_ms"]), auroc, s=60)
        axes.annotate(f"{row['model']}\n{row['backbone']}", (float(row["additional_ms"]), auroc), fontsize=7)
    axes.set_xlabel("additional time on top of the backbone, ms (batch 1, PyTorch eager)")
    axes.set_ylabel("mean image AUROC")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def plot_auroc_per_category(accuracy: list[dict[str, str]], path: Path) -> None:
    """Grouped bars: image AUROC per category, one bar per model and backbone (aligned test set)."""
    rows = _ok(accuracy, "aligned")
    systems = list(dict.fromkeys((row["model"], row["backbone"]) for row in rows))
    categories = list(dict.fromkeys(row["category"] for row in rows))
    found = {(row["model"], row["backbone"], row["category"]): float(row["image_AUROC"]) for row in rows}
    figure = Figure(figsize=(max(6, 1.5 * len(categories) * len(systems) / 2), 4))
    axes = figure.subplots()
    width = 0.8 / max(len(systems), 1)
    for index, system in enumerate(systems):
        positions = [c + index * width for c in range(len(categories))]
        axes.bar(positions, [found.get((*system, c), 0.0) for c in categories], width, label=" ".join(system))
    axes.set_xticks([c + 0.4 - width / 2 for c in range(len(categories))], categories)
    axes.set_ylim(0.5, 1.0)
    axes.set_ylabel("image AUROC")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def write_report(
    accuracy: list[dict[str, str]], cost: list[dict[str, str]], output: Path, heading: str
) -> str:
    """Write ``report.md`` and the two plots under ``output``; return the Markdown."""
    failures = [row for row in accuracy + cost if row["status"] != "ok"]
    parts = [
        heading,
        "## Inference cost (paper Table 1 layout; batch 1, median [min-max])",
        cost_table(cost, accuracy),
        "## Accuracy (paper Table 2 layout; image AUROC / pixel AUROC / pixel AUPRO)",
        accuracy_table(_ok(accuracy, "aligned")),
        "## Ours against the others (additional time)",
        "\n".join(target_ratios(cost)) or "(nothing to compare)",
    ]
    if _ok(accuracy, "disturbed"):
        parts += [
            "## Disturbed (non-aligned) test set (paper Sec. 8; image AUROC / pixel AUROC / pixel AUPRO)",
            accuracy_table(_ok(accuracy, "disturbed")),
            "## Aligned against disturbed (means over the categories tested on both)",
            alignment_table(accuracy),
        ]
    if failures:
        parts += [
            "## Failed or skipped runs",
            "\n".join(
                f"- {' '.join(r[f] for f in list(r)[:3])} ({r['status']}): {r['error']}" for r in failures
            ),
        ]
    parts.append("![accuracy vs time](accuracy_vs_time.png)\n\n![AUROC per category](auroc_per_category.png)")
    report = "\n\n".join(parts) + "\n"
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.md").write_text(report)
    plot_accuracy_vs_time(accuracy, cost, output / "accuracy_vs_time.png")
    plot_auroc_per_category(accuracy, output / "auroc_per_category.png")
    return report

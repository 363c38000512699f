"""The report page: ``index.html`` and its figures, written beside the gallery's images.

Self-contained: inline CSS, images and SVG figures in the same folder, no scripts and nothing
fetched, so the folder can be zipped, mailed or opened from a share.
"""

from collections import defaultdict
from html import escape
from pathlib import Path

import numpy as np

from .collector import ScoredImage
from .plots import roc_and_precision_recall, score_histogram

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; border: 3px solid #ccc; padding: 0.3em; width: min-content; }
figure.miss, figure.false-alarm { border-color: #d7301f; }
figcaption { font-size: 0.8em; overflow-wrap: anywhere; }
"""


def gallery_order(images: list[ScoredImage]) -> list[ScoredImage]:
    """Missed defects, then false alarms, then the rest; each group by score, highest first."""

    def group(image: ScoredImage) -> int:
        if image.label is None or image.label == image.decision:
            return 2
        return 0 if image.label else 1

    return sorted(images, key=lambda image: (group(image), -image.score))


def _outcome(image: ScoredImage) -> str:
    if image.label is None:
        return "unlabelled"
    if image.label != image.decision:
        return "miss" if image.label else "false-alarm"
    return "hit" if image.label else "correct-rejection"


def _figure(image: ScoredImage) -> str:
    decision = "anomalous" if image.decision else "normal"
    truth = "" if image.label is None else f", truth {'defective' if image.label else 'normal'}"
    return (
        f'<figure class="{_outcome(image)}" data-score="{image.score:.6f}">'
        f'<img src="{escape(image.panels)}" alt="{escape(Path(image.path).name)}" loading="lazy">'
        f"<figcaption>{escape(Path(image.path).name)}: score {image.score:.4f}, {decision}{truth}</figcaption>"
        "</figure>"
    )


def _metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    names = sorted({name for values in metrics.values() for name in values})
    rows = "".join(
        f"<tr><td>{escape(category)}</td>"
        + "".join(f"<td>{values[name]:.4f}</td>" if name in values else "<td></td>" for name in names)
        + "</tr>"
        for category, values in metrics.items()
    )
    header = "".join(f"<th>{escape(name)}</th>" for name in names)
    return f'<table class="metrics"><tr><th>category</th>{header}</tr>{rows}</table>'


def write_page(
    folder: Path,
    title: str,
    run: dict[str, str],
    metrics: dict[str, dict[str, float]],
    images: list[ScoredImage],
) -> Path:
    """Write ``folder/index.html``: the run, the metrics per category, and per category a score
    histogram, ROC and precision-recall curves where labels exist, and the gallery.

    Args:
        folder: The report's folder; the images' ``panels`` are relative to it.
        title: The page's heading.
        run: What the run was (model settings, budget, thresholds and where they came from, CPU, versions).
        metrics: anomalib's test metrics per category (empty for unlabelled images).
        images: Every image of the run.
    """
    folder = Path(folder)
    by_category: dict[str, list[ScoredImage]] = defaultdict(list)
    for image in images:
        by_category[image.category].append(image)
    sections = []
    for index, (category, members) in enumerate(by_category.items()):
        scores = np.array([image.score for image in members])
        labelled = all(image.label is not None for image in members)
        labels = np.array([bool(image.label) for image in members]) if labelled else None
        figures = [score_histogram(scores, labels, folder / f"histogram_{index}.svg")]
        if labels is not None and labels.any() and not labels.all():
            figures.append(roc_and_precision_recall(scores, labels, folder / f"curves_{index}.svg"))
        counts = ""
        if labels is not None:
            misses = sum(_outcome(image) == "miss" for image in members)
            alarms = sum(_outcome(image) == "false-alarm" for image in members)
            counts = f"<p>{misses} missed defects, {alarms} false alarms among {len(members)} images.</p>"
        figure_tags = "".join(f'<img src="{path.name}" alt="{escape(path.stem)}">' for path in figures)
        gallery = "".join(_figure(image) for image in gallery_order(members))
        sections.append(
            f'<section id="category-{index}"><h2>{escape(category or "images")}</h2>{counts}'
            f'<div class="figures">{figure_tags}</div><div class="gallery">{gallery}</div></section>'
        )
    run_list = "".join(f"<dt>{escape(key)}</dt><dd>{escape(value)}</dd>" for key, value in run.items())
    metrics_html = f"<h2>Metrics</h2>{_metrics_table(metrics)}" if metrics else ""
    html = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1><h2>Run</h2><dl>{run_list}</dl>"
        f"{metrics_html}{''.join(sections)}</body></html>\n"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    path.write_text(html, encoding="utf-8")
    return path

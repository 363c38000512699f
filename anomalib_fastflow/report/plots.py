"""The report's figures, drawn with matplotlib as SVG (text as paths: no font is fetched).

Figures are made with ``matplotlib.figure.Figure`` rather than pyplot, so that writing a report
neither changes the backend nor shows figures in a notebook that runs it.
Scores are anomalib's normalised image scores, whose image threshold sits at 0.5.
"""

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torchmetrics.functional.classification import binary_precision_recall_curve, binary_roc

THRESHOLD = 0.5
NORMAL_COLOUR, DEFECTIVE_COLOUR, UNLABELLED_COLOUR = "#2b7bba", "#d7301f", "#636363"


def score_histogram(scores: np.ndarray, labels: np.ndarray | None, path: Path) -> Path:
    """Histogram of image scores (normal against defective where labels exist) with the threshold drawn."""
    figure = Figure(figsize=(6, 3))
    axes = figure.subplots()
    bins = np.linspace(0, 1, 41)
    if labels is None:
        axes.hist(scores, bins=bins, color=UNLABELLED_COLOUR, label=f"images ({len(scores)})")
    else:
        axes.hist(
            scores[~labels], bins=bins, alpha=0.7, color=NORMAL_COLOUR, label=f"normal ({(~labels).sum()})"
        )
        axes.hist(
            scores[labels], bins=bins, alpha=0.7, color=DEFECTIVE_COLOUR, label=f"defective ({labels.sum()})"
        )
    axes.axvline(THRESHOLD, color="black", linestyle="--", label="image threshold")
    axes.set_xlabel("image score (normalised)")
    axes.set_ylabel("images")
    axes.legend(frameon=False)
    return _save(figure, path)


def roc_and_precision_recall(scores: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """ROC and precision-recall curves of the image scores (torchmetrics), the threshold's point marked."""
    preds, target = torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long)
    false_positive_rate, true_positive_rate, _ = binary_roc(preds, target)
    precision, recall, _ = binary_precision_recall_curve(preds, target)
    decided = scores > THRESHOLD  # anomalib's rule: anomalous above the threshold
    point_fpr = (decided & ~labels).sum() / max(1, (~labels).sum())
    point_recall = (decided & labels).sum() / max(1, labels.sum())
    point_precision = (decided & labels).sum() / max(1, decided.sum())
    figure = Figure(figsize=(8, 3.5))
    roc, pr = figure.subplots(1, 2)
    roc.plot(false_positive_rate, true_positive_rate, color=DEFECTIVE_COLOUR)
    roc.plot([0, 1], [0, 1], color="#bbbbbb", linestyle=":")
    roc.plot(point_fpr, point_recall, "ko", label="at the threshold")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.plot(recall, precision, color=DEFECTIVE_COLOUR)
    pr.plot(point_recall, point_precision, "ko", label="at the threshold")
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    roc.legend(frameon=False, loc="lower right")
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="svg")
    return path

"""Where to put the image threshold, from the scores of held-out normal images and synthetic defects.

``highest_normal`` (the default) flags nothing the held-out normal images score: the threshold is
the highest of their scores. The others place it in the synthetic set's F1-optimal range: F1 does
not change while a threshold moves between two neighbouring scores, so on a set the model
separates everything from the highest normal score to the lowest defect score is F1-optimal.
anomalib's ``F1AdaptiveThreshold`` takes the top of that range (``f1_high``: the faintest
synthetic defect it still flags), ``f1_low`` its bottom, ``f1_middle`` halfway. Synthetic defects
are plainer than real ones on some data and fainter on other, which moves every F1 placement; the
highest normal score depends on the normal images alone. Measured on the demo and checked on the
production-line parts: ``docs/self_validation/``. Predictions are ``score > threshold``, as
anomalib's post-processor makes them.
"""

from typing import Literal

import torch

ThresholdRule = Literal["highest_normal", "f1_low", "f1_middle", "f1_high"]


def image_threshold(scores: torch.Tensor, labels: torch.Tensor, rule: ThresholdRule = "highest_normal") -> float:
    """The threshold ``rule`` puts on ``scores`` ``(N,)`` of images with ``labels`` ``(N,)`` (1: defective).

    Raises:
        ValueError: ``labels`` has no defective or no normal image.
    """
    scores, labels = scores.flatten().float(), labels.flatten().bool()
    if labels.all() or not labels.any():
        msg = "A threshold needs both normal and defective scores."
        raise ValueError(msg)
    if rule == "highest_normal":
        return float(scores[~labels].max())
    low, high = f1_optimal_range(scores, labels)
    return {"f1_low": low, "f1_middle": (low + high) / 2, "f1_high": high}[rule]


def f1_optimal_range(scores: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """The lowest and highest threshold with the best F1 on ``scores`` ``(N,)``, ``labels`` ``(N,)`` (bool):
    the highest score left unflagged, and the float just below the lowest flagged score. Among
    cuts with equal F1, the lowest (as anomalib's ``F1AdaptiveThreshold``)."""
    ordered, order = torch.sort(scores)
    values = torch.unique_consecutive(ordered)  # ascending; cut k flags every score >= values[k]
    first = torch.searchsorted(ordered, values)  # scores below cut k
    defects_below = torch.cat([torch.zeros(1), torch.cumsum(labels[order].double(), 0)])[first]
    flagged_defects = labels.sum() - defects_below
    f1 = 2 * flagged_defects / ((len(scores) - first) + labels.sum())
    best = int(torch.argmax(f1))
    high = torch.nextafter(values[best], torch.tensor(-torch.inf))  # score > high flags values[best]
    low = values[best - 1] if best > 0 else high
    return float(low), float(high)

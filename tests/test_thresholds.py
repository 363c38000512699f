"""Where the label-free image threshold goes on normal and synthetic-defect scores."""

import pytest
import torch
from anomalib.data import ImageBatch
from anomalib.metrics import F1AdaptiveThreshold

from anomalib_fastflow.training.thresholds import image_threshold


def test_on_a_separated_set_the_f1_range_spans_the_gap_and_highest_normal_is_its_bottom() -> None:
    scores = torch.tensor([0.3, 0.1, 0.2, 0.8, 0.6, 0.7])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    rules = ("highest_normal", "f1_low", "f1_middle", "f1_high")
    highest, low, middle, high = (image_threshold(scores, labels, rule) for rule in rules)
    assert highest == low == pytest.approx(0.3)
    assert middle == pytest.approx(0.45)
    assert 0.3 < high < 0.6
    for threshold in (low, middle, high):  # every rule flags exactly the defects, with score > threshold
        assert torch.equal((scores > threshold).int(), labels)


def test_on_overlapping_scores_highest_normal_flags_no_normal_image_and_f1_rules_do() -> None:
    scores = torch.tensor([0.1, 0.5, 0.3, 0.4, 0.7, 0.8])  # a normal image (0.5) above a defect (0.4)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert image_threshold(scores, labels) == pytest.approx(0.5)
    assert image_threshold(scores, labels, "f1_low") == pytest.approx(0.3)  # flags 0.4 and the normal 0.5: F1 6/7
    assert not (scores[labels == 0] > image_threshold(scores, labels)).any()


def test_f1_high_is_anomalibs_f1_adaptive_threshold_and_f1_low_the_score_below_it() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 40 + [1] * 40)
    scores = torch.rand(80, generator=generator) + 0.4 * labels  # overlapping
    metric = F1AdaptiveThreshold(fields=["pred_score", "gt_label"])
    metric.update(ImageBatch(image=torch.zeros(80, 3, 4, 4), pred_score=scores, gt_label=labels))
    anomalib_value = float(metric.compute())
    high = image_threshold(scores, labels, "f1_high")
    assert high < anomalib_value
    assert not ((scores > high) & (scores < anomalib_value)).any()  # nothing between: the same cut
    assert image_threshold(scores, labels, "f1_low") == float(scores[scores < anomalib_value].max())


def test_a_threshold_needs_both_kinds_of_images() -> None:
    with pytest.raises(ValueError, match="both normal and defective"):
        image_threshold(torch.rand(5), torch.zeros(5, dtype=torch.long))

"""Anomaly maps and image scores: where the anomaly is, how scales fuse, how scores reduce."""

import pytest
import torch
from torch.nn import functional as F

from anomalib_fastflow.anomaly_map import AnomalyMapGenerator, image_score, smooth_map


def _latents() -> list[torch.Tensor]:
    """Two scales of unit-ish latents with one outlying region at the image's top-left corner."""
    torch.manual_seed(0)
    fine, coarse = torch.randn(1, 8, 16, 16) * 0.5, torch.randn(1, 16, 8, 8) * 0.5
    fine[..., :2, :2] += 4.0
    coarse[..., :1, :1] += 4.0
    return [fine, coarse]


def test_map_peaks_at_the_anomaly_at_input_size_and_lies_in_minus_one_to_zero() -> None:
    anomaly_map = AnomalyMapGenerator((32, 32))(_latents())
    assert anomaly_map.shape == (1, 1, 32, 32)
    assert anomaly_map[..., :4, :4].mean() > anomaly_map[..., 8:, 8:].max()
    assert anomaly_map.min() >= -1 and anomaly_map.max() <= 0


def test_each_image_gets_its_own_map_from_its_scales() -> None:
    """A batch's maps equal each image's scales upsampled one by one and averaged: no mixing across images."""
    generator = torch.Generator().manual_seed(0)
    latents = [torch.randn(3, 4, 8, 8, generator=generator), torch.randn(3, 6, 4, 4, generator=generator)]
    batch_map = AnomalyMapGenerator((32, 32))(latents)
    assert batch_map.shape == (3, 1, 32, 32)
    for index in range(3):
        scores = [-torch.exp(-0.5 * (z[index : index + 1] ** 2).mean(1, keepdim=True)) for z in latents]
        per_scale = [F.interpolate(score, size=(32, 32), mode="bilinear") for score in scores]
        torch.testing.assert_close(batch_map[index : index + 1], (per_scale[0] + per_scale[1]) / 2)


def test_image_score_is_the_maximum_per_image() -> None:
    anomaly_map = torch.stack([torch.arange(100.0), -torch.arange(100.0)]).reshape(2, 1, 10, 10)
    assert image_score(anomaly_map).tolist() == [99.0, 0.0]


def test_smoothing_spreads_an_isolated_peak_and_keeps_its_mass() -> None:
    raw = torch.zeros(1, 1, 32, 32)
    raw[..., 17, 17], raw[..., 16:19, 16:19] = 2.0, 1.0  # one isolated peak
    raw[..., 17, 17] = 2.0
    smooth = smooth_map(raw, sigma=2.0)
    assert smooth_map(raw, sigma=0.0) is raw
    assert smooth.shape == raw.shape
    assert smooth.max() < raw.max()  # the peak is spread ...
    assert smooth[..., 16:20, 16:20].max() == smooth.max()  # ... around the same place
    assert (smooth[..., 4:28, 4:28] > 0).sum() > (raw[..., 4:28, 4:28] > 0).sum()
    assert smooth.sum().item() == pytest.approx(
        raw.sum().item(), rel=1e-4
    )  # normalized kernel, far from borders

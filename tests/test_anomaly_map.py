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


@pytest.mark.parametrize("likelihood", ["probability", "log"])
@pytest.mark.parametrize("fusion", ["mean", "max"])
def test_map_peaks_at_the_anomaly_at_input_size(likelihood: str, fusion: str) -> None:
    anomaly_map = AnomalyMapGenerator((32, 32), likelihood, fusion)(_latents())
    assert anomaly_map.shape == (1, 1, 32, 32)
    assert anomaly_map[..., :4, :4].mean() > anomaly_map[..., 8:, 8:].max()


def test_probability_maps_lie_in_minus_one_to_zero() -> None:
    anomaly_map = AnomalyMapGenerator((32, 32), "probability", "mean")(_latents())
    assert anomaly_map.min() >= -1 and anomaly_map.max() <= 0


def test_max_fusion_bounds_mean_fusion() -> None:
    latents = _latents()
    mean_map = AnomalyMapGenerator((32, 32), "log", "mean")(latents)
    max_map = AnomalyMapGenerator((32, 32), "log", "max")(latents)
    assert (max_map >= mean_map - 1e-6).all() and (max_map > mean_map + 1e-3).any()


@pytest.mark.parametrize("fusion", ["mean", "max"])
def test_each_image_gets_its_own_map_from_its_scales(fusion: str) -> None:
    """A batch's maps equal each image's scales upsampled one by one and fused: no mixing across images."""
    generator = torch.Generator().manual_seed(0)
    latents = [torch.randn(3, 4, 8, 8, generator=generator), torch.randn(3, 6, 4, 4, generator=generator)]
    batch_map = AnomalyMapGenerator((32, 32), "log", fusion)(latents)
    assert batch_map.shape == (3, 1, 32, 32)
    for index in range(3):
        scores = [0.5 * (z[index : index + 1] ** 2).mean(1, keepdim=True) for z in latents]
        per_scale = [F.interpolate(score, size=(32, 32), mode="bilinear") for score in scores]
        expected = (per_scale[0] + per_scale[1]) / 2 if fusion == "mean" else torch.maximum(*per_scale)
        torch.testing.assert_close(batch_map[index : index + 1], expected)


def test_image_score_max_and_top_k_mean() -> None:
    anomaly_map = torch.arange(100.0).reshape(1, 1, 10, 10)
    assert image_score(anomaly_map).item() == 99.0
    assert image_score(anomaly_map, top_k_fraction=0.05).item() == pytest.approx((95 + 96 + 97 + 98 + 99) / 5)
    assert image_score(anomaly_map, top_k_fraction=1e-6).item() == 99.0  # at least one pixel



def test_smoothing_spreads_an_isolated_peak_and_keeps_its_mass() -> None:
    latents = [torch.zeros(1, 4, 8, 8)]
    latents[0][..., 4, 4] = 6.0  # one anomalous feature pixel
    raw = AnomalyMapGenerator((32, 32), "log", "mean")(latents)
    smooth = smooth_map(raw, sigma=2.0)
    assert smooth_map(raw, sigma=0.0) is raw
    assert smooth.shape == raw.shape
    assert smooth.max() < raw.max()  # the peak is spread ...
    assert smooth[..., 16:20, 16:20].max() == smooth.max()  # ... around the same place
    assert (smooth[..., 4:28, 4:28] > 0).sum() > (raw[..., 4:28, 4:28] > 0).sum()
    assert smooth.sum().item() == pytest.approx(raw.sum().item(), rel=1e-4)  # normalized kernel, far from borders

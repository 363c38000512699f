"""From latents to an anomaly map and an image score (paper Sec. 3.3).

Per scale, each pixel's features have log-likelihood ``log p = -0.5 * mean_c z_c^2`` under
``N(0, I)`` (up to a constant). The per-scale map is ``-p = -exp(log p)`` (``likelihood="probability"``,
the paper's and reference implementations' choice) or ``-log p`` (``likelihood="log"``), upsampled
bilinearly to the input size; scales are fused by their mean or maximum, so higher means more
anomalous. The image score is that map's maximum, or the mean of its top ``top_k_fraction`` pixels.
The map users get is then smoothed by a Gaussian of ``sigma`` input pixels (kornia's separable
blur; anomalib's PatchCore likewise scores images before smoothing its map).
"""

from typing import Literal

import torch
from kornia.filters import gaussian_blur2d
from torch import nn
from torch.nn import functional as F

Likelihood = Literal["probability", "log"]
Fusion = Literal["mean", "max"]


class AnomalyMapGenerator(nn.Module):
    """``[(N, C_i, H_i, W_i) latents] -> (N, 1, H, W)`` anomaly map at the input size.

    Args:
        input_size: ``(H, W)`` of the network input.
        likelihood: Per-scale map from the probability (``-p``) or the log-likelihood (``-log p``).
        fusion: Combine scales by their ``mean`` or pixel-wise ``max``.
    """

    def __init__(self, input_size: tuple[int, int], likelihood: Likelihood = "probability", fusion: Fusion = "mean") -> None:
        super().__init__()
        self.input_size = tuple(input_size)
        self.likelihood = likelihood
        self.fusion = fusion

    def forward(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Upsample each scale's negative likelihood map and fuse the scales.

        Each ``(N, h, w)`` map is upsampled with the batch as channels, ``(1, N, h, w)``, and the
        scales are fused as they come (a running sum or maximum) rather than stacked: the same
        maths, in the ops OpenVINO's CPU plugin runs fastest (it upsamples ``N`` one-channel maps
        and stacks along a new last axis in slow kernels, ``docs/openvino_settings.md``).
        """
        fused = None
        for z in latents:
            log_likelihood = -0.5 * torch.mean(z**2, dim=1)
            score = -torch.exp(log_likelihood) if self.likelihood == "probability" else -log_likelihood
            score = F.interpolate(score[None], size=self.input_size, mode="bilinear", align_corners=False)
            if fused is None:
                fused = score
            else:
                fused = fused + score if self.fusion == "mean" else torch.maximum(fused, score)
        if self.fusion == "mean":
            fused = fused / len(latents)
        return fused.transpose(0, 1)


def image_score(anomaly_map: torch.Tensor, top_k_fraction: float = 0.0) -> torch.Tensor:
    """``(N, 1, H, W)`` map -> ``(N,)`` image score: the maximum, or the mean of the top fraction of pixels."""
    if top_k_fraction <= 0:
        return torch.amax(anomaly_map, dim=(-3, -2, -1))
    pixels = anomaly_map.flatten(1)
    k = max(1, int(top_k_fraction * pixels.shape[1]))
    return pixels.topk(k, dim=1).values.mean(dim=1)


def smooth_map(anomaly_map: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(N, 1, H, W)`` map blurred by a Gaussian of ``sigma`` pixels (4 sigma each side); 0: unchanged."""
    if sigma == 0:
        return anomaly_map
    return gaussian_blur2d(anomaly_map, 2 * round(4 * sigma) + 1, (sigma, sigma))

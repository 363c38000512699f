"""From latents to an anomaly map and an image score (paper Sec. 3.3).

Per scale, each pixel's features have log-likelihood ``log p = -0.5 * mean_c z_c^2`` under
``N(0, I)`` (up to a constant). The per-scale map is ``-p = -exp(log p)``, the paper's and the
reference implementations' choice, upsampled bilinearly to the input size; the scales are averaged,
so higher means more anomalous. The image score is that map's maximum. The map users get is then
smoothed by a Gaussian of ``sigma`` input pixels (kornia's separable blur; anomalib's PatchCore
likewise scores images before smoothing its map).
"""

import torch
from kornia.filters import gaussian_blur2d
from torch import nn
from torch.nn import functional as F


class AnomalyMapGenerator(nn.Module):
    """``[(N, C_i, H_i, W_i) latents] -> (N, 1, H, W)`` anomaly map at the input size.

    Args:
        input_size: ``(H, W)`` of the network input.
    """

    def __init__(self, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.input_size = tuple(input_size)

    def forward(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Upsample each scale's negative probability map and average the scales.

        Each ``(N, h, w)`` map is upsampled with the batch as channels, ``(1, N, h, w)``, and the
        scales are summed as they come rather than stacked: the same maths, in the ops OpenVINO's
        CPU plugin runs fastest (it upsamples ``N`` one-channel maps and stacks along a new last
        axis in slow kernels).
        """
        fused = None
        for z in latents:
            score = -torch.exp(-0.5 * torch.mean(z**2, dim=1))
            score = F.interpolate(score[None], size=self.input_size, mode="bilinear", align_corners=False)
            fused = score if fused is None else fused + score
        return (fused / len(latents)).transpose(0, 1)


def image_score(anomaly_map: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` map -> ``(N,)`` image score: its maximum."""
    return torch.amax(anomaly_map, dim=(-3, -2, -1))


def smooth_map(anomaly_map: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(N, 1, H, W)`` map blurred by a Gaussian of ``sigma`` pixels (4 sigma each side); 0: unchanged."""
    if sigma == 0:
        return anomaly_map
    return gaussian_blur2d(anomaly_map, 2 * round(4 * sigma) + 1, (sigma, sigma))

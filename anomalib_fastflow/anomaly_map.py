"""From latents to an anomaly map and an image score (paper Sec. 3.3).

Per scale, the likelihood of each pixel's feature under ``N(0, I)`` is
``p = exp(-0.5 * mean_c z_c^2)``; the map is ``-p`` upsampled bilinearly to the input size and
averaged over scales, so higher means more anomalous. The image score is the map's maximum.
"""

import torch
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
        """Average over scales of the upsampled negative per-pixel likelihood."""
        maps = [
            F.interpolate(
                -torch.exp(-0.5 * torch.mean(z**2, dim=1, keepdim=True)),
                size=self.input_size,
                mode="bilinear",
                align_corners=False,
            )
            for z in latents
        ]
        return torch.stack(maps, dim=-1).mean(dim=-1)


def image_score(anomaly_map: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` map -> ``(N,)`` image anomaly score: the map's maximum."""
    return torch.amax(anomaly_map, dim=(-3, -2, -1))

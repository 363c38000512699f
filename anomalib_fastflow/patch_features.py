"""What each flow sees of the backbone's maps: optionally PatchCore's locally aware patch features.

PatchCore (Roth et al., 2022) averages every feature over its 3x3 neighbourhood, so that each
position describes a patch with its context. ``PatchFeatures`` does the same to FastFlow's per-scale
maps before the norms; ``pooling`` is the neighbourhood's side (1: none).
"""

import torch
from torch import nn

from .errors import InputError


class PatchFeatures(nn.Module):
    """``[(N, C_i, H_i, W_i)] -> [(N, C_i, H_i, W_i)]``, each feature averaged over its neighbourhood.

    Args:
        pooling: Side ``k`` of the neighbourhood each feature is averaged over (stride 1, zero
            padding counted as PatchCore's ``AvgPool2d(3, 1, 1)`` does); odd, 1 for none.

    Raises:
        ValueError: ``pooling`` is even or below 1.
    """

    def __init__(self, pooling: int = 1) -> None:
        super().__init__()
        if pooling < 1 or pooling % 2 == 0:
            msg = f"feature_pooling={pooling}: the neighbourhood's side must be odd and at least 1."
            raise InputError(msg)
        self.pooling = nn.AvgPool2d(pooling, stride=1, padding=pooling // 2) if pooling > 1 else nn.Identity()

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Average each map's neighbourhoods (same shapes out)."""
        return [self.pooling(feature) for feature in features]

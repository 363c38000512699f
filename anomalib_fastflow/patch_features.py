"""What each flow sees of the backbone's maps: PatchCore's locally aware patch features, per stage.

PatchCore (Roth et al., 2022) averages every feature over its 3x3 neighbourhood, so that each
position describes a patch with its context. ``PatchFeatures`` does the same to FastFlow's per-scale
maps before the norms, with a neighbourhood side per stage (1: none). ``stage_pooling`` resolves
what a user asks for: one side for every stage, one per stage, or ``None``, FastFlow's default rule
(``docs/real_defaults.md``): a 3x3 average on every stage but the finest, which keeps its single
positions for defects a few pixels wide (a backbone with one stage, a transformer block, is averaged).
"""

from collections.abc import Sequence

import torch
from torch import nn

from .errors import InputError

DEFAULT_SIDE = 3  # PatchCore's neighbourhood


def stage_pooling(pooling: int | Sequence[int] | None, stages: int) -> tuple[int, ...]:
    """The neighbourhood side of each of ``stages`` stages, finest first.

    Args:
        pooling: One odd side for every stage, one per stage, or ``None`` for the default rule.
        stages: How many stages (flows) the model has.

    Raises:
        InputError: A side that is even or below 1, or a sequence whose length is not ``stages``.
    """
    if pooling is None:
        sides = (DEFAULT_SIDE,) if stages == 1 else (1,) + (DEFAULT_SIDE,) * (stages - 1)
    elif isinstance(pooling, int):
        sides = (pooling,) * stages
    else:
        sides = tuple(int(side) for side in pooling)
        if len(sides) != stages:
            msg = f"feature_pooling={list(sides)}: give one side per stage ({stages}), or one side for all."
            raise InputError(msg)
    for side in sides:
        if side < 1 or side % 2 == 0:
            msg = f"feature_pooling={pooling}: each neighbourhood's side must be odd and at least 1."
            raise InputError(msg)
    return sides


class PatchFeatures(nn.Module):
    """``[(N, C_i, H_i, W_i)] -> [(N, C_i, H_i, W_i)]``, stage ``i`` averaged over its neighbourhood.

    Args:
        sides: Side ``k_i`` of each stage's neighbourhood (stride 1, zero padding counted as
            PatchCore's ``AvgPool2d(3, 1, 1)`` does); 1 leaves that stage as it is.
    """

    def __init__(self, sides: Sequence[int]) -> None:
        super().__init__()
        self.sides = tuple(sides)
        self.pooling = nn.ModuleList(
            nn.AvgPool2d(side, stride=1, padding=side // 2) if side > 1 else nn.Identity()
            for side in self.sides
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Average each map's neighbourhoods (same shapes out)."""
        return [pool(feature) for pool, feature in zip(self.pooling, features, strict=True)]

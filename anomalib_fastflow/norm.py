"""The per-scale normalisation in front of each flow (paper Sec. 3.3, its reference code).

Each backbone feature map ``(N, C, H, W)`` is normalised over ``(C, H, W)`` per sample (one mean and
one variance per image and scale, so a global change of brightness or contrast does not reach the
flow), then scaled and shifted by learned parameters. The paper's ``LayerNorm([C, H, W])`` learns
them per channel *and position* (``NormAffine = "position"``): the flows, whose convolutions treat
every position alike, then see each position's features through their own affine, so what is
normal is tied to where it sits. ``"channel"`` learns one scale and shift per channel, shared by
all positions (and works at any feature size).
"""

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

NormAffine = Literal["position", "channel"]


class ChannelAffineLayerNorm(nn.Module):
    """``(N, C, H, W)`` normalised over ``(C, H, W)``, then ``* weight + bias`` per channel ``(C, 1, 1)``."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Same shape out as in."""
        return F.layer_norm(features, features.shape[1:], eps=self.eps) * self.weight + self.bias


def build_norm(shape: tuple[int, int, int], affine: NormAffine = "position") -> nn.Module:
    """The normalisation of features of ``shape = (C, H, W)`` with a per-position or per-channel affine.

    Raises:
        ValueError: An unknown ``affine``.
    """
    if affine == "position":
        return nn.LayerNorm(list(shape))
    if affine == "channel":
        return ChannelAffineLayerNorm(shape[0])
    msg = f"norm_affine={affine!r} is not one of 'position', 'channel'."
    raise ValueError(msg)

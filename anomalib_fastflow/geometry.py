"""Random affine transforms of images and their masks: drawn from a key, resampled exactly.

A transform (zoom, rotation, shift about the image centre) is drawn from ranges (``Disturbance``;
the paper's non-aligned test sets by default, Sec. 8) and a string key, so the same key always
gives the same transform. ``disturb`` applies one to a ``(C, H, W)`` image and its mask. Used by
the disturbed test-set writer (``data.disturbed``) and by the training views' small affine
augmentation (``training.views``).
"""

import math
import zlib
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

Fill = Literal["mean", "black", "reflect"]
Interpolation = Literal["bicubic", "bilinear"]


@dataclass(frozen=True)
class Disturbance:
    """Ranges of the random transforms (the paper's by default).

    Attributes:
        zoom_ratio: Scale drawn log-uniformly from ``[zoom_ratio, 1 / zoom_ratio]`` (0.85: zoom out
            to 85% or in to 118%).
        max_rotation: Rotation drawn uniformly from ``[-max_rotation, max_rotation]`` degrees.
        max_translation: Shift along each axis drawn uniformly from ``[-t, t]`` times the image size.
        fill: What fills the area brought in from outside the image: its ``mean`` colour, ``black``,
            or the image mirrored across its borders (``reflect``; the mask is mirrored with it).
        interpolation: How the image is resampled: ``bicubic`` (default) or ``bilinear``, which
            blurs fine textures enough for the flows to flag the blur (docs/disturbed.md).
    """

    zoom_ratio: float = 0.85
    max_rotation: float = 15.0
    max_translation: float = 0.15
    fill: Fill = "mean"
    interpolation: Interpolation = "bicubic"

    def scaled(self, factor: float) -> "Disturbance":
        """The same kind of transform with every range times ``factor`` (the zoom's on a log scale)."""
        return replace(
            self,
            zoom_ratio=self.zoom_ratio**factor,
            max_rotation=self.max_rotation * factor,
            max_translation=self.max_translation * factor,
        )


@dataclass(frozen=True)
class AffineParams:
    """One drawn transform: rotation in degrees, shift in pixels ``(x, y)``, scale, about the image centre."""

    angle: float
    translate: tuple[float, float]
    scale: float


def draw_params(disturbance: Disturbance, size: tuple[int, int], key: str) -> AffineParams:
    """The transform for ``key`` (e.g. ``"0/test/hole/000.png/2"``) of an image of ``size = (H, W)``."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    log_zoom = abs(np.log(disturbance.zoom_ratio))
    height, width = size
    shift = disturbance.max_translation
    return AffineParams(
        angle=float(rng.uniform(-disturbance.max_rotation, disturbance.max_rotation)),
        translate=(float(rng.uniform(-shift, shift) * width), float(rng.uniform(-shift, shift) * height)),
        scale=float(np.exp(rng.uniform(-log_zoom, log_zoom))),
    )


def disturb(
    image: torch.Tensor,
    mask: torch.Tensor | None,
    params: AffineParams,
    fill: Fill = "mean",
    interpolation: Interpolation = "bicubic",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(C, H, W)`` image and ``(1, H, W)`` mask (or None) under the same affine transform (any dtype).

    The image is resampled with ``interpolation``, the mask with its nearest neighbour.
    ``fill="reflect"`` mirrors the image (and the mask with it: a defect mirrored into view is a
    defect) across its borders before transforming, so no area of flat colour comes in.
    """
    height, width = image.shape[-2:]
    pad = (width // 2, width // 2, height // 2, height // 2) if fill == "reflect" else (0, 0, 0, 0)
    image, mask = _mirrored(image, pad), None if mask is None else _mirrored(mask, pad)
    colour = image.float().mean(dim=(-2, -1)) if fill == "mean" else torch.zeros(image.shape[0])
    crop = (..., slice(pad[2], pad[2] + height), slice(pad[0], pad[0] + width))
    moved = _warp(image, params, interpolation, colour)[crop]
    if mask is None:
        return moved, None
    return moved, _warp(mask, params, "nearest", torch.zeros(1))[crop]


def _warp(image: torch.Tensor, params: AffineParams, mode: str, fill: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` image under ``params`` (torchvision's ``affine`` convention), ``fill`` outside it.

    torchvision resamples tensors only bilinearly; this samples the same grid with any mode of
    ``grid_sample`` (bicubic keeps a texture's fine detail, which bilinear blurs away).
    """
    height, width = image.shape[-2:]
    angle = math.radians(params.angle)
    (shift_x, shift_y), scale = params.translate, params.scale
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale  # output -> input pixel, about the centre
    theta = torch.tensor(
        [
            [cos, sin * height / width, -(cos * shift_x + sin * shift_y) * 2 / width],
            [-sin * width / height, cos, (sin * shift_x - cos * shift_y) * 2 / height],
        ]
    )
    grid = F.affine_grid(theta[None], [1, 1, height, width], align_corners=False).to(image.device)
    covered = torch.ones(1, height, width, device=image.device)
    sampled = F.grid_sample(
        torch.cat([image.float(), covered])[None], grid, mode=mode, padding_mode="zeros", align_corners=False
    )[0]
    values, coverage = sampled[:-1], sampled[-1:].clamp(0, 1)
    fill = fill.to(values).view(-1, 1, 1)
    if mode == "nearest":
        moved = torch.where(coverage < 0.5, fill, values)
    else:
        moved = fill + coverage * (values - fill)
    if image.is_floating_point():
        return moved.to(image.dtype)
    limits = torch.iinfo(image.dtype)
    return moved.round().clamp(limits.min, limits.max).to(image.dtype)


def _mirrored(image: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """``(C, H, W)`` image mirrored across its borders by ``pad`` (left, right, top, bottom) pixels."""
    if not any(pad):
        return image
    return F.pad(image[None].float(), pad, mode="reflect")[0].to(image.dtype)

"""Synthetic defects, with their pixel masks, drawn on held-out normal images for self-validation.

Each defect is drawn from a string key, so the same key draws the same defect wherever and
whenever it runs (a resumed run rebuilds its self-validation set identically). Two families:

- ``perlin``: anomalib's ``PerlinAnomalyGenerator`` (a Perlin-noise region blended with an
  augmented pattern, as anomalib's ``val_split_mode=synthetic`` draws them);
- ``own_surface``: a square piece of the image's own surface, turned and mirrored, put back
  elsewhere: the part's own texture out of place, which no colour statistics give away.

None of this reuses the demo builder's defects (``data.demo``), so the demo stays a measure of
how well a model generalises to defects it was never validated on.
"""

import zlib
from typing import Literal

import torch
from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator

DefectFamily = Literal["perlin", "own_surface"]
FAMILIES: tuple[DefectFamily, ...] = ("perlin", "own_surface")
# Wide ranges, so that a set holds defects from faint to plain: strong ones alone saturate the estimate
# on aligned objects, faint ones alone leave it at chance on textures (docs/self_validation/).
PIECE_SIDE = (0.04, 0.25)  # side of an own-surface piece, as a fraction of the image's shorter side
PERLIN_BLEND = (0.05, 1.0)  # how much of the Perlin pattern replaces the image inside its mask


def draw_defect(image: torch.Tensor, key: str, family: DefectFamily) -> tuple[torch.Tensor, torch.Tensor]:
    """``(3, H, W)`` image in ``[0, 1]`` -> the image with one defect of ``family`` and its ``(1, H, W)``
    binary mask, both drawn from ``key`` (torch's global random state is left as it was).

    Raises:
        ValueError: An unknown family.
    """
    if family not in FAMILIES:
        msg = f"Unknown defect family {family!r}; choose from {list(FAMILIES)}."
        raise ValueError(msg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{family}/{key}".encode()))
        if family == "perlin":
            defective, mask = PerlinAnomalyGenerator(probability=1.0, blend_factor=PERLIN_BLEND)(
                image.float()
            )
        else:
            defective, mask = _own_surface(image.float())
    return defective.clamp(0, 1).to(image.dtype), (mask > 0.5).to(image.dtype)


def _own_surface(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A square piece of ``image`` turned by a quarter, half or three-quarter turn, mirrored at random,
    and pasted at another place that overlaps its source by less than half."""
    height, width = image.shape[-2:]
    low, high = (int(fraction * min(height, width)) for fraction in PIECE_SIDE)
    side = int(torch.randint(max(low, 2), max(high, 3), (1,)))
    for _ in range(20):  # a target far enough from the source (it always exists for side <= 1/4)
        top, left, to_top, to_left = (
            int(torch.randint(0, limit - side + 1, (1,))) for limit in (height, width) * 2
        )
        if abs(top - to_top) > side / 2 or abs(left - to_left) > side / 2:
            break
    piece = image[:, top : top + side, left : left + side].rot90(
        int(torch.randint(1, 4, (1,))), dims=(-2, -1)
    )
    if torch.rand(1) < 0.5:
        piece = piece.flip(-1)
    defective, mask = image.clone(), torch.zeros(1, height, width)
    defective[:, to_top : to_top + side, to_left : to_left + side] = piece
    mask[:, to_top : to_top + side, to_left : to_left + side] = 1
    return defective, mask

"""The paper's training augmentation (Sec. 6.2) as a fixed set of views per training image.

Each training image gets ``num_views`` views: view 0 is the image itself; every other view flips
and rotates it as the paper does (horizontal flip p=0.5, vertical flip p=0.3, rotation p=0.7), drawn
once from a seed of (image path, view). A view is therefore the same in every epoch, which is what
lets the backbone features of each view be cached. Paths count relative to the training images'
common folder, so the same data trains the same way wherever it lives. Rotations are by 90, 180
or 270 degrees, so a view is lossless (no interpolation, no empty corners) and masks stay
pixel-aligned with images.

``affine`` adds to every view but view 0 a small random zoom, rotation and shift (the ranges of
the paper's non-aligned test sets, ``geometry.Disturbance``, scaled; the image mirrored at its
borders, so no flat area comes in): views of the part slightly out of place, for lines where parts
are not perfectly aligned. It is off by default (``FastFlow(affine_views=...)`` turns it on).

Per-category defaults follow the paper's remark that some MVTec AD categories must not be flipped or
rotated (their orientation is part of what is normal, e.g. transistor): see ``SAFE_AUGMENTATIONS``.
"""

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch

from ..errors import InputError
from ..geometry import Disturbance, disturb, draw_params

AugmentationChoice = Literal["auto", "paper", "none"]


@dataclass(frozen=True)
class Augmentation:
    """Probabilities of each transform in a view (0 turns it off).

    Attributes:
        hflip: Horizontal flip probability (paper: 0.5).
        vflip: Vertical flip probability (paper: 0.3).
        rotation: Probability of a rotation by 90, 180 or 270 degrees (paper: 0.7).
        affine: Ranges of a random zoom, rotation and shift as a multiple of ``AFFINE_RANGES``
            (0: none; 0.25: +-3.75 degrees, +-3.75% shift, zoom 0.96-1.04).
    """

    hflip: float = 0.0
    vflip: float = 0.0
    rotation: float = 0.0
    affine: float = 0.0

    @property
    def enabled(self) -> bool:
        """Whether any transform can happen."""
        return max(self.hflip, self.vflip, self.rotation, self.affine) > 0


PAPER_AUGMENTATION = Augmentation(hflip=0.5, vflip=0.3, rotation=0.7)
AFFINE_RANGES = Disturbance(fill="reflect")  # zoom 0.85-1/0.85, rotation +-15 degrees, shift +-15%
NO_AUGMENTATION = Augmentation()

# MVTec AD categories, and what keeps a normal image normal. Textures and top-view objects with no
# preferred orientation take everything; objects whose orientation, side or printing is checked
# (cable order, capsule and pill print, metal_nut "flip" defect, transistor "misplaced") take none
# or only what their normal images already vary in.
SAFE_AUGMENTATIONS: dict[str, Augmentation] = {
    **dict.fromkeys(("carpet", "grid", "leather", "tile", "wood", "bottle", "hazelnut"), PAPER_AUGMENTATION),
    "metal_nut": Augmentation(rotation=0.7),
    "screw": Augmentation(rotation=0.7),
    "toothbrush": Augmentation(hflip=0.5),
    "zipper": Augmentation(hflip=0.5, vflip=0.3),
    **dict.fromkeys(("cable", "capsule", "pill", "transistor"), NO_AUGMENTATION),
    # The bundled demo textures (anomalib_fastflow.data.demo).
    **dict.fromkeys(("brick", "grass", "gravel"), PAPER_AUGMENTATION),
}


def resolve_augmentation(
    choice: AugmentationChoice, category: str | None, affine: float = 0.0
) -> Augmentation:
    """The augmentation for ``choice`` (``auto``: the safe default of ``category``, none if unknown),
    with affine views of ranges ``affine`` times ``AFFINE_RANGES`` (0: none).

    Raises:
        ValueError: ``choice`` is not one of auto, paper or none.
    """
    choices = {"paper": PAPER_AUGMENTATION, "none": NO_AUGMENTATION}
    if choice == "auto":
        return replace(SAFE_AUGMENTATIONS.get(category or "", NO_AUGMENTATION), affine=affine)
    if choice in choices:
        return replace(choices[choice], affine=affine)
    msg = f"augmentation={choice!r} is not one of 'auto', 'paper', 'none'."
    raise InputError(msg)


class TrainingViews:
    """Fixed augmented views of training images, chosen per epoch.

    Args:
        augmentation: Transform probabilities of every view but view 0.
        num_views: Views per image (1 with augmentation off: the image itself).
        seed: Seed mixed into every view's draw.
        root: Folder the image paths are taken relative to (``common_folder`` of the training
            images), so that views do not depend on where the dataset lives; None: paths as given.
    """

    def __init__(
        self, augmentation: Augmentation, num_views: int, seed: int = 0, root: Path | None = None
    ) -> None:
        if num_views < 1:
            msg = f"augmentation_views must be at least 1, got {num_views}."
            raise InputError(msg)
        self.augmentation = augmentation
        self.num_views = num_views if augmentation.enabled else 1
        self.seed = seed
        self.root = root

    def key(self, path: str) -> str:
        """The name an image's views are drawn from: its path relative to ``root``, with ``/``."""
        return path if self.root is None else relative_key(path, self.root)

    def _draw(self, path: str, view: int) -> tuple[bool, bool, int, bool]:
        """(horizontal flip, vertical flip, quarter turns, small affine) of ``view`` of the image."""
        if view == 0:
            return False, False, 0, False
        generator = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}/{self.key(path)}/{view}".encode()))
        draws = torch.rand(4, generator=generator).tolist()
        turns = 1 + int(draws[3] * 3) if draws[2] < self.augmentation.rotation else 0
        affine = self.augmentation.affine > 0
        return draws[0] < self.augmentation.hflip, draws[1] < self.augmentation.vflip, turns, affine

    def views_for_epoch(self, paths: Sequence[str], epoch: int) -> list[int]:
        """The view each image is trained on in ``epoch``: every view once per ``num_views`` epochs."""
        return [(epoch + zlib.crc32(self.key(path).encode())) % self.num_views for path in paths]

    def apply(self, images: torch.Tensor, paths: Sequence[str], views: Sequence[int]) -> torch.Tensor:
        """Views of a batch ``(N, C, H, W)`` (masks ``(N, 1, H, W)`` too: same transform, same pixels)."""
        transformed = []
        for image, path, view in zip(images, paths, views, strict=True):
            hflip, vflip, turns, affine = self._draw(path, view)
            if hflip:
                image = image.flip(-1)
            if vflip:
                image = image.flip(-2)
            if turns and image.shape[-1] != image.shape[-2]:
                turns = 2  # a quarter turn would change a non-square image's shape
            image = image.rot90(turns, dims=(-2, -1))
            if affine:
                key = f"{self.seed}/{self.key(path)}/{view}/affine"
                params = draw_params(
                    AFFINE_RANGES.scaled(self.augmentation.affine), tuple(image.shape[-2:]), key
                )
                image, _ = disturb(image, None, params, "reflect", AFFINE_RANGES.interpolation)
            transformed.append(image)
        return torch.stack(transformed)


def relative_key(path: str, root: Path) -> str:
    """``path`` relative to ``root``, with ``/``: the same name wherever the dataset lives."""
    return Path(os.path.relpath(path, root)).as_posix()


def common_folder(paths: Sequence[str]) -> Path | None:
    """The deepest folder that holds every path (None for no paths)."""
    if not paths:
        return None
    return Path(os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in paths]))

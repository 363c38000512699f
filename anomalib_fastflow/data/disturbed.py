"""Non-aligned test sets (paper Sec. 8): each test image, and its mask, under random zoom, rotation and shift.

The paper disturbs the test images of MVTec AD with a random zoom in or out by a ratio of 0.85,
a rotation within +-15 degrees and a translation within 0.15 of the image size, and expands the
test set 4x. ``write_disturbed_copy`` writes such a copy of any MVTec-AD-layout dataset (MVTec AD,
BTAD, VisA in MVTec layout, a Folder dataset laid out that way, our demo) so that any anomalib
model can be tested on it with ``anomalib test --data MVTec --data.root <copy>``:

    <output>/<category>/train/...                         copied unchanged (training is never disturbed)
    <output>/<category>/test/<defect>/<stem>_d<k>.png     k = 0 .. copies - 1
    <output>/<category>/ground_truth/<defect>/<stem>_d<k>_mask.png   (MVTec AD's mask names)
    <output>/<category>/ground_truth/<defect>/<stem>_d<k>.png        (BTAD's, where the source has them)

Normal test images are those in ``good`` (MVTec AD) or ``ok`` (BTAD); a test folder with a
``ground_truth`` folder of the same name must have a mask for each image. Image and mask get the
same affine transform (bicubic for the image, nearest neighbour for the mask, which stays
binary); a defective image's transform is drawn again while its whole defect would leave the
view. The area a transform brings in from outside the image is filled with the image's mean
colour and never marked defective (or black, ``fill="black"``; or the image mirrored across its
borders, ``fill="reflect"``, the mask mirrored with it); good images stay good. Each copy's
transform is drawn from ``(seed, the image's path relative to the dataset, k)``: the same seed
writes the same files.
"""

import math
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torchvision.transforms.v2.functional import pil_to_tensor

Fill = Literal["mean", "black", "reflect"]
Interpolation = Literal["bicubic", "bilinear"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NORMAL_FOLDERS = ("good", "ok")  # MVTec AD's and BTAD's normal test images
DRAWS_IN_VIEW = 100  # transforms tried per defective copy before a defect always out of view is an error


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


def _mask_path(root: Path, image: Path) -> Path | None:
    """The ground-truth mask of a defective test image (``<stem>_mask.<ext>`` or ``<stem>.<ext>``), if any."""
    folder = root / "ground_truth" / image.parent.name
    for candidate in sorted(folder.glob(f"{image.stem}*")) if folder.is_dir() else []:
        if candidate.stem in (f"{image.stem}_mask", image.stem):
            return candidate
    return None


def write_disturbed_copy(
    root: Path,
    output: Path,
    categories: Sequence[str],
    copies: int = 4,
    seed: int = 0,
    disturbance: Disturbance = Disturbance(),
) -> dict[str, int]:
    """Write the disturbed copy of ``categories`` under ``output``; return test images written per category.

    Raises:
        FileNotFoundError: A category has no ``test`` folder under ``root``.
        ValueError: ``copies`` is below 1, or a defective test image has no mask (naming it).
    """
    if copies < 1:
        msg = f"copies={copies}: write at least one disturbed copy of each test image."
        raise ValueError(msg)
    written = {}
    for category in categories:
        source, target = Path(root) / category, Path(output) / category
        test_folder = source / "test"
        if not test_folder.is_dir():
            msg = f"No test folder at {test_folder}: give the root of an MVTec-AD-layout dataset."
            raise FileNotFoundError(msg)
        if target.exists():
            shutil.rmtree(target)
        if (source / "train").is_dir():
            shutil.copytree(source / "train", target / "train")
        images = sorted(path for path in test_folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
        for path in images:
            written[category] = written.get(category, 0) + copies
            _write_copies(source, target, path, copies, seed, disturbance)
    return written


def _write_copies(
    source: Path, target: Path, path: Path, copies: int, seed: int, disturbance: Disturbance
) -> None:
    """Write ``copies`` disturbed versions of one test image (and of its mask, for a defective one)."""
    defect = path.parent.name
    has_masks = defect not in NORMAL_FOLDERS and (source / "ground_truth" / defect).is_dir()
    mask_file = _mask_path(source, path) if has_masks else None
    if has_masks and mask_file is None:
        msg = f"{path} is a defective test image without a mask in {source / 'ground_truth' / defect}."
        raise ValueError(msg)
    image = pil_to_tensor(Image.open(path).convert("RGB"))
    mask = pil_to_tensor(Image.open(mask_file).convert("L")) if mask_file else None
    if mask is not None:
        mask = (mask > 0).to(torch.uint8) * 255
    relative = path.relative_to(source).as_posix()
    for copy in range(copies):
        moved, moved_mask = _copy_in_view(image, mask, disturbance, f"{seed}/{relative}/{copy}", path)
        name = f"{path.stem}_d{copy}"
        _save(moved, target / "test" / defect / f"{name}.png")
        if moved_mask is not None:
            mask_suffix = mask_file.stem.removeprefix(path.stem)  # "_mask" (MVTec AD) or "" (BTAD)
            _save(moved_mask, target / "ground_truth" / defect / f"{name}{mask_suffix}.png")


def _copy_in_view(
    image: torch.Tensor, mask: torch.Tensor | None, disturbance: Disturbance, key: str, path: Path
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The disturbed copy drawn from ``key``; for a defective image, drawn again (``key/1``, ``key/2``,
    ...) while its whole defect would leave the view, so that no copy labelled defective shows none.

    Raises:
        ValueError: None of ``DRAWS_IN_VIEW`` transforms keeps any of the defect of ``path`` in view.
    """
    size, has_defect = tuple(image.shape[-2:]), mask is not None and bool(mask.any())
    for attempt in range(DRAWS_IN_VIEW):
        params = draw_params(disturbance, size, key if attempt == 0 else f"{key}/{attempt}")
        moved, moved_mask = disturb(image, mask, params, disturbance.fill, disturbance.interpolation)
        if not has_defect or moved_mask.any():
            return moved, moved_mask
    msg = f"{path}: none of {DRAWS_IN_VIEW} random transforms keeps any of its defect in view."
    raise ValueError(msg)


def _save(image: torch.Tensor, path: Path) -> None:
    """Write a ``(C, H, W)`` uint8 image (C = 3 or 1) as PNG, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = image.permute(1, 2, 0).numpy()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)

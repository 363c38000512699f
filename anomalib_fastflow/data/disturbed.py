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

import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor

from ..errors import InputError, MissingInputError, require_at_least
from ..geometry import Disturbance, disturb, draw_params
from .checks import check_image_files

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NORMAL_FOLDERS = ("good", "ok")  # MVTec AD's and BTAD's normal test images
DRAWS_IN_VIEW = 100  # transforms tried per defective copy before a defect always out of view is an error


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
    """Write a non-aligned copy of an MVTec-AD-layout dataset: the paper's disturbed test sets (Sec. 8).

    Each test image (and its mask) is written ``copies`` times under a random zoom (ratio 0.85),
    rotation (+-15 degrees) and translation (+-0.15 of the size); training images are copied
    unchanged. Test any anomalib model on it with ``anomalib test ... --data MVTec --data.root
    <output> --data.category <category>``. Every argument is checked before anything is written,
    and the source is never written to.

    Args:
        root: Dataset root in MVTec AD layout (``<root>/<category>/test/<defect>/...``).
        output: Root of the disturbed copy (its categories are replaced); not ``root`` nor inside it.
        categories: Categories to copy.
        copies: Disturbed copies per test image (the paper: 4).
        seed: Seed of the transforms; the same seed writes the same files.
        disturbance: Ranges, fill and resampling, e.g. ``--disturbance.max_rotation 10
            --disturbance.fill reflect --disturbance.interpolation bilinear``.

    Returns:
        Test images written per category.

    Raises:
        MissingInputError: A category has no ``test`` folder under ``root``.
        InputError: ``copies`` is below 1, ``output`` is ``root``, inside it or holds it, or a
            defective test image has no mask (naming it).
    """
    require_at_least("copies", copies, 1, "the disturbed copies of each test image")
    source_root, output_root = Path(root).resolve(), Path(output).resolve()
    if output_root == source_root or source_root in output_root.parents or output_root in source_root.parents:
        msg = (
            f"output={output} and root={root}: the disturbed copy replaces its categories under output, "
            "so output must be a folder outside the source dataset (and not one that holds it)."
        )
        raise InputError(msg)
    plan = {category: _test_images(Path(root) / category) for category in categories}
    written = {}
    for category, images in plan.items():
        source, target = Path(root) / category, Path(output) / category
        if target.exists():
            shutil.rmtree(target)
        if (source / "train").is_dir():
            shutil.copytree(source / "train", target / "train")
        for path, mask_file in images:
            written[category] = written.get(category, 0) + copies
            _write_copies(source, target, path, mask_file, copies, seed, disturbance)
    return written


def _test_images(source: Path) -> list[tuple[Path, Path | None]]:
    """Every test image of the category at ``source`` with its mask (None for a normal one), each
    image and mask checked, before anything is written.

    Raises:
        MissingInputError: No ``test`` folder.
        InputError: A defective test image without a mask where its defect has masks, or an
            image or mask that cannot be read faithfully.
    """
    test_folder = source / "test"
    if not test_folder.is_dir():
        msg = f"No test folder at {test_folder}: give the root of an MVTec-AD-layout dataset."
        raise MissingInputError(msg)
    images = []
    for path in sorted(path for path in test_folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES):
        defect = path.parent.name
        has_masks = defect not in NORMAL_FOLDERS and (source / "ground_truth" / defect).is_dir()
        mask_file = _mask_path(source, path) if has_masks else None
        if has_masks and mask_file is None:
            msg = f"{path} is a defective test image without a mask in {source / 'ground_truth' / defect}."
            raise InputError(msg)
        images.append((path, mask_file))
    check_image_files(file for image in images for file in image if file is not None)
    return images


def _write_copies(
    source: Path,
    target: Path,
    path: Path,
    mask_file: Path | None,
    copies: int,
    seed: int,
    disturbance: Disturbance,
) -> None:
    """Write ``copies`` disturbed versions of one test image (and of its mask, for a defective one)."""
    defect = path.parent.name
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

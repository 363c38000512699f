"""A small, deterministic demo dataset in MVTec AD layout, made from scikit-image's photographs.

Each category is one real texture photograph (brick, grass, gravel), cut into random crops.
Test images carry synthetic defects with pixel-exact masks::

    root/<category>/train/good/000.png
    root/<category>/test/good/000.png
    root/<category>/test/<defect>/000.png
    root/<category>/ground_truth/<defect>/000_mask.png

Defect kinds: ``scratch`` (a bright or dark stroke), ``stain`` (a tinted blot), ``hole`` (a dark
ellipse with soft edges) and ``foreign`` (a patch of another texture pasted in).
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata
from skimage import draw, filters

TEXTURES: dict[str, Callable[[], np.ndarray]] = {
    "brick": skdata.brick,
    "grass": skdata.grass,
    "gravel": skdata.gravel,
}
DEFECTS = ("scratch", "stain", "hole", "foreign")


def _rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` uint8 -> ``(H, W, 3)`` float32 in ``[0, 1]``."""
    image = image.astype(np.float32) / 255.0
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image[..., :3]


def _crop(source: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``size x size`` crop, randomly flipped and rotated by a multiple of 90 degrees."""
    top, left = rng.integers(0, source.shape[0] - size + 1), rng.integers(0, source.shape[1] - size + 1)
    crop = source[top : top + size, left : left + size]
    crop = np.rot90(crop, k=int(rng.integers(4)))
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def _ellipse_mask(size: int, rng: np.random.Generator, radius: tuple[float, float]) -> np.ndarray:
    """A random filled ellipse, ``(size, size)`` bool, kept away from the border."""
    mask = np.zeros((size, size), dtype=bool)
    r_row, r_col = rng.uniform(*radius, size=2) * size
    center = rng.uniform(0.25, 0.75, size=2) * size
    rows, cols = draw.ellipse(center[0], center[1], r_row, r_col, shape=mask.shape, rotation=rng.uniform(0, np.pi))
    mask[rows, cols] = True
    return mask


def _add_defect(
    image: np.ndarray, kind: str, rng: np.random.Generator, other: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one defect of ``kind`` into ``image`` ``(S, S, 3)``; return the image and its bool mask."""
    size = image.shape[0]
    if kind == "scratch":
        mask = np.zeros((size, size), dtype=bool)
        points = rng.uniform(0.15, 0.85, size=(3, 2)) * size
        for (r0, c0), (r1, c1) in zip(points[:-1], points[1:]):
            rows, cols = draw.line(int(r0), int(c0), int(r1), int(c1))
            mask[rows, cols] = True
        mask = filters.gaussian(mask.astype(float), sigma=1.2) > 0.15
        alpha = mask[..., None].astype(np.float32)
        value = 0.95 if rng.random() < 0.5 else 0.05
        return image * (1 - alpha) + value * alpha, mask
    if kind == "stain":
        mask = _ellipse_mask(size, rng, (0.06, 0.14))
        alpha = filters.gaussian(mask.astype(float), sigma=2.0)[..., None] * 0.8
        tint = np.array(rng.choice([(0.55, 0.25, 0.1), (0.2, 0.35, 0.6), (0.6, 0.5, 0.1)]), dtype=np.float32)
        return image * (1 - alpha) + tint * image.mean() * 2 * alpha, mask
    if kind == "hole":
        mask = _ellipse_mask(size, rng, (0.05, 0.11))
        alpha = filters.gaussian(mask.astype(float), sigma=1.5)[..., None]
        return image * (1 - 0.9 * alpha), mask
    if kind == "foreign":
        mask = _ellipse_mask(size, rng, (0.08, 0.15))
        alpha = mask[..., None].astype(np.float32)
        return image * (1 - alpha) + other * alpha, mask
    msg = f"Unknown defect kind {kind!r}; choose from {DEFECTS}."
    raise ValueError(msg)


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)).save(path)


def build_demo_dataset(
    root: str | Path,
    categories: Sequence[str] = tuple(TEXTURES),
    image_size: int = 160,
    num_train: int = 40,
    num_test_good: int = 12,
    num_test_per_defect: int = 6,
    seed: int = 0,
) -> Path:
    """Write the demo dataset under ``root`` (MVTec AD layout) and return ``root``.

    A category's files depend only on the category, the sizes and ``seed``: built alone or with
    the others, it is the same. Existing files are overwritten.

    Raises:
        ValueError: An unknown category.
    """
    root = Path(root)
    unknown = sorted(set(categories) - set(TEXTURES))
    if unknown:
        msg = f"Unknown demo categories {unknown}; choose from {sorted(TEXTURES)}."
        raise ValueError(msg)
    for category in categories:
        rng = np.random.default_rng([seed, list(TEXTURES).index(category)])
        source = _rgb(TEXTURES[category]())
        others = [_rgb(TEXTURES[name]()) for name in TEXTURES if name != category]
        folder = root / category
        for i in range(num_train):
            _save(_crop(source, image_size, rng), folder / "train" / "good" / f"{i:03d}.png")
        for i in range(num_test_good):
            _save(_crop(source, image_size, rng), folder / "test" / "good" / f"{i:03d}.png")
        for kind in DEFECTS:
            for i in range(num_test_per_defect):
                other = _crop(others[i % len(others)], image_size, rng)
                image, mask = _add_defect(_crop(source, image_size, rng), kind, rng, other)
                _save(image, folder / "test" / kind / f"{i:03d}.png")
                _save(mask.astype(np.float32), folder / "ground_truth" / kind / f"{i:03d}_mask.png")
    return root

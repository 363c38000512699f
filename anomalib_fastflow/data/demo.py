"""A small, deterministic demo dataset in MVTec AD layout, made from scikit-image's photographs.

Texture categories (brick, grass, gravel) are random crops of one texture photograph, flipped and
rotated at random. Object categories (cup, retina) are one photograph of an object, aligned as on
a production line: every sample is the whole object with a small pose jitter (rotation +-3
degrees, scale +-3%, shift +-3%), a light jitter (gain +-6%, colour cast +-2%) and sensor noise.
Test images carry synthetic defects with pixel-exact masks::

    root/<category>/train/good/000.png
    root/<category>/test/good/000.png
    root/<category>/test/<defect>/000.png
    root/<category>/ground_truth/<defect>/000_mask.png

Texture defects (``TEXTURE_DEFECTS``): ``scratch`` (a bright or dark stroke), ``stain`` (a tinted
blot), ``hole`` (a dark ellipse with soft edges) and ``foreign`` (a patch of another texture).
Object defects (``OBJECT_DEFECTS``) are subtler: ``scratch`` (a faint stroke), ``misplaced`` (a
piece of the object's own surface from elsewhere), ``missing`` (a part showing the background)
and ``tint`` (a small, faint discolouration).

The production-line parts (``data.line``: drawn parts with pose, light and camera nuisance and
defect kinds of their own) are demo categories too: ``build_demo_categories`` writes any of
``ALL_CATEGORIES`` with each set's own defaults.
"""

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from skimage import data as skdata
from skimage import draw, filters, transform

from . import line
from .arrays import require_known, write_category

TEXTURES: dict[str, Callable[[], np.ndarray]] = {
    "brick": skdata.brick,
    "grass": skdata.grass,
    "gravel": skdata.gravel,
}
OBJECTS: dict[str, Callable[[], np.ndarray]] = {
    "cup": lambda: skdata.coffee()[:, 20:420],  # an espresso cup on its saucer, seen from above
    "retina": skdata.retina,  # a fundus photograph: a bright disc on black
}
CATEGORIES = (*TEXTURES, *OBJECTS)
ALL_CATEGORIES = (*CATEGORIES, *line.CATEGORIES)
TEXTURE_DEFECTS = ("scratch", "stain", "hole", "foreign")
OBJECT_DEFECTS = ("scratch", "misplaced", "missing", "tint")


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
    rows, cols = draw.ellipse(
        center[0], center[1], r_row, r_col, shape=mask.shape, rotation=rng.uniform(0, np.pi)
    )
    mask[rows, cols] = True
    return mask


def _stroke_mask(size: int, points: np.ndarray, width: float) -> np.ndarray:
    """A polyline through ``points`` ``(K, 2)`` (row, column), ``width`` thick: ``(size, size)`` bool."""
    mask = np.zeros((size, size), dtype=bool)
    for (r0, c0), (r1, c1) in itertools.pairwise(points):
        rows, cols = draw.line(int(r0), int(c0), int(r1), int(c1))
        mask[rows, cols] = True
    return filters.gaussian(mask.astype(float), sigma=width) > 0.15


def _add_defect(
    image: np.ndarray, kind: str, rng: np.random.Generator, other: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one defect of ``kind`` into ``image`` ``(S, S, 3)``; return the image and its bool mask."""
    size = image.shape[0]
    if kind == "scratch":
        mask = _stroke_mask(size, rng.uniform(0.15, 0.85, size=(3, 2)) * size, width=1.2)
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
    msg = f"Unknown texture defect kind {kind!r}; choose from {TEXTURE_DEFECTS}."
    raise ValueError(msg)


def _pose(source: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The object ``source`` ``(S, S, 3)`` at ``size``, with a small pose and light jitter."""
    center = np.array([size, size]) / 2
    jitter = transform.SimilarityTransform(
        scale=rng.uniform(0.97, 1.03),
        rotation=np.deg2rad(rng.uniform(-3, 3)),
        translation=rng.uniform(-0.03, 0.03, size=2) * size,
    )
    around_center = transform.SimilarityTransform(translation=-center) + jitter
    around_center += transform.SimilarityTransform(translation=center)
    image = transform.warp(source, around_center.inverse, mode="edge").astype(np.float32)
    light = rng.uniform(0.94, 1.06) * rng.uniform(0.98, 1.02, size=3).astype(np.float32)
    noise = rng.normal(0, 0.01, size=image.shape).astype(np.float32)
    return np.clip(image * light + noise, 0, 1)


def _add_object_defect(
    image: np.ndarray, kind: str, rng: np.random.Generator, background: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one subtle defect of ``kind`` into the object ``image`` ``(S, S, 3)``; return it and its mask."""
    size = image.shape[0]
    if kind == "scratch":
        mask = _stroke_mask(size, rng.uniform(0.3, 0.7, size=(2, 2)) * size, width=0.8)
        alpha = mask[..., None].astype(np.float32) * 0.6
        shade = 0.3 if rng.random() < 0.5 else -0.3
        return np.clip(image + shade * alpha, 0, 1), mask
    if kind == "misplaced":
        mask = _ellipse_mask(size, rng, (0.06, 0.11))
        offset = (rng.uniform(0.15, 0.3, size=2) * size * rng.choice([-1, 1], size=2)).astype(int)
        piece = np.roll(image, tuple(offset), axis=(0, 1))
        alpha = mask[..., None].astype(np.float32)
        return image * (1 - alpha) + piece * alpha, mask
    if kind == "missing":
        mask = _ellipse_mask(size, rng, (0.05, 0.09))
        alpha = filters.gaussian(mask.astype(float), sigma=1.0)[..., None].astype(np.float32)
        return image * (1 - alpha) + background * alpha, mask
    if kind == "tint":
        mask = _ellipse_mask(size, rng, (0.06, 0.11))
        alpha = filters.gaussian(mask.astype(float), sigma=2.0)[..., None].astype(np.float32) * 0.5
        tint = np.array(rng.choice([(1.3, 0.85, 0.8), (0.8, 1.0, 1.3), (1.2, 1.2, 0.7)]), dtype=np.float32)
        return np.clip(image * (1 - alpha + tint * alpha), 0, 1), mask
    msg = f"Unknown object defect kind {kind!r}; choose from {OBJECT_DEFECTS}."
    raise ValueError(msg)


def defect_kinds(category: str) -> tuple[str, ...]:
    """The defect kinds of a demo category's test split."""
    return OBJECT_DEFECTS if category in OBJECTS else TEXTURE_DEFECTS


Sampler = tuple[Callable[[], np.ndarray], Callable[[str, int], tuple[np.ndarray, np.ndarray]]]


def _texture_sampler(category: str, size: int, rng: np.random.Generator) -> Sampler:
    """A normal sample ``() -> (S, S, 3)`` and a defective one ``(kind, index) -> (image, mask)``."""
    source = _rgb(TEXTURES[category]())
    others = [_rgb(TEXTURES[name]()) for name in TEXTURES if name != category]

    def defective(kind: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        other = _crop(others[index % len(others)], size, rng)
        return _add_defect(_crop(source, size, rng), kind, rng, other)

    return lambda: _crop(source, size, rng), defective


def _object_sampler(category: str, size: int, rng: np.random.Generator) -> Sampler:
    """As ``_texture_sampler``, for an object: the whole photograph, posed and lit anew each time."""
    photo = _rgb(OBJECTS[category]())
    side = min(photo.shape[:2])
    source = transform.resize(photo[:side, :side], (size, size), anti_aliasing=True).astype(np.float32)
    border = np.concatenate([source[0], source[-1], source[:, 0], source[:, -1]])
    background = np.median(border, axis=0).astype(np.float32)

    def defective(kind: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        del index
        return _add_object_defect(_pose(source, size, rng), kind, rng, background)

    return lambda: _pose(source, size, rng), defective


def build_demo_dataset(
    root: str | Path,
    categories: Sequence[str] = CATEGORIES,
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
        InputError: An unknown category.
    """
    root = Path(root)
    require_known(categories, CATEGORIES, "demo categories")
    for category in categories:
        rng = np.random.default_rng([seed, CATEGORIES.index(category)])
        make_sampler = _object_sampler if category in OBJECTS else _texture_sampler
        normal, defective = make_sampler(category, image_size, rng)
        kinds = defect_kinds(category)
        write_category(
            root / category, normal, defective, kinds, num_train, num_test_good, num_test_per_defect
        )
    return root


def build_demo_categories(
    root: Path = Path("datasets/demo"), categories: Sequence[str] = ALL_CATEGORIES, seed: int = 0
) -> Path:
    """Write the demo dataset (MVTec AD layout) under ``root`` and return ``root``.

    Any demo categories, aligned (``CATEGORIES``) or production-line (``line.CATEGORIES``), each set
    with its own default sizes.

    Args:
        root: Dataset root.
        categories: The aligned textures and objects (``brick``, ``grass``, ``gravel``, ``cup``,
            ``retina``) and the production-line parts with pose and light nuisance (``gear``,
            ``nut``, ``label``, ``board``); all by default.
        seed: Seed of every image drawn.

    Returns:
        ``root``.

    Raises:
        InputError: An unknown category.
    """
    require_known(categories, ALL_CATEGORIES, "demo categories")
    aligned = [category for category in categories if category in CATEGORIES]
    parts = [category for category in categories if category in line.CATEGORIES]
    if aligned:
        build_demo_dataset(root, aligned, seed=seed)
    if parts:
        line.build_line_dataset(root, parts, seed=seed)
    return Path(root)

"""Procedurally drawn parts as a fixed camera on a production line sees them: a nuisance dataset.

The demo's objects are photographs posed almost exactly; parts placed by hand under a fixed camera
are not. Each category here is one drawn part (``PARTS``: a spur ``gear``, a brass hex ``nut``, a
printed ``label`` on cardboard, a circuit ``board``), the same design in every sample, seen with
the nuisance of a real line (``Nuisance``): rotation up to 4 degrees, scale up to 4%, shift up to
8 px at 256 px, a light gradient across the image, gain and colour cast, slight focus blur, sensor
noise, and a faint surface texture of its own in every sample. Few training images (32 by
default). The layout is MVTec AD's, as the demo's::

    root/<category>/train/good/000.png
    root/<category>/test/good/000.png
    root/<category>/test/<defect>/000.png
    root/<category>/ground_truth/<defect>/000_mask.png

Defects (``DEFECTS``) are drawn on the part, after its pose and before the light and the camera
(so they are lit, blurred and noisy like the rest; the masks of the soft ones, ``smudge`` and
``dent``, cover their core and leave out the faint edge, as a person annotating would): ``crack``
(a 1 px branching hairline), ``speck`` (a cluster of tiny dots), ``smudge`` (a faint elongated
oily haze), ``fibre`` (a short curved hair or lint), ``dent`` (a local warp of the part's own
edges) and ``discolour`` (a faint soft change of hue). None of them is the demo's (``data.demo``)
or the self-validation's (``training.synthetic_defects``): a model that tunes itself on either meets these unseen.

The parts are drawn in ``line_parts``, the defects in ``line_defects`` (one function per kind);
this module poses them, lights them, and writes the dataset.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import transform

from .arrays import require_known, write_category
from .line_defects import DEFECTS, add_defect
from .line_parts import CANVAS_SCALE, CATEGORIES, PARTS, Part

__all__ = ["CATEGORIES", "DEFECTS", "PARTS", "Nuisance", "Part", "add_defect", "build_line_dataset"]


@dataclass(frozen=True)
class Nuisance:
    """How far a part's pose, light and camera vary between samples (sizes in pixels at 256 px).

    Attributes:
        max_rotation: Rotation, degrees either way.
        max_scale: Relative scale change either way.
        max_shift: Shift along each axis, pixels at 256 px (scaled with the image size).
        max_gradient: Light falling off across the image: gain from ``1 - g`` to ``1 + g``.
        max_gain: Overall gain, relative, either way.
        max_cast: Per-channel colour cast, relative, either way.
        max_blur: Focus blur, Gaussian sigma in pixels at 256 px (drawn from 0 up).
        noise: Sensor noise, standard deviation range (of ``[0, 1]`` values).
        texture: Amplitude of each sample's own faint surface texture.
    """

    max_rotation: float = 4.0
    max_scale: float = 0.04
    max_shift: float = 8.0
    max_gradient: float = 0.12
    max_gain: float = 0.08
    max_cast: float = 0.03
    max_blur: float = 1.0
    noise: tuple[float, float] = (0.005, 0.02)
    texture: float = 0.03


def _pose(
    part: Part, size: int, nuisance: Nuisance, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The part placed by hand: ``(size, size, 3)`` image and part mask, rotated, scaled and shifted."""
    canvas = part.image.shape[0]
    pixel = size / 256
    center = np.array([canvas, canvas]) / 2
    jitter = transform.SimilarityTransform(
        scale=(size / canvas) * (1 + rng.uniform(-nuisance.max_scale, nuisance.max_scale)),
        rotation=np.deg2rad(rng.uniform(-nuisance.max_rotation, nuisance.max_rotation)),
    )
    placement = transform.SimilarityTransform(translation=-center) + jitter
    placement += transform.SimilarityTransform(
        translation=np.array([size, size]) / 2 + rng.uniform(-1, 1, size=2) * nuisance.max_shift * pixel
    )
    image = transform.warp(part.image, placement.inverse, output_shape=(size, size), order=1, mode="edge")
    mask = (
        transform.warp(part.mask.astype(np.float32), placement.inverse, output_shape=(size, size), order=1)
        > 0.5
    )
    return image.astype(np.float32), mask


def _camera(image: np.ndarray, nuisance: Nuisance, rng: np.random.Generator) -> np.ndarray:
    """Light (gradient, gain, cast), focus blur and sensor noise on a posed image ``(S, S, 3)``."""
    size = image.shape[0]
    pixel = size / 256
    direction = rng.uniform(0, 2 * np.pi)
    rows, cols = (np.mgrid[:size, :size] - (size - 1) / 2) / size
    ramp = 1 + rng.uniform(-1, 1) * nuisance.max_gradient * 2 * (
        rows * np.sin(direction) + cols * np.cos(direction)
    )
    light = (1 + rng.uniform(-nuisance.max_gain, nuisance.max_gain)) * (
        1 + rng.uniform(-nuisance.max_cast, nuisance.max_cast, size=3)
    )
    image = image * ramp[..., None] * light
    sigma = rng.uniform(0, nuisance.max_blur) * pixel
    if sigma > 0.05:
        image = ndimage.gaussian_filter(image, (sigma, sigma, 0))
    image = image + rng.normal(0, rng.uniform(*nuisance.noise), size=image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def _surface(
    image: np.ndarray, part_mask: np.ndarray, amplitude: float, rng: np.random.Generator
) -> np.ndarray:
    """Each sample's own faint surface texture on the part (smooth multiplicative noise)."""
    texture = ndimage.gaussian_filter(rng.normal(0, 1, part_mask.shape), 2.5 * image.shape[0] / 256)
    texture *= amplitude / (texture.std() + 1e-8)
    return image * (1 + texture * part_mask)[..., None]


def build_line_dataset(
    root: str | Path,
    categories: Sequence[str] = CATEGORIES,
    image_size: int = 256,
    num_train: int = 32,
    num_test_good: int = 16,
    num_test_per_defect: int = 4,
    seed: int = 0,
    nuisance: Nuisance = Nuisance(),
) -> Path:
    """Write the production-line parts under ``root`` (MVTec AD layout) and return ``root``.

    A category's files depend only on the category, the sizes, the nuisance and ``seed``: built
    alone or with the others, it is the same. Existing files are overwritten.

    Raises:
        InputError: An unknown category.
    """
    root = Path(root)
    require_known(categories, CATEGORIES, "production-line categories")
    for category in categories:
        design = PARTS[category](
            CANVAS_SCALE * image_size, np.random.default_rng([seed, 1000 + CATEGORIES.index(category)])
        )
        design = Part(
            ndimage.gaussian_filter(design.image, (CANVAS_SCALE / 2, CANVAS_SCALE / 2, 0)), design.mask
        )
        rng = np.random.default_rng([seed, 2000 + CATEGORIES.index(category)])

        def normal() -> np.ndarray:
            image, part_mask = _pose(design, image_size, nuisance, rng)
            return _camera(_surface(image, part_mask, nuisance.texture, rng), nuisance, rng)

        def defective(kind: str, index: int) -> tuple[np.ndarray, np.ndarray]:
            del index
            image, part_mask = _pose(design, image_size, nuisance, rng)
            image, defect = add_defect(
                _surface(image, part_mask, nuisance.texture, rng), part_mask, kind, rng
            )
            return _camera(image, nuisance, rng), defect

        write_category(
            root / category, normal, defective, DEFECTS, num_train, num_test_good, num_test_per_defect
        )
    return root

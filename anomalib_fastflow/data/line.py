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
"""

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import draw, transform

from .arrays import write_category

DEFECTS = ("crack", "speck", "smudge", "fibre", "dent", "discolour")
CANVAS_SCALE = 2  # parts are drawn at twice the output size, then posed and shrunk (anti-aliased)


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


@dataclass(frozen=True)
class Part:
    """A drawn part: ``image`` ``(C, C, 3)`` in ``[0, 1]`` and where the part is, ``mask`` ``(C, C)`` bool."""

    image: np.ndarray
    mask: np.ndarray


def _polygon(
    canvas: np.ndarray, mask: np.ndarray | None, points: np.ndarray, colour: Sequence[float]
) -> None:
    """Fill the polygon ``points`` ``(K, 2)`` (row, column) in ``canvas``, and in ``mask`` if given."""
    rows, cols = draw.polygon(points[:, 0], points[:, 1], shape=canvas.shape[:2])
    canvas[rows, cols] = colour
    if mask is not None:
        mask[rows, cols] = True


def _disk(
    canvas: np.ndarray,
    mask: np.ndarray | None,
    center: Sequence[float],
    radius: float,
    colour: Sequence[float],
    value: bool = True,
) -> None:
    """Fill a disk in ``canvas``; set it to ``value`` in ``mask`` if given."""
    rows, cols = draw.disk(tuple(center), radius, shape=canvas.shape[:2])
    canvas[rows, cols] = colour
    if mask is not None:
        mask[rows, cols] = value


def _polar(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle of every pixel of a ``(size, size)`` canvas around its centre."""
    rows, cols = np.mgrid[:size, :size] - (size - 1) / 2
    return np.hypot(rows, cols), np.arctan2(rows, cols)


def draw_gear(size: int, rng: np.random.Generator) -> Part:
    """A machined steel spur gear (teeth, hub, bore with keyway, lightening holes) on a dark belt."""
    canvas = np.empty((size, size, 3), np.float32)
    canvas[:] = (0.16, 0.2, 0.27)
    mask = np.zeros((size, size), bool)
    teeth, outer, root = 18, 0.4 * size, 0.34 * size
    angles = np.linspace(0, 2 * np.pi, 4 * teeth, endpoint=False) + rng.uniform(0, np.pi / teeth)
    radii = np.tile([root, outer, outer, root], teeth)
    center = (size - 1) / 2
    points = np.stack([center + radii * np.sin(angles), center + radii * np.cos(angles)], axis=1)
    _polygon(canvas, mask, points, (0.6, 0.62, 0.64))
    radius, angle = _polar(size)
    shading = 1 + 0.05 * np.sin(radius / size * 140) + 0.1 * np.cos(angle - 0.8)  # lathe rings, light
    canvas[mask] *= shading[mask, None]
    _disk(canvas, None, (center, center), 0.17 * size, (0.7, 0.71, 0.72))
    for k in range(5):
        theta = 2 * np.pi * k / 5
        _disk(
            canvas,
            mask,
            (center + 0.25 * size * np.sin(theta), center + 0.25 * size * np.cos(theta)),
            0.045 * size,
            (0.16, 0.2, 0.27),
            value=False,
        )
    _disk(canvas, mask, (center, center), 0.08 * size, (0.16, 0.2, 0.27), value=False)
    key = np.array(
        [
            [center - 0.1 * size, center - 0.02 * size],
            [center - 0.1 * size, center + 0.02 * size],
            [center - 0.07 * size, center + 0.02 * size],
            [center - 0.07 * size, center - 0.02 * size],
        ]
    )
    _polygon(canvas, None, key, (0.16, 0.2, 0.27))
    return Part(np.clip(canvas, 0, 1), mask)


def draw_nut(size: int, rng: np.random.Generator) -> Part:
    """A brass hex nut seen from above: chamfer ring, threaded bore, on a matte grey plate."""
    canvas = np.empty((size, size, 3), np.float32)
    canvas[:] = (0.74, 0.74, 0.72)
    mask = np.zeros((size, size), bool)
    center = (size - 1) / 2
    angles = np.arange(6) * np.pi / 3 + rng.uniform(0, np.pi / 3)
    hexagon = np.stack([center + 0.38 * size * np.sin(angles), center + 0.38 * size * np.cos(angles)], axis=1)
    _polygon(canvas, mask, hexagon, (0.7, 0.55, 0.27))
    radius, angle = _polar(size)
    facets = 1 + 0.12 * np.cos(3 * (angle - angles[0])) * (radius > 0.33 * size)  # lit hexagon facets
    canvas[mask] *= facets[mask, None]
    chamfer = (radius < 0.33 * size) & (radius > 0.3 * size)
    canvas[chamfer] = (0.82, 0.68, 0.36)
    bore = radius < 0.19 * size
    threads = 0.12 + 0.1 * (np.sin(radius / size * 2 * np.pi * 60) > 0)
    canvas[bore] = np.stack([threads[bore]] * 3, axis=1) * (1.0, 0.9, 0.7)
    mask[radius < 0.13 * size] = False
    canvas[radius < 0.13 * size] = (0.05, 0.05, 0.05)
    return Part(np.clip(canvas, 0, 1), mask)


def draw_label(size: int, rng: np.random.Generator) -> Part:
    """A printed label on a cardboard box: red band, lines of print, a barcode and a logo."""
    canvas = np.empty((size, size, 3), np.float32)
    fibres = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), (0.6, 6))
    canvas[:] = np.array([0.62, 0.47, 0.31], np.float32) * (1 + 0.06 * fibres[..., None])
    mask = np.zeros((size, size), bool)
    top, left, bottom, right = 0.2 * size, 0.12 * size, 0.8 * size, 0.88 * size
    _polygon(
        canvas,
        mask,
        np.array([[top, left], [top, right], [bottom, right], [bottom, left]]),
        (0.94, 0.94, 0.9),
    )
    _polygon(
        canvas,
        None,
        np.array([[top, left], [top, right], [top + 0.08 * size, right], [top + 0.08 * size, left]]),
        (0.75, 0.12, 0.1),
    )
    ink = (0.08, 0.08, 0.1)
    for line in range(5):
        row, col = top + (0.13 + 0.06 * line) * size, left + 0.03 * size
        while col < left + 0.45 * size:
            width = rng.uniform(0.02, 0.07) * size
            _polygon(
                canvas,
                None,
                np.array(
                    [
                        [row, col],
                        [row, col + width],
                        [row + 0.025 * size, col + width],
                        [row + 0.025 * size, col],
                    ]
                ),
                ink,
            )
            col += width + 0.015 * size
    col = left + 0.5 * size
    while col < right - 0.04 * size:
        width = rng.choice([1, 2, 3]) * size / 256
        _polygon(
            canvas,
            None,
            np.array(
                [
                    [top + 0.36 * size, col],
                    [top + 0.36 * size, col + width],
                    [bottom - 0.05 * size, col + width],
                    [bottom - 0.05 * size, col],
                ]
            ),
            ink,
        )
        col += width + rng.choice([1, 2, 3]) * size / 256
    _disk(canvas, None, (top + 0.22 * size, right - 0.12 * size), 0.08 * size, (0.1, 0.25, 0.6))
    _disk(canvas, None, (top + 0.22 * size, right - 0.12 * size), 0.05 * size, (0.94, 0.94, 0.9))
    return Part(np.clip(canvas, 0, 1), mask)


def draw_board(size: int, rng: np.random.Generator) -> Part:
    """A green circuit board: copper traces and pads, two chips with pins, mounting holes, silkscreen."""
    canvas = np.empty((size, size, 3), np.float32)
    canvas[:] = (0.85, 0.85, 0.83)
    mask = np.zeros((size, size), bool)
    lo, hi = 0.08 * size, 0.92 * size
    _polygon(canvas, mask, np.array([[lo, lo], [lo, hi], [hi, hi], [hi, lo]]), (0.1, 0.38, 0.2))
    copper, trace = (0.78, 0.6, 0.3), max(2, int(0.012 * size))
    for _ in range(14):  # Manhattan traces between random pads
        (r0, c0), (r1, c1) = rng.uniform(0.15, 0.85, size=(2, 2)) * size
        for (ra, ca), (rb, cb) in (((r0, c0), (r0, c1)), ((r0, c1), (r1, c1))):
            rows = slice(int(min(ra, rb)) - trace // 2, int(max(ra, rb)) + trace // 2 + 1)
            cols = slice(int(min(ca, cb)) - trace // 2, int(max(ca, cb)) + trace // 2 + 1)
            canvas[rows, cols] = copper
        for point in ((r0, c0), (r1, c1)):
            _disk(canvas, None, point, 2.2 * trace, copper)
    for r, c, h, w in ((0.25, 0.3, 0.16, 0.3), (0.6, 0.55, 0.2, 0.22)):
        top, left, height, width = r * size, c * size, h * size, w * size
        for k in range(8):  # pins along the long sides
            pin_col = left + (k + 0.5) * width / 8
            for pin_row in (top - 0.03 * size, top + height):
                _polygon(
                    canvas,
                    None,
                    np.array(
                        [
                            [pin_row, pin_col - 0.008 * size],
                            [pin_row, pin_col + 0.008 * size],
                            [pin_row + 0.03 * size, pin_col + 0.008 * size],
                            [pin_row + 0.03 * size, pin_col - 0.008 * size],
                        ]
                    ),
                    (0.75, 0.75, 0.75),
                )
        _polygon(
            canvas,
            None,
            np.array([[top, left], [top, left + width], [top + height, left + width], [top + height, left]]),
            (0.08, 0.08, 0.09),
        )
    for r, c in ((0.13, 0.13), (0.13, 0.87), (0.87, 0.13), (0.87, 0.87)):
        _disk(canvas, None, (r * size, c * size), 0.035 * size, copper)
        _disk(canvas, mask, (r * size, c * size), 0.02 * size, (0.85, 0.85, 0.83), value=False)
    for r, c in ((0.78, 0.2), (0.45, 0.75)):  # silkscreen text
        for k in range(4):
            col = c * size + k * 0.03 * size
            _polygon(
                canvas,
                None,
                np.array(
                    [
                        [r * size, col],
                        [r * size, col + 0.02 * size],
                        [r * size + 0.03 * size, col + 0.02 * size],
                        [r * size + 0.03 * size, col],
                    ]
                ),
                (0.9, 0.92, 0.88),
            )
    return Part(np.clip(canvas, 0, 1), mask)


PARTS: dict[str, Callable[[int, np.random.Generator], Part]] = {
    "gear": draw_gear,
    "nut": draw_nut,
    "label": draw_label,
    "board": draw_board,
}
CATEGORIES = tuple(PARTS)


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


def _place(part_mask: np.ndarray, rng: np.random.Generator, margin: int) -> np.ndarray:
    """A random point ``(row, column)`` on the part, at least ``margin`` pixels inside it."""
    if margin < 1:  # scipy erodes until nothing changes when given 0 iterations
        inside = part_mask
    else:
        inside = ndimage.binary_erosion(part_mask, iterations=margin)
    candidates = np.argwhere(inside if inside.any() else part_mask)
    return candidates[rng.integers(len(candidates))].astype(float)


def _lines(size: int, points: np.ndarray) -> np.ndarray:
    """A 1 px polyline through ``points`` ``(K, 2)``: ``(size, size)`` bool."""
    lines = np.zeros((size, size), bool)
    for (r0, c0), (r1, c1) in itertools.pairwise(points):
        rows, cols = draw.line(*(int(np.rint(value)) for value in (r0, c0, r1, c1)))
        keep = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
        lines[rows[keep], cols[keep]] = True
    return lines


def _walk(start: np.ndarray, steps: int, step: float, turn: float, rng: np.random.Generator) -> np.ndarray:
    """A random walk of ``steps`` steps from ``start``, heading changed by ``N(0, turn)`` each step."""
    heading = rng.uniform(0, 2 * np.pi)
    points = [start]
    for _ in range(steps):
        heading += rng.normal(0, turn)
        points.append(points[-1] + step * np.array([np.sin(heading), np.cos(heading)]))
    return np.array(points)


def _soft_ellipse(size: int, center: np.ndarray, radii: tuple[float, float], angle: float) -> np.ndarray:
    """A Gaussian ellipse of the given radii (sigmas, pixels) and angle, peak 1: ``(size, size)``."""
    rows, cols = np.mgrid[:size, :size] - center[:, None, None]
    along = rows * np.sin(angle) + cols * np.cos(angle)
    across = rows * np.cos(angle) - cols * np.sin(angle)
    return np.exp(-0.5 * ((along / radii[0]) ** 2 + (across / radii[1]) ** 2))


def add_defect(
    image: np.ndarray, part_mask: np.ndarray, kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one defect of ``kind`` on the part in ``image`` ``(S, S, 3)``; return the image and its bool mask.

    Raises:
        ValueError: An unknown kind.
    """
    size = image.shape[0]
    pixel = size / 256
    if kind == "crack":
        start = _place(part_mask, rng, int(12 * pixel))
        trunk = _walk(start, int(rng.integers(14, 26)), 1.6 * pixel, 0.35, rng)
        branch = _walk(trunk[len(trunk) // 2], int(rng.integers(5, 10)), 1.6 * pixel, 0.5, rng)
        lines = (_lines(size, trunk) | _lines(size, branch)) & part_mask
        darkness = rng.uniform(0.35, 0.6)
        return image * (1 - darkness * lines[..., None]), ndimage.binary_dilation(lines)
    if kind == "speck":
        center = _place(part_mask, rng, int(8 * pixel))
        specks = np.zeros((size, size), bool)
        for _ in range(int(rng.integers(3, 9))):
            where = center + rng.normal(0, 4 * pixel, size=2)
            rows, cols = draw.disk(tuple(where), rng.uniform(0.8, 2.0) * pixel, shape=(size, size))
            specks[rows, cols] = True
        shade = rng.choice([0.08, 0.95])
        alpha = rng.uniform(0.6, 0.9) * specks[..., None]
        return image * (1 - alpha) + shade * alpha, ndimage.binary_dilation(specks)
    if kind == "smudge":
        center = _place(part_mask, rng, int(6 * pixel))
        blob = _soft_ellipse(
            size, center, (rng.uniform(6, 12) * pixel, rng.uniform(2, 5) * pixel), rng.uniform(0, np.pi)
        )
        alpha = rng.uniform(0.25, 0.45) * blob[..., None]
        oil = np.array([0.36, 0.33, 0.28], np.float32)
        return image * (1 - alpha) + oil * alpha, blob > 0.35
    if kind == "fibre":
        start = _place(part_mask, rng, int(6 * pixel))
        curve = _walk(start, int(rng.integers(10, 18)), 1.8 * pixel, 0.25, rng)
        fibre = ndimage.binary_dilation(_lines(size, curve), iterations=max(1, int(pixel)))
        colour = np.array(rng.choice([(0.25, 0.15, 0.08), (0.2, 0.3, 0.7), (0.97, 0.97, 0.95)]), np.float32)
        alpha = rng.uniform(0.7, 0.95) * fibre[..., None]
        return image * (1 - alpha) + colour * alpha, ndimage.binary_dilation(fibre)
    if kind == "dent":
        gradient = ndimage.gaussian_gradient_magnitude(image.mean(axis=-1), 1.5 * pixel)
        edges = part_mask & (gradient > np.quantile(gradient[part_mask], 0.9))
        center = _place(edges, rng, 0)
        radius, push = rng.uniform(8, 14) * pixel, rng.uniform(2.5, 4.5) * pixel * rng.choice([-1, 1])
        rows, cols = np.mgrid[:size, :size].astype(np.float32)
        offset_rows, offset_cols = rows - center[0], cols - center[1]
        distance = np.hypot(offset_rows, offset_cols) + 1e-6
        shift = push * np.exp(-((distance / radius) ** 2))
        coords = [rows - shift * offset_rows / distance, cols - shift * offset_cols / distance]
        warped = np.stack(
            [ndimage.map_coordinates(image[..., c], coords, order=1, mode="nearest") for c in range(3)], -1
        )
        changed = (np.abs(warped - image).max(axis=-1) > 0.04) & (distance < 1.5 * radius)
        return warped, ndimage.binary_closing(ndimage.binary_dilation(changed), iterations=2)
    if kind == "discolour":  # on the brighter half of the part, where a change of hue shows
        brightness = image.mean(axis=-1)
        center = _place(part_mask & (brightness > np.median(brightness[part_mask])), rng, int(10 * pixel))
        blob = _soft_ellipse(
            size, center, (rng.uniform(8, 16) * pixel, rng.uniform(6, 12) * pixel), rng.uniform(0, np.pi)
        )
        tint = np.array(rng.choice([(1.15, 0.95, 0.8), (0.85, 0.95, 1.15), (1.1, 1.1, 0.8)]), np.float32)
        alpha = rng.uniform(0.6, 0.9) * blob[..., None] * part_mask[..., None]
        return np.clip(image * (1 - alpha + tint * alpha), 0, 1), (blob > 0.5) & part_mask
    msg = f"Unknown defect kind {kind!r}; choose from {DEFECTS}."
    raise ValueError(msg)


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
        ValueError: An unknown category.
    """
    root = Path(root)
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        msg = f"Unknown production-line categories {unknown}; choose from {list(CATEGORIES)}."
        raise ValueError(msg)
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

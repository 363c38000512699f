"""The production-line parts' defects (``data.line``), one function per kind (``DEFECT_KINDS``).

Drawn on the posed part, before the light and the camera. The masks of the soft ones, ``smudge``
and ``dent``, cover their core and leave out the faint edge, as a person annotating would. None of
them is the demo's (``data.demo``) or the self-validation's (``training.synthetic_defects``).
"""

import itertools
from collections.abc import Callable

import numpy as np
from scipy import ndimage
from skimage import draw

DefectFunction = Callable[
    [np.ndarray, np.ndarray, int, float, np.random.Generator], tuple[np.ndarray, np.ndarray]
]


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


def _crack(
    image: np.ndarray, part_mask: np.ndarray, size: int, pixel: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``crack``: a 1 px branching hairline."""
    start = _place(part_mask, rng, int(12 * pixel))
    trunk = _walk(start, int(rng.integers(14, 26)), 1.6 * pixel, 0.35, rng)
    branch = _walk(trunk[len(trunk) // 2], int(rng.integers(5, 10)), 1.6 * pixel, 0.5, rng)
    lines = (_lines(size, trunk) | _lines(size, branch)) & part_mask
    darkness = rng.uniform(0.35, 0.6)
    return image * (1 - darkness * lines[..., None]), ndimage.binary_dilation(lines)


def _speck(
    image: np.ndarray, part_mask: np.ndarray, size: int, pixel: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``speck``: a cluster of tiny dots."""
    center = _place(part_mask, rng, int(8 * pixel))
    specks = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(3, 9))):
        where = center + rng.normal(0, 4 * pixel, size=2)
        rows, cols = draw.disk(tuple(where), rng.uniform(0.8, 2.0) * pixel, shape=(size, size))
        specks[rows, cols] = True
    shade = rng.choice([0.08, 0.95])
    alpha = rng.uniform(0.6, 0.9) * specks[..., None]
    return image * (1 - alpha) + shade * alpha, ndimage.binary_dilation(specks)


def _smudge(
    image: np.ndarray, part_mask: np.ndarray, size: int, pixel: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``smudge``: a faint elongated oily haze (mask: its core)."""
    center = _place(part_mask, rng, int(6 * pixel))
    blob = _soft_ellipse(
        size, center, (rng.uniform(6, 12) * pixel, rng.uniform(2, 5) * pixel), rng.uniform(0, np.pi)
    )
    alpha = rng.uniform(0.25, 0.45) * blob[..., None]
    oil = np.array([0.36, 0.33, 0.28], np.float32)
    return image * (1 - alpha) + oil * alpha, blob > 0.35


def _fibre(
    image: np.ndarray, part_mask: np.ndarray, size: int, pixel: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``fibre``: a short curved hair or lint."""
    start = _place(part_mask, rng, int(6 * pixel))
    curve = _walk(start, int(rng.integers(10, 18)), 1.8 * pixel, 0.25, rng)
    fibre = ndimage.binary_dilation(_lines(size, curve), iterations=max(1, int(pixel)))
    colour = np.array(rng.choice([(0.25, 0.15, 0.08), (0.2, 0.3, 0.7), (0.97, 0.97, 0.95)]), np.float32)
    alpha = rng.uniform(0.7, 0.95) * fibre[..., None]
    return image * (1 - alpha) + colour * alpha, ndimage.binary_dilation(fibre)


def _dent(
    image: np.ndarray, part_mask: np.ndarray, size: int, pixel: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``dent``: a local warp of the part's own edges (mask: where it moved them)."""
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


def _discolour(
    image: np.ndarray, part_mask: np.ndarray, size: int, pixel: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``discolour``: a faint soft change of hue (on the brighter half of the part, where a change of hue shows)."""
    brightness = image.mean(axis=-1)
    center = _place(part_mask & (brightness > np.median(brightness[part_mask])), rng, int(10 * pixel))
    blob = _soft_ellipse(
        size, center, (rng.uniform(8, 16) * pixel, rng.uniform(6, 12) * pixel), rng.uniform(0, np.pi)
    )
    tint = np.array(rng.choice([(1.15, 0.95, 0.8), (0.85, 0.95, 1.15), (1.1, 1.1, 0.8)]), np.float32)
    alpha = rng.uniform(0.6, 0.9) * blob[..., None] * part_mask[..., None]
    return np.clip(image * (1 - alpha + tint * alpha), 0, 1), (blob > 0.5) & part_mask


DEFECT_KINDS: dict[str, DefectFunction] = {
    "crack": _crack,
    "speck": _speck,
    "smudge": _smudge,
    "fibre": _fibre,
    "dent": _dent,
    "discolour": _discolour,
}
DEFECTS = tuple(DEFECT_KINDS)


def add_defect(
    image: np.ndarray, part_mask: np.ndarray, kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one defect of ``kind`` on the part in ``image`` ``(S, S, 3)``; return the image and its bool mask.

    Raises:
        ValueError: An unknown kind.
    """
    if kind not in DEFECT_KINDS:
        msg = f"Unknown defect kind {kind!r}; choose from {DEFECTS}."
        raise ValueError(msg)
    size = image.shape[0]
    return DEFECT_KINDS[kind](image, part_mask, size, size / 256, rng)

"""The production-line parts as drawn, before pose, light and camera (``data.line``): a spur ``gear``,
a brass hex ``nut``, a printed ``label`` on cardboard and a circuit ``board`` (``PARTS``), each the
same design in every sample, drawn on a canvas ``CANVAS_SCALE`` times the output size.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage import draw

CANVAS_SCALE = 2  # parts are drawn at twice the output size, then posed and shrunk (anti-aliased)


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

"""The production-line parts: pose, light and camera nuisance, and defects drawn only where their masks say."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from anomalib_fastflow.data import line, line_parts
from anomalib_fastflow.data.demo import build_demo_categories

SMALL = {"image_size": 96, "num_train": 3, "num_test_good": 1, "num_test_per_defect": 1}
STILL = line.Nuisance(0, 0, 0, 0, 0, 0, 0, (0.0, 0.0), 0)  # no pose, light, camera or texture change


def _digest(root: Path) -> str:
    files = sorted(root.rglob("*.png"))
    return hashlib.sha256(
        b"".join(path.relative_to(root).as_posix().encode() + path.read_bytes() for path in files)
    ).hexdigest()


def _images(folder: Path) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.open(path), dtype=np.float32) / 255 for path in sorted(folder.glob("*.png"))]
    )


def test_layout_and_determinism(tmp_path: Path) -> None:
    first = line.build_line_dataset(tmp_path / "a", ["nut"], seed=3, **SMALL)
    second = line.build_line_dataset(tmp_path / "b", ["nut"], seed=3, **SMALL)
    third = line.build_line_dataset(tmp_path / "c", ["nut"], seed=4, **SMALL)
    assert _digest(first) == _digest(second) != _digest(third)
    together = line.build_line_dataset(tmp_path / "d", ["gear", "nut"], seed=3, **SMALL)
    assert _digest(together / "nut") == _digest(first / "nut")
    category = first / "nut"
    assert sorted(path.name for path in (category / "test").iterdir()) == sorted(["good", *line.DEFECTS])
    for kind in line.DEFECTS:
        mask = np.asarray(Image.open(category / "ground_truth" / kind / "000_mask.png"))
        assert mask.shape == (96, 96) and set(np.unique(mask)) == {0, 255}, kind
        assert 0 < (mask > 0).mean() < 0.1, kind


def test_nuisance_is_what_varies_between_samples(tmp_path: Path) -> None:
    still = line.build_line_dataset(tmp_path / "still", ["gear"], nuisance=STILL, **SMALL)
    moving = line.build_line_dataset(tmp_path / "moving", ["gear"], **SMALL)
    assert np.array_equal(
        *_images(still / "gear" / "train" / "good")[:2]
    )  # one design: without nuisance, one image
    train = _images(moving / "gear" / "train" / "good")
    centroids = [ndimage.center_of_mass(image.mean(axis=-1) > 0.4) for image in train]  # the bright gear
    assert max(np.hypot(*np.subtract(a, centroids[0])) for a in centroids[1:]) > 0.5  # placed by hand
    assert np.ptp([image.mean() for image in train]) > 0.005  # lit differently


SOFT = ("smudge", "dent")  # their masks cover the core; a faint edge fades out beyond it


@pytest.mark.parametrize("kind", line.DEFECTS)
def test_defect_changes_only_its_masked_pixels(kind: str) -> None:
    rng = np.random.default_rng(0)
    part = line_parts.draw_board(256, rng)
    image, part_mask = part.image[::2, ::2].copy(), part.mask[::2, ::2].copy()
    for seed in range(3):
        defective, mask = line.add_defect(image, part_mask, kind, np.random.default_rng(seed))
        change = np.abs(defective - image).max(axis=-1)
        assert mask.any() and change[mask].mean() > 0.02, kind  # something inside the mask
        center = np.round(ndimage.center_of_mass(mask)).astype(int)
        assert part_mask[tuple(center)] or (mask & part_mask).any(), kind  # on the part
        if kind in SOFT:
            assert change[~mask].max() < 0.5 * change[mask].max(), kind  # the strongest change is masked
            assert mask[change > 0.1].mean() > 0.8, kind
        else:
            assert change[~mask].max() < 0.05, kind  # nothing visible outside the mask
            assert (mask & part_mask).mean() >= 0.8 * mask.mean(), kind


def test_unknown_category_and_kind_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"Unknown demo categories \['washer'\]"):
        build_demo_categories(tmp_path, ["gear", "washer"])
    with pytest.raises(ValueError, match=r"Unknown defect kind 'rust'"):
        line.add_defect(np.zeros((32, 32, 3)), np.ones((32, 32), bool), "rust", np.random.default_rng(0))


def test_demo_categories_build_either_set_with_its_own_sizes(tmp_path: Path) -> None:
    root = build_demo_categories(tmp_path, ["brick", "label"])
    assert np.asarray(Image.open(root / "brick" / "train" / "good" / "000.png")).shape == (160, 160, 3)
    assert np.asarray(Image.open(root / "label" / "train" / "good" / "000.png")).shape == (256, 256, 3)
    assert len(list((root / "label" / "train" / "good").glob("*.png"))) == 32

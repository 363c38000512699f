"""Non-aligned (disturbed) test sets: image and mask move together, the layout anomalib reads, determinism."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from anomalib.data.datasets import MVTecADDataset
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2.functional import affine

from anomalib_fastflow.cli import main
from anomalib_fastflow.data.disturbed import write_disturbed_copy
from anomalib_fastflow.geometry import AffineParams, Disturbance, disturb, draw_params


def _square(size: int = 64, rows: slice = slice(20, 30), cols: slice = slice(10, 20)) -> torch.Tensor:
    """A ``(1, size, size)`` uint8 map with a 255 square at ``rows, cols``."""
    mask = torch.zeros(1, size, size, dtype=torch.uint8)
    mask[0, rows, cols] = 255
    return mask


def _dataset(root: Path) -> Path:
    """MVTec layout: 2 train images, 2 good and 2 defective test images (a white square on grey), masks."""
    category = root / "parts"
    rng = np.random.default_rng(0)
    for folder, count in (("train/good", 2), ("test/good", 2), ("test/square", 2)):
        (category / folder).mkdir(parents=True)
        for index in range(count):
            image = np.full((48, 48, 3), 90, np.uint8) + rng.integers(0, 20, (48, 48, 3), dtype=np.uint8)
            if folder == "test/square":
                image[10:22, 14:26] = 255
                (category / "ground_truth" / "square").mkdir(parents=True, exist_ok=True)
                mask = np.zeros((48, 48), np.uint8)
                mask[10:22, 14:26] = 255
                Image.fromarray(mask).save(category / "ground_truth" / "square" / f"{index:03d}_mask.png")
            Image.fromarray(image).save(category / folder / f"{index:03d}.png")
    return root


def test_a_square_defect_lands_where_the_transform_says() -> None:
    image = _square().expand(3, -1, -1).clone()
    moved, mask = disturb(
        image, _square(), AffineParams(angle=0.0, translate=(8.0, -4.0), scale=1.0), fill="black"
    )
    assert torch.equal(mask, _square(rows=slice(16, 26), cols=slice(18, 28)))
    assert torch.equal(moved[0:1], mask)


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_the_transform_is_torchvisions_affine(size: tuple[int, int]) -> None:
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    params = AffineParams(angle=12.0, translate=(5.3, -7.1), scale=0.9)
    for fill in ("black", "mean"):
        ours, _ = disturb(image, None, params, fill, interpolation="bilinear")
        colour = image.float().mean(dim=(-2, -1)).tolist() if fill == "mean" else [0.0] * 3
        settings = {"angle": 12.0, "translate": [5.3, -7.1], "scale": 0.9, "shear": [0.0, 0.0]}
        theirs = affine(image, **settings, interpolation=InterpolationMode.BILINEAR, fill=colour)
        assert (ours.int() - theirs.int()).abs().max() <= 1  # rounding only


def test_bicubic_keeps_the_detail_that_bilinear_blurs() -> None:
    noise = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    half_pixel = AffineParams(angle=0.0, translate=(0.5, 0.5), scale=1.0)
    inside = (..., slice(4, -4), slice(4, -4))
    spread = {
        mode: disturb(noise, None, half_pixel, "reflect", interpolation=mode)[0][inside].float().std().item()
        for mode in ("bilinear", "bicubic")
    }
    # bilinear averages 4 pixels at a half-pixel shift: the spread of the noise halves
    assert spread["bilinear"] < 0.55 * noise.float().std()
    assert spread["bicubic"] > 1.2 * spread["bilinear"]


@pytest.mark.parametrize("seed", range(5))
def test_image_and_mask_get_the_same_transform(seed: int) -> None:
    image = _square(rows=slice(24, 40), cols=slice(20, 36)).expand(3, -1, -1).clone()
    params = draw_params(Disturbance(), (64, 64), f"key/{seed}")
    moved, mask = disturb(image, _square(rows=slice(24, 40), cols=slice(20, 36)), params, fill="black")
    bright, marked = moved[0] > 127, mask[0] > 0
    assert set(mask.unique().tolist()) <= {0, 255}  # nearest neighbour: still binary
    assert (bright & marked).sum() / (bright | marked).sum() > 0.85
    assert 0.85 <= params.scale <= 1 / 0.85 and abs(params.angle) <= 15
    assert max(abs(t) for t in params.translate) <= 0.15 * 64


def test_the_area_brought_in_is_filled_and_never_defective() -> None:
    image = torch.full((3, 32, 32), 200, dtype=torch.uint8)
    image[0] = 40
    mask = torch.full((1, 32, 32), 255, dtype=torch.uint8)  # defective everywhere
    moved, moved_mask = disturb(image, mask, AffineParams(angle=0.0, translate=(10.0, 0.0), scale=1.0))
    assert moved[:, :, :10].flatten(1).unique(dim=1).tolist() == [[40], [200], [200]]  # the mean colour
    assert (moved_mask[:, :, :10] == 0).all() and (moved_mask[:, :, 10:] == 255).all()


def test_the_copy_expands_the_test_set_keeps_training_and_reads_in_anomalib(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "aligned")
    written = write_disturbed_copy(root, tmp_path / "disturbed", ["parts"], copies=4, seed=0)
    assert written == {"parts": 16}
    target = tmp_path / "disturbed" / "parts"
    assert sorted(p.name for p in (target / "test" / "square").iterdir()) == [
        f"{index:03d}_d{copy}.png" for index in range(2) for copy in range(4)
    ]
    assert sorted(p.name for p in (target / "ground_truth" / "square").iterdir()) == [
        f"{index:03d}_d{copy}_mask.png" for index in range(2) for copy in range(4)
    ]
    assert not (target / "ground_truth" / "good").exists()
    for name in ("000.png", "001.png"):
        assert (target / "train" / "good" / name).read_bytes() == (
            root / "parts" / "train" / "good" / name
        ).read_bytes()
    dataset = MVTecADDataset(root=tmp_path / "disturbed", category="parts", split="test")
    assert len(dataset) == 16 and int(sum(item.gt_label for item in dataset)) == 8
    for item in dataset:
        assert item.gt_mask.any() == bool(item.gt_label)


def test_a_defect_that_would_leave_the_view_is_drawn_again(tmp_path: Path) -> None:
    category = tmp_path / "aligned" / "parts"
    for folder in ("test/corner", "ground_truth/corner"):
        (category / folder).mkdir(parents=True)
    image, mask = np.full((32, 32, 3), 90, np.uint8), np.zeros((32, 32), np.uint8)
    image[:3, :3], mask[:3, :3] = 255, 255  # a defect in the top-left corner
    Image.fromarray(image).save(category / "test" / "corner" / "000.png")
    Image.fromarray(mask).save(category / "ground_truth" / "corner" / "000_mask.png")
    far = Disturbance(zoom_ratio=1.0, max_rotation=0.0, max_translation=0.5, fill="black")
    write_disturbed_copy(tmp_path / "aligned", tmp_path / "disturbed", ["parts"], copies=8, disturbance=far)

    masks = sorted((tmp_path / "disturbed" / "parts" / "ground_truth" / "corner").glob("*.png"))
    assert len(masks) == 8 and all(np.array(Image.open(path)).any() for path in masks)
    corner = _square(32, slice(0, 3), slice(0, 3))
    first_draws = [draw_params(far, (32, 32), f"0/test/corner/000.png/{copy}") for copy in range(8)]
    first_masks = [disturb(corner, corner, params, "black")[1] for params in first_draws]
    assert not all(moved.any() for moved in first_masks)  # without drawing again, a copy showed no defect


def test_the_same_seed_writes_the_same_files(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "aligned")
    files = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_disturbed_copy(root, tmp_path / name, ["parts"], copies=2, seed=seed)
        files[name] = {
            p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*.png")
        }
    assert files["a"] == files["b"]
    assert files["a"] != files["c"]


def test_a_defective_image_without_a_mask_is_named(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "aligned")
    (root / "parts" / "ground_truth" / "square" / "001_mask.png").unlink()
    with pytest.raises(ValueError, match=r"test/square/001.png is a defective test image without a mask"):
        write_disturbed_copy(root, tmp_path / "disturbed", ["parts"])
    with pytest.raises(FileNotFoundError, match=r"No test folder at .*nothing/test"):
        write_disturbed_copy(root, tmp_path / "disturbed", ["nothing"])


def test_the_disturb_command_writes_the_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    root = _dataset(tmp_path / "aligned")
    arguments = ["disturb", "--root", str(root), "--output", str(tmp_path / "out"), "--categories", "[parts]"]
    monkeypatch.setattr(
        "sys.argv", ["anomalib-fastflow", *arguments, "--copies", "2", "--disturbance.fill", "black"]
    )
    main()
    assert "parts: 8 disturbed test images" in capsys.readouterr().out
    assert len(list((tmp_path / "out" / "parts" / "test").rglob("*.png"))) == 8


def test_btad_layout_keeps_its_mask_names_and_reads_in_anomalib(tmp_path: Path) -> None:
    from anomalib.data.datasets import BTechDataset

    source = _dataset(tmp_path / "mvtec") / "parts"
    btad = tmp_path / "btad" / "01"
    for old, new in (("train/good", "train/ok"), ("test/good", "test/ok"), ("test/square", "test/ko")):
        shutil.copytree(source / old, btad / new)
    for mask in (source / "ground_truth" / "square").iterdir():
        (btad / "ground_truth" / "ko").mkdir(parents=True, exist_ok=True)
        shutil.copy(mask, btad / "ground_truth" / "ko" / mask.name.replace("_mask", ""))
    write_disturbed_copy(tmp_path / "btad", tmp_path / "out", ["01"], copies=2)
    masks = sorted(p.name for p in (tmp_path / "out" / "01" / "ground_truth" / "ko").iterdir())
    assert masks == ["000_d0.png", "000_d1.png", "001_d0.png", "001_d1.png"]
    dataset = BTechDataset(root=tmp_path / "out", category="01", split="test")
    assert len(dataset) == 8 and int(sum(item.gt_label for item in dataset)) == 4
    for item in dataset:
        assert item.gt_mask.any() == bool(item.gt_label)


def test_reflect_fill_mirrors_image_and_mask_together() -> None:
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    image[:, :, 0:4] = 255  # a defect on the left border
    mask = torch.zeros(1, 32, 32, dtype=torch.uint8)
    mask[:, :, 0:4] = 255
    moved, moved_mask = disturb(
        image, mask, AffineParams(angle=0.0, translate=(8.0, 0.0), scale=1.0), "reflect"
    )
    # shifted right by 8: the defect now at columns 8-11, its mirror image (about column 0, which
    # is not repeated) brought in at columns 5-7
    assert torch.equal(moved_mask[0, 0] > 0, torch.arange(32).ge(5) & torch.arange(32).lt(12))
    assert torch.equal(moved[0] > 127, moved_mask[0] > 0)
    assert moved.shape == image.shape and moved_mask.shape == mask.shape

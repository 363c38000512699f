"""Demo data builder, datamodule aliases and the checks that run before training."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from anomalib.data.datamodules.image import mvtecad
from anomalib.engine import Engine
from PIL import Image

from anomalib_fastflow import FastFlow, MVTec, build_demo_dataset
from anomalib_fastflow.data.demo import OBJECTS, TEXTURES, defect_kinds


def _digest(root: Path) -> str:
    files = sorted(root.rglob("*.png"))
    return hashlib.sha256(
        b"".join(path.relative_to(root).as_posix().encode() + path.read_bytes() for path in files)
    ).hexdigest()


@pytest.mark.parametrize("name", ["gravel", "cup"])
def test_demo_dataset_layout_and_determinism(tmp_path: Path, name: str) -> None:
    kwargs = {"image_size": 64, "num_train": 3, "num_test_good": 2, "num_test_per_defect": 2}
    first = build_demo_dataset(tmp_path / "a", [name], seed=5, **kwargs)
    second = build_demo_dataset(tmp_path / "b", [name], seed=5, **kwargs)
    third = build_demo_dataset(tmp_path / "c", [name], seed=6, **kwargs)
    assert _digest(first) == _digest(second) != _digest(third)
    together = build_demo_dataset(tmp_path / "d", ["brick", name, "retina"], seed=5, **kwargs)
    assert _digest(together / name) == _digest(first / name)  # built alone or with others: the same
    category = first / name
    assert len(list((category / "train" / "good").glob("*.png"))) == 3
    assert sorted(path.name for path in (category / "test").iterdir()) == sorted(
        ["good", *defect_kinds(name)]
    )
    for kind in defect_kinds(name):
        for image_path in sorted((category / "test" / kind).glob("*.png")):
            mask = np.asarray(Image.open(category / "ground_truth" / kind / f"{image_path.stem}_mask.png"))
            assert mask.shape == (64, 64)
            assert set(np.unique(mask)) == {0, 255}
            assert 0 < (mask > 0).mean() < 0.3


def _images(folder: Path) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.open(path), dtype=np.float32) / 255 for path in sorted(folder.glob("*.png"))]
    )


def test_demo_objects_are_aligned_and_textures_are_not(tmp_path: Path) -> None:
    """Object samples are one pose of the object, jittered a little; texture samples are other crops."""
    root = build_demo_dataset(
        tmp_path, [*TEXTURES, *OBJECTS], image_size=96, num_train=6, num_test_good=1, num_test_per_defect=1
    )
    for name in [*TEXTURES, *OBJECTS]:
        train = _images(root / name / "train" / "good")
        correlations = np.corrcoef(train.reshape(len(train), -1))[np.triu_indices(len(train), 1)]
        if name in OBJECTS:
            assert correlations.min() > 0.7, name  # the same object, pixel for pixel nearly
            assert np.abs(train[0] - train[1]).mean() > 0.005, name  # jittered, not copies
        else:
            assert correlations.max() < 0.6, name


def test_unknown_demo_category_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"Unknown demo categories \['marble'\]"):
        build_demo_dataset(tmp_path, ["brick", "marble"])


def _copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_dataset, tmp_path / "data"))


def _fit(root: Path, tmp_path: Path) -> None:
    datamodule = MVTec(root=root, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0)
    Engine(default_root_dir=tmp_path, logger=False, max_epochs=1).fit(
        FastFlow(input_size=64, flow_steps=2), datamodule=datamodule
    )


def test_corrupt_image_is_named_before_training(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    corrupt = root / "brick" / "test" / "hole" / "001.png"
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"Unreadable image .*hole/001.png"):
        _fit(root, tmp_path)


def test_empty_training_folder_is_named(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    for path in (root / "brick" / "train" / "good").glob("*.png"):
        path.unlink()
    with pytest.raises(ValueError, match=r"No training images found for MVTec in .*data/brick"):
        _fit(root, tmp_path)


def test_missing_dataset_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(mvtecad, "download_and_extract", offline)
    datamodule = MVTec(root=tmp_path / "nowhere", category="bottle")
    with pytest.raises(FileNotFoundError, match=r"nowhere/bottle does not exist.*--data.root"):
        datamodule.prepare_data()

"""Real data: ELPV's mono solar cells laid out from the installed package, any MVTec-layout folder as
anomalib's ``Folder`` (masks optional), and the grid and demo running on such a folder."""

import csv
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn

from anomalib_fastflow.benchmark.datasets import DataSpec
from anomalib_fastflow.benchmark.grid import BenchmarkConfig, run_grid
from anomalib_fastflow.data.elpv import build_elpv_categories, category_name, read_labels, train_size
from anomalib_fastflow.data.folder import folder_datamodule
from anomalib_fastflow.demo import run_demo
from anomalib_fastflow.extras import MissingExtraError
from anomalib_fastflow.torch_model import FastFlowModel


def _names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


@pytest.fixture(scope="module")
def elpv_labels() -> dict[str, tuple[float, str]]:
    pytest.importorskip(
        "elpv_dataset", reason="elpv-dataset is not installed (pip install 'anomalib-fastflow[elpv]')"
    )
    _, cells = read_labels()
    return {Path(cell.path).name: (cell.probability, cell.cell_type) for cell in cells}


def test_elpv_splits_hold_mono_cells_only_and_share_their_test_images(tmp_path: Path, elpv_labels) -> None:
    names = build_elpv_categories(tmp_path, [20, 8], test_good=6, test_defective=5, seed=3)
    assert names == ["mono_20", "mono_8"]
    large, small = (tmp_path / name for name in names)
    train_large, train_small = _names(large / "train/good"), _names(small / "train/good")
    assert (len(train_large), len(train_small)) == (20, 8) and train_small < train_large
    for category in (large, small):
        good, defective = _names(category / "test/good"), _names(category / "test/defective")
        assert (len(good), len(defective)) == (6, 5)
        assert not good & _names(category / "train/good")
        assert {elpv_labels[name] for name in good | _names(category / "train/good")} == {(0.0, "mono")}
        assert {elpv_labels[name] for name in defective} == {(1.0, "mono")}
    assert _names(large / "test/good") == _names(small / "test/good")
    # built alone, later, a size gets the same test cells: they do not depend on the sizes asked for
    build_elpv_categories(tmp_path / "alone", [8], test_good=6, test_defective=5, seed=3)
    assert _names(tmp_path / "alone/mono_8/test/good") == _names(small / "test/good")
    assert _names(tmp_path / "alone/mono_8/train/good") == train_small
    build_elpv_categories(tmp_path / "other", [8], test_good=6, test_defective=5, seed=4)
    assert _names(tmp_path / "other/mono_8/train/good") != train_small


def test_elpv_refuses_more_cells_than_it_has_and_names_its_categories(tmp_path: Path, elpv_labels) -> None:
    good = sum(1 for probability, kind in elpv_labels.values() if (probability, kind) == (0.0, "mono"))
    with pytest.raises(ValueError, match=f"ELPV has {good} good"):
        build_elpv_categories(tmp_path, [good], test_good=1)
    assert not list(tmp_path.iterdir())  # nothing half-written
    assert train_size(category_name(32)) == 32
    with pytest.raises(ValueError, match="expected mono_<training images>"):
        train_size("poly_32")


def test_elpv_without_its_package_says_how_to_install_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "elpv_dataset", None)
    with pytest.raises(MissingExtraError, match=r'pip install "anomalib-fastflow\[elpv\]"'):
        build_elpv_categories(tmp_path)


def _as_folder(tiny_dataset: Path, destination: Path, masks: bool) -> Path:
    category = destination / "brick"
    shutil.copytree(tiny_dataset / "brick", category)
    if not masks:
        shutil.rmtree(category / "ground_truth")
    return category


@pytest.mark.parametrize("masks", [True, False])
def test_a_folder_in_mvtec_layout_reads_as_anomalib_folder(
    tiny_dataset: Path, tmp_path: Path, masks: bool
) -> None:
    datamodule = folder_datamodule(_as_folder(tiny_dataset, tmp_path, masks), seed=0, num_workers=0)
    datamodule.setup(TrainerFn.FITTING)
    datamodule.setup(TrainerFn.TESTING)
    assert (
        len(datamodule.train_data) == 12 and len(datamodule.test_data) == 4 + 8
    )  # the whole test split is tested
    labels = datamodule.test_data.samples.label_index.tolist()
    assert sorted(labels) == [0] * 4 + [1] * 8
    defective = datamodule.test_data[labels.index(1)]
    assert (defective.gt_mask is not None and bool(defective.gt_mask.any())) is masks


def test_a_folder_without_defect_folders_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "parts" / "train" / "good").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"parts is not a dataset folder.*defect folders: none"):
        folder_datamodule(tmp_path / "parts")


def test_feature_pooling_averages_each_neighbourhood_before_the_norm() -> None:
    model = FastFlowModel("tf_efficientnet_lite0", [2], (64, 64), 2, True, 1.0, "random", feature_pooling=3)
    features = torch.randn(1, 40, 8, 8)
    pooled = model.patch_features([features])[0]
    assert pooled.shape == features.shape
    assert torch.allclose(pooled[0, :, 4, 4], features[0, :, 3:6, 3:6].mean(dim=(-2, -1)), atol=1e-6)
    plain = FastFlowModel("tf_efficientnet_lite0", [2], (64, 64), 2, True, 1.0, "random", feature_pooling=1)
    assert torch.equal(plain.patch_features([features])[0], features)
    with pytest.raises(ValueError, match="feature_pooling=2"):
        FastFlowModel("tf_efficientnet_lite0", [2], (64, 64), 2, True, 1.0, "random", feature_pooling=2)


@pytest.mark.slow
def test_the_grid_and_the_demo_run_a_folder_without_masks(tiny_dataset: Path, tmp_path: Path) -> None:
    _as_folder(tiny_dataset, tmp_path / "data", masks=False)
    data = DataSpec(name="Folder", root=tmp_path / "data", categories=["brick"], batch_size=4)
    config = BenchmarkConfig(
        models=["fastflow"], data=data, epochs={"fastflow": 1}, runtimes={}, weights="random",
        model_options={"fastflow": {"input_size": 96}}, output=tmp_path / "grid",
    )  # fmt: skip
    [row], _ = run_grid(config)
    assert row["status"] == "ok", row["error"]
    assert not math.isnan(float(row["image_AUROC"])) and row["pixel_AUROC"] == row["pixel_AUPRO"] == ""
    [demo_row] = run_demo(
        root=tmp_path / "data", output=tmp_path / "demo", categories=["brick"], max_epochs=1, batch_size=4,
        dataset="Folder",
    ).rows  # fmt: skip
    assert demo_row["pixel_AUROC"] == "" and Path(demo_row["heatmaps"]).is_dir()
    with (tmp_path / "demo" / "metrics.csv").open() as file:
        assert next(csv.DictReader(file))["image_AUROC"] == str(demo_row["image_AUROC"])

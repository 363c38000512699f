"""CIFAR-10 one-class (paper Table 4) on a small fixture in torchvision's pickled format."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomalib_fastflow import CIFAR10
from anomalib_fastflow.benchmark.datasets import DataSpec
from anomalib_fastflow.benchmark.grid import BenchmarkConfig, Timing, run_grid
from anomalib_fastflow.benchmark.tables import write_report
from anomalib_fastflow.data.cifar10 import BATCHES, CLASSES, write_one_class

TRAIN_PER_CLASS_PER_BATCH, TEST_PER_CLASS = 2, 3


def _batch(labels: list[int]) -> dict[str, object]:
    """A batch in torchvision's layout: each image is a flat colour of ``20 * label`` (red channel)."""
    data = np.zeros((len(labels), 3, 32, 32), np.uint8)
    data[:, 0] = np.array(labels, np.uint8)[:, None, None] * 20
    return {"data": data.reshape(len(labels), -1), "labels": labels, "batch_label": "fixture"}


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cifar-10-batches-py``: 5 training batches (2 images per class each), a test batch (3 per class)."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / BATCHES
    folder.mkdir()
    batches = {f"data_batch_{index}": list(range(10)) * TRAIN_PER_CLASS_PER_BATCH for index in range(1, 6)}
    batches["test_batch"] = list(range(10)) * TEST_PER_CLASS
    for name, labels in batches.items():
        with (folder / name).open("wb") as file:
            pickle.dump(_batch(labels), file)
    with (folder / "batches.meta").open("wb") as file:
        pickle.dump({"label_names": list(CLASSES)}, file)
    return root


def _labels_in(folder: Path) -> set[int]:
    return {int(np.asarray(Image.open(path))[0, 0, 0]) // 20 for path in folder.glob("*.png")}


def test_one_class_split_takes_the_class_as_normal_and_the_rest_as_anomalies(cifar_root: Path) -> None:
    folder = write_one_class(cifar_root, "cat")
    cat = CLASSES.index("cat")
    assert len(list((folder / "train" / "good").glob("*.png"))) == 5 * TRAIN_PER_CLASS_PER_BATCH
    assert len(list((folder / "test" / "good").glob("*.png"))) == TEST_PER_CLASS
    assert len(list((folder / "test" / "anomalous").glob("*.png"))) == 9 * TEST_PER_CLASS
    assert _labels_in(folder / "train" / "good") == {cat} == _labels_in(folder / "test" / "good")
    assert _labels_in(folder / "test" / "anomalous") == set(range(10)) - {cat}


def test_the_datamodule_loads_the_split_for_a_classification_task(cifar_root: Path) -> None:
    datamodule = CIFAR10(cifar_root, normal_class=3, train_batch_size=4, eval_batch_size=4, num_workers=0)
    datamodule.prepare_data()
    datamodule.setup()
    assert datamodule.category == "cat"
    assert len(datamodule.train_data) == 10
    labels = [int(item.gt_label) for item in datamodule.test_data]
    assert len(labels) == 30 and sum(labels) == 27
    assert datamodule.test_data[0].gt_mask is None or not datamodule.test_data[0].gt_mask.any()
    assert next(iter(datamodule.test_dataloader())).image.shape[-2:] == (32, 32)


def test_a_wrong_class_or_missing_batches_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"normal_class='cow': choose an index 0-9 or one of \['airplane'"):
        CIFAR10(tmp_path, normal_class="cow")
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 batch .*batches-py/data_batch_1 not found"):
        CIFAR10(tmp_path, normal_class="cat").prepare_data()


@pytest.mark.slow
def test_anomalib_trains_and_tests_fastflow_on_one_class(cifar_root: Path, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("anomalib")), "train", "--model", "anomalib_fastflow.FastFlow",
        "--model.flow_steps", "2", "--model.input_size", "64",
        "--data", "CIFAR10", "--data.root", str(cifar_root),
        "--data.normal_class", "automobile", "--data.num_workers", "0", "--data.train_batch_size", "5",
        "--trainer.max_epochs", "1", "--default_root_dir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "image_AUROC" in result.stdout
    assert "pixel_AUROC" not in result.stdout  # no masks: no pixel metrics


@pytest.mark.slow
def test_the_benchmark_grid_runs_cifar10_with_empty_pixel_columns(cifar_root: Path, tmp_path: Path) -> None:
    config = BenchmarkConfig(
        models=["fastflow"],
        backbones=["tf_efficientnet_lite0"],
        data=DataSpec("CIFAR10", cifar_root, ["cat"], batch_size=5),
        epochs={"fastflow": 1},
        runtimes={"fastflow": ["torch"]},
        model_options={"fastflow": {"flow_steps": 2, "input_size": 64}},
        timing=Timing(warmup=1, repeats=2),
        output=tmp_path / "bench",
    )
    accuracy, cost = run_grid(config)
    [row] = accuracy
    assert row["status"] == "ok", row["error"]
    assert 0 <= float(row["image_AUROC"]) <= 1 and row["pixel_AUROC"] == "" and row["pixel_AUPRO"] == ""
    assert [line["status"] for line in cost] == ["ok"]
    report = write_report(accuracy, cost, tmp_path / "bench", "# test")
    assert f"| cat | {float(row['image_AUROC']):.3f} / - / - |" in report

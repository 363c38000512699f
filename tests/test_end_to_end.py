"""End to end: the ``anomalib`` CLI with the plugin, and the demo reaching a useful AUROC."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import openvino as ov
import pytest
from anomalib.data.utils import read_image
from anomalib.deploy import TorchInferencer

from anomalib_fastflow.channel_permutation import permutations_as_convolutions
from anomalib_fastflow.demo import run_demo
from anomalib_fastflow.export import openvino_inferencer

ANOMALIB = str(Path(sys.executable).with_name("anomalib"))
pytestmark = pytest.mark.slow


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([ANOMALIB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_anomalib_cli_trains_tests_predicts_and_exports(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = _run(
        "train", "--model", "anomalib_fastflow.FastFlow", "--data", "MVTec",
        "--data.root", str(tiny_dataset), "--data.category", "brick", "--data.num_workers", "0",
        "--model.flow_steps", "4", "--trainer.max_epochs", "2", "--default_root_dir", str(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    assert "image_AUROC" in train.stdout and "pixel_AUROC" in train.stdout
    [checkpoint] = tmp_path.glob("FastFlow/MVTec/brick/v0/weights/lightning/model.ckpt")

    predict = _run(
        "predict", "--model", "anomalib_fastflow.FastFlow", "--model.flow_steps", "4",
        "--ckpt_path", str(checkpoint), "--data", str(tiny_dataset / "brick" / "test" / "hole"),
        "--default_root_dir", str(tmp_path / "predict"),
        cwd=tmp_path,
    )  # fmt: skip
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert len(list((tmp_path / "predict").rglob("*.png"))) == 2

    for export_type, exported in (
        ("openvino", "weights/openvino/model.xml"),
        ("torch", "weights/torch/model.pt"),
    ):
        result = _run(
            "export", "--model", "anomalib_fastflow.FastFlow", "--model.flow_steps", "4",
            "--ckpt_path", str(checkpoint), "--export_type", export_type,
            "--default_root_dir", str(tmp_path / export_type),
            cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert (tmp_path / export_type / exported).is_file()
    monkeypatch.setenv("TRUST_REMOTE_CODE", "1")  # our own file: anomalib's pickle opt-in
    monkeypatch.chdir(tmp_path)  # anomalib's OpenVINO inferencer writes an openvino_cache folder here
    image = read_image(tiny_dataset / "brick" / "test" / "hole" / "000.png", as_tensor=True)
    torch_map = (
        TorchInferencer(tmp_path / "torch" / "weights" / "torch" / "model.pt").predict(image).anomaly_map
    )
    exported_ir = tmp_path / "openvino" / "weights" / "openvino" / "model.xml"
    # anomalib's export wrote our rewrite: every flow's (narrow) permutation is a 1x1 convolution
    assert permutations_as_convolutions(ov.Core().read_model(exported_ir)) == 0
    openvino = openvino_inferencer(exported_ir)
    openvino_map = openvino.predict(image.numpy()).anomaly_map
    np.testing.assert_allclose(openvino_map.squeeze(), torch_map.detach().numpy().squeeze(), atol=1e-4)

    wrong = _run(
        "test", "--model", "anomalib_fastflow.FastFlow", "--ckpt_path", str(checkpoint), "--data", "MVTec",
        "--data.root", str(tiny_dataset), "--data.category", "brick", "--data.num_workers", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert wrong.returncode != 0
    assert "The checkpoint does not fit this FastFlow model" in wrong.stdout + wrong.stderr


def test_demo_reaches_useful_auroc_and_writes_heatmaps(tmp_path: Path) -> None:
    rows = run_demo(
        root=tmp_path / "data", output=tmp_path / "results", categories=["brick"], max_epochs=8
    ).rows
    [row] = rows
    assert row["epochs"] == 8
    assert row["image_AUROC"] >= 0.9, row
    assert row["pixel_AUROC"] >= 0.9, row
    heatmaps = list(Path(row["heatmaps"]).rglob("*.png"))
    assert len(heatmaps) == 12 + 4 * 6  # every test image
    with (tmp_path / "results" / "metrics.csv").open() as file:
        assert [line["category"] for line in csv.DictReader(file)] == ["brick"]

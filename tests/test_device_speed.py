"""The GPU story's command runs on the CPU at a tiny size: every row measured or skipped with its
reason, so it cannot rot while no GPU is at hand (``docs/gpu.md``); the CUDA-graph fast path falls
back with its reason where there is no CUDA."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from anomalib_fastflow import FastFlow
from anomalib_fastflow.benchmark.device_paths import FLOW_MODELS, PATHS
from anomalib_fastflow.benchmark.device_speed import DeviceSpeedConfig, run_device_speed
from anomalib_fastflow.export.cuda_graphs import (
    CudaGraphModel,
    cuda_graph_unavailable_reason,
    fastest_inference,
)

STUDY = Path(__file__).resolve().parents[1] / "studies" / "gpu_story.py"


def _tiny() -> dict[str, object]:
    spec = importlib.util.spec_from_file_location("gpu_story", STUDY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.TINY)


@pytest.mark.slow
def test_every_row_of_the_gpu_story_is_measured_or_skipped_with_its_reason(tmp_path: Path) -> None:
    table = run_device_speed(DeviceSpeedConfig(output=tmp_path, **_tiny()))
    report = json.loads((tmp_path / "device_speed.json").read_text())
    assert (tmp_path / "device_speed.md").read_text() == table
    rows = report["inference"]
    expected = {(model, path) for model in FLOW_MODELS for path in PATHS}
    expected |= {(peer, "eager_fp32") for peer in ("anomalib_patchcore", "anomalib_patchflow")}
    assert {(row["model"], row["path"]) for row in rows} == expected
    for row in rows:
        assert row["status"] in {"ok", "skipped"}, row  # nothing failed
        if row["status"] == "ok":
            assert row["batch1_median_ms"] > 0 and row["batch1_p99_ms"] >= row["batch1_median_ms"]
            assert row["throughput_images_per_s"] > 0 and row["max_map_difference"] >= 0
        else:
            assert row["reason"] and row["reason"] in table
    eager = [row for row in rows if row["path"] == "eager_fp32"]
    assert len(eager) == 4 and all(row["status"] == "ok" and row["max_map_difference"] == 0 for row in eager)
    if not torch.cuda.is_available():
        graph = {row["model"]: row for row in rows if row["path"] == "cuda_graph"}
        assert all(row["reason"] == cuda_graph_unavailable_reason() for row in graph.values())
    assert [row["model"] for row in report["training"]] == list(FLOW_MODELS)
    assert all(row["seconds_per_epoch"] > 0 for row in report["training"])
    assert report["environment"]["device"] in table


def test_the_fast_path_falls_back_to_the_eager_network_with_its_reason() -> None:
    network = FastFlow(input_size=64, flow_steps=2, weights="random").model.eval()
    infer, reason = fastest_inference(network, (1, 3, 64, 64))
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the capture itself runs in the GPU story")
    assert infer is network and reason == cuda_graph_unavailable_reason()
    with pytest.raises(RuntimeError, match="no CUDA device"):
        CudaGraphModel(network, (1, 3, 64, 64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need an NVIDIA GPU; CI has none")
def test_a_captured_network_gives_the_eager_map() -> None:
    network = FastFlow(input_size=64, flow_steps=2, weights="random").model.eval().cuda()
    images = torch.rand(1, 3, 64, 64, device="cuda")
    with torch.inference_mode():
        expected = network(images).anomaly_map.clone()
    captured = CudaGraphModel(network, (1, 3, 64, 64))
    torch.testing.assert_close(captured(images).anomaly_map, expected, atol=1e-4, rtol=1e-4)


def test_the_study_rehearses_with_the_tiny_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []
    spec = importlib.util.spec_from_file_location("gpu_story_cli", STUDY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "run_device_speed", lambda config: calls.append(config) or "table")
    monkeypatch.setattr(sys, "argv", [str(STUDY), "--tiny", "--output", str(tmp_path)])
    module.main()
    [config] = calls
    assert config.input_size == 64 and config.output == tmp_path and config.repeats == module.TINY["repeats"]

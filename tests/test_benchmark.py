"""Benchmark pieces: parameter counts the paper's way, the grid's failure records and resume, reports."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from anomalib.models.image.fastflow.torch_model import create_fast_flow_block
from lightning.pytorch.trainer.states import TrainerFn

from anomalib_fastflow import FastFlow, MVTec
from anomalib_fastflow.benchmark import grid as grid_module
from anomalib_fastflow.benchmark.baselines import (
    anomalib_fastflow,
    anomalib_patchcore,
    anomalib_patchflow,
    describe,
)
from anomalib_fastflow.benchmark.datasets import DataSpec
from anomalib_fastflow.benchmark.epoch_time import (
    EpochTimeRound,
    EpochTimeRow,
    format_epoch_times,
    write_epoch_seconds,
)
from anomalib_fastflow.benchmark.grid import BenchmarkConfig, Timing, run_grid
from anomalib_fastflow.benchmark.inference import inference_cost, parameter_counts
from anomalib_fastflow.benchmark.tables import write_report
from anomalib_fastflow.benchmark.training import TrainingResult, seeded, train_and_test
from anomalib_fastflow.export import tensorrt_unavailable_reason


def test_anomalib_fastflow_on_another_backbone_is_built_as_its_constructor_would() -> None:
    model = anomalib_fastflow("tf_efficientnet_lite0", "random")
    shapes = [(24, 64, 64), (40, 32, 32), (112, 16, 16)]
    expected = [create_fast_flow_block(list(shape), True, 1.0, 8) for shape in shapes]  # the lite0 preset
    for built, reference in zip(model.model.fast_flow_blocks, expected, strict=True):
        assert [p.shape for p in built.parameters()] == [p.shape for p in reference.parameters()]
    assert [list(norm.normalized_shape) for norm in model.model.norms] == [list(s) for s in shapes]
    assert "given our feature extractor" in describe(model)


def test_anomalib_patchflow_gets_our_packaged_weights_input_and_pre_processing() -> None:
    """Patchflow on the offline backbone: the packaged ImageNet weights (nothing downloaded) in its
    own extractor, our preset's input size and normalisation, and a map of that size."""
    from anomalib_fastflow.backbones import create_timm_model

    model = anomalib_patchflow("tf_efficientnet_lite0").eval()
    full = create_timm_model("tf_efficientnet_lite0", "pretrained", (256, 256)).state_dict()
    extractor = model.model.feature_extractor.feature_extractor.state_dict()
    assert extractor and all(torch.equal(tensor, full[key]) for key, tensor in extractor.items())
    assert tuple(model.input_size) == (256, 256)
    assert repr(model.pre_processor.transform) == repr(FastFlow.configure_pre_processor((256, 256)).transform)
    with torch.no_grad():
        out = model.model(torch.rand(1, 3, 256, 256))
    assert out.anomaly_map.shape[-2:] == (256, 256) and out.pred_score.numel() == 1


def test_additional_parameters_are_counted_the_papers_way() -> None:
    ours = FastFlow(weights="random")
    additional, trainable = parameter_counts(ours)
    assert additional == sum(p.numel() for p in ours.model.flows.parameters())  # no norms, no backbone
    assert trainable == additional + sum(p.numel() for p in ours.model.norms.parameters())
    assert parameter_counts(anomalib_patchcore("tf_efficientnet_lite0", "random"))[0] == 0


def test_inference_cost_splits_backbone_and_additional_time() -> None:
    model = FastFlow(weights="random", input_size=64, flow_steps=2)
    cost = inference_cost(
        model, np.random.rand(2, 3, 64, 64).astype(np.float32), "torch", Path("unused"), 1, 3
    )
    assert (
        cost.backbone.median_ms > 0 and cost.model.median_ms > 0
    )  # both timed (how they compare: benchmarks)
    assert cost.additional_ms == pytest.approx(cost.model.median_ms - cost.backbone.median_ms)
    with pytest.raises(ValueError, match="Unknown runtime 'tensorflow'"):
        inference_cost(model, np.zeros((1, 3, 64, 64), np.float32), "tensorflow", Path("unused"))


def test_exported_runtimes_share_one_onnx_export(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    model = FastFlow(weights="random", input_size=64, flow_steps=2)
    calls = []
    to_onnx = model.to_onnx
    monkeypatch.setattr(
        model, "to_onnx", lambda *args, **kwargs: calls.append(args) or to_onnx(*args, **kwargs)
    )
    images, exports = np.random.rand(1, 3, 64, 64).astype(np.float32), {}
    for runtime in ("onnxruntime", "openvino"):
        cost = inference_cost(model, images, runtime, tmp_path, 1, 2, exports)
        assert cost.model.median_ms > 0 and cost.backbone.median_ms > 0
    assert len(calls) == 1
    assert set(exports) == {"onnx", "openvino_fp32"}


def test_time_to_accuracy_counts_the_fixed_cost_and_the_epochs_up_to_the_first_hit() -> None:
    result = TrainingResult(
        0.9,
        0.9,
        fit_seconds=20.0,
        epoch_seconds=[5.0, 3.0, 3.0, 3.0],
        epoch_image_aurocs=[0.7, 0.85, 0.95, 0.9],
    )
    assert result.seconds_to_reach(0.8) == pytest.approx(6.0 + 5.0 + 3.0)
    assert result.seconds_to_reach(0.99) is None
    assert result.seconds_per_epoch == pytest.approx(3.5)


def test_a_few_training_images_stay_the_training_set_through_the_trainers_setup(tiny_dataset: Path) -> None:
    spec = DataSpec("MVTec", tiny_dataset, ["brick"], batch_size=2)
    full = spec.datamodule("brick")
    full.setup(TrainerFn.FITTING)
    few = spec.datamodule("brick", train_images=3)
    few.setup(TrainerFn.FITTING)  # what Engine.fit does: it must not rebuild the full split
    assert list(few.train_data.samples.image_path) == list(full.train_data.samples.image_path[:3])
    with pytest.raises(
        ValueError, match=f"train_images=999, but {tiny_dataset}/brick has {len(full.train_data)}"
    ):
        spec.datamodule("brick", train_images=999)


@pytest.mark.slow
def test_grid_records_failures_resumes_and_reports(tiny_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    config = BenchmarkConfig(
        models=["fastflow", "anomalib_patchcore"],
        backbones=["tf_efficientnet_lite0", "not_a_timm_model"],
        data=DataSpec("MVTec", tiny_dataset, ["brick"], batch_size=4),
        epochs={"fastflow": 1, "anomalib_patchcore": 1},
        runtimes={"fastflow": ["torch", "tensorrt"], "anomalib_patchcore": ["torch"]},
        model_options={"anomalib_patchcore": {"coreset_sampling_ratio": 0.05}},
        patchcore_bank_sizes=[500],
        timing=Timing(warmup=1, repeats=2),
        output=tmp_path / "bench",
    )
    accuracy, cost = run_grid(config)
    status = {(row["model"], row["backbone"]): row["status"] for row in accuracy}
    assert status == {
        ("fastflow", "tf_efficientnet_lite0"): "ok",
        ("anomalib_patchcore", "tf_efficientnet_lite0"): "ok",
        ("fastflow", "not_a_timm_model"): "failed",
        ("anomalib_patchcore", "not_a_timm_model"): "failed",
    }
    pages = sorted(path.parent.name for path in (tmp_path / "bench" / "reports").glob("*/index.html"))
    assert pages == [
        "anomalib_patchcore_tf_efficientnet_lite0",
        "fastflow_tf_efficientnet_lite0",
    ]  # trained runs only
    assert len(list((tmp_path / "bench" / "reports" / pages[1] / "images").glob("*.jpg"))) == 4 + 8
    failed = next(row for row in accuracy if row["model"] == "fastflow" and row["status"] == "failed")
    assert "not_a_timm_model" in failed["error"]
    ok = [row for row in accuracy if row["status"] == "ok"]
    assert all(0 <= float(row["pixel_AUPRO"]) <= 1 for row in ok)
    assert {row["model"] for row in cost} == {"fastflow", "anomalib_patchcore", "anomalib_patchcore_bank500"}
    tensorrt = next(row for row in cost if row["runtime"] == "tensorrt")
    reason = tensorrt_unavailable_reason()
    assert (tensorrt["status"], tensorrt["error"]) == (("skipped", reason) if reason else ("ok", ""))

    def must_not_train(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(grid_module, "train_and_test", must_not_train)
    config.backbones = ["tf_efficientnet_lite0"]
    again, _ = run_grid(config)  # resumes: every requested run is done
    assert len(again) == 4

    report = write_report(again, cost, tmp_path / "bench", "# test")
    assert "| fastflow | tf_efficientnet_lite0 | torch |" in report
    assert "## Failed or skipped runs" in report and "not_a_timm_model" in report
    assert reason is None or f"fastflow tf_efficientnet_lite0 tensorrt (skipped): {reason}" in report
    assert (tmp_path / "bench" / "accuracy_vs_time.png").stat().st_size > 0
    assert (tmp_path / "bench" / "auroc_per_category.png").stat().st_size > 0


def test_cli_commands_have_their_documented_names(tmp_path: Path, monkeypatch) -> None:
    from anomalib_fastflow import cli
    from anomalib_fastflow.data import demo, line
    from anomalib_fastflow.data.demo import ALL_CATEGORIES

    monkeypatch.setattr(
        "sys.argv", ["anomalib-fastflow", "build-demo-data", "--root", str(tmp_path / "demo")]
    )
    calls = []
    monkeypatch.setattr(
        demo, "build_demo_dataset", lambda root, categories, seed: calls.append((root, categories))
    )
    monkeypatch.setattr(
        line, "build_line_dataset", lambda root, categories, seed: calls.append((root, categories))
    )
    cli.main()
    assert calls == [(tmp_path / "demo", list(demo.CATEGORIES)), (tmp_path / "demo", list(line.CATEGORIES))]
    assert list(demo.CATEGORIES) + list(line.CATEGORIES) == list(ALL_CATEGORIES)


@pytest.mark.slow
def test_grid_also_tests_on_the_disturbed_copy(tiny_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    config = BenchmarkConfig(
        models=["fastflow"],
        backbones=["tf_efficientnet_lite0"],
        data=DataSpec("MVTec", tiny_dataset, ["brick"], batch_size=4),
        epochs={"fastflow": 1},
        runtimes={},
        model_options={"fastflow": {"flow_steps": 2}},
        test_sets=["aligned", "disturbed"],
        disturbed_copies=2,
        output=tmp_path / "bench",
    )
    accuracy, cost = run_grid(config)
    rows = {row["test_set"]: row for row in accuracy}
    assert set(rows) == {"aligned", "disturbed"} and all(row["status"] == "ok" for row in rows.values())
    metrics = ("image_AUROC", "pixel_AUROC", "pixel_AUPRO")
    assert all(0 <= float(rows["disturbed"][name]) <= 1 for name in metrics)
    assert rows["disturbed"]["image_AUROC"] != rows["aligned"]["image_AUROC"] or (
        rows["disturbed"]["pixel_AUROC"] != rows["aligned"]["pixel_AUROC"]
    )  # another test set, not the aligned one again
    test_images = list((tiny_dataset / "brick" / "test").rglob("*.png"))
    disturbed = list((tmp_path / "bench" / "disturbed_data" / "brick" / "test").rglob("*.png"))
    assert len(disturbed) == 2 * len(test_images)

    report = write_report(accuracy, cost, tmp_path / "bench", "# test")
    assert "## Aligned against disturbed" in report
    assert "| fastflow | tf_efficientnet_lite0 | 1 |" in report

    def must_not_train(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(grid_module, "train_and_test", must_not_train)
    with (tmp_path / "bench" / "accuracy.csv").open() as file:  # a file written before test sets existed
        rows = [row for row in csv.DictReader(file) if row["test_set"] == "aligned"]
    old = [{name: value for name, value in row.items() if name != "test_set"} for row in rows]
    with (tmp_path / "bench" / "accuracy.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(old[0]))
        writer.writeheader()
        writer.writerows(old)
    config.test_sets = ["aligned"]
    resumed, _ = run_grid(config)  # its runs count as aligned: nothing is trained again
    assert [row["test_set"] for row in resumed] == ["aligned"]


BENCHMARK_CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "benchmark").glob("*.yaml"))


@pytest.mark.parametrize("config", BENCHMARK_CONFIGS, ids=[path.stem for path in BENCHMARK_CONFIGS])
def test_benchmark_configs_parse(config: Path, monkeypatch, capsys) -> None:
    from anomalib_fastflow import cli

    monkeypatch.setattr(
        "sys.argv", ["anomalib-fastflow", "benchmark", "--config", str(config), "--print_config"]
    )
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "models:" in printed and "fastflow" in printed


def test_a_rounds_steady_epoch_ignores_its_first_epoch_and_a_slowed_one() -> None:
    measured = EpochTimeRound(
        ours_epochs=[4.0, 1.0, 1.1, 3.0, 1.0],
        theirs_epochs=[2.5, 2.0, 2.2, 2.0, 6.0],
    )
    assert measured.ours_first_epoch == 4.0
    assert measured.ours_cached_epoch == pytest.approx(1.05)  # the mean, 1.525, would count the 3 s epoch
    assert measured.theirs_epoch == pytest.approx(2.1)
    assert measured.cached_ratio == pytest.approx(1.05 / 2.1)


def _round(ours_first: float, ours_cached: float, theirs: float) -> EpochTimeRound:
    return EpochTimeRound(ours_epochs=[ours_first, ours_cached, ours_cached], theirs_epochs=[theirs] * 3)


def test_epoch_time_ratios_are_medians_over_rounds() -> None:
    slow_round = _round(4.0, 2.0, 2.0)
    rounds = [_round(4.0, 1.0, 2.0), slow_round, _round(4.0, 1.2, 2.0)]
    row = EpochTimeRow(backbone="resnet18", images=4, epochs=8, rounds=rounds)
    assert row.median("cached_ratio") == pytest.approx(0.6)  # the slow round does not move it
    # 25 epochs with 4 views: 4 filling epochs at 4 s and 21 cached, per round, over 2 s epochs.
    assert row.ratio(25, 4) == pytest.approx((4 * 4.0 + 21 * 1.2) / 25 / 2.0)
    table = format_epoch_times([row])
    assert "| resnet18 | 4 | 8 x 3 |" in table and "0.60x (0.50-1.00)" in table


def test_every_measured_epoch_is_written(tmp_path: Path) -> None:
    measured = EpochTimeRound(ours_epochs=[4.0, 1.0, 1.5], theirs_epochs=[2.5, 2.0, 2.25])
    row = EpochTimeRow(backbone="resnet18", images=4, epochs=3, rounds=[measured, measured])
    write_epoch_seconds([row], tmp_path / "epoch_time.csv")
    with (tmp_path / "epoch_time.csv").open() as file:
        written = list(csv.DictReader(file))
    assert len(written) == 2 * 2 * 3  # rounds x models x epochs
    theirs = [
        float(line["seconds"]) for line in written if (line["round"], line["model"]) == ("1", "anomalib")
    ]
    assert theirs == [2.5, 2.0, 2.25]


def test_seeded_models_start_from_the_seed_whatever_ran_before() -> None:
    first = seeded(lambda: FastFlow(input_size=64, flow_steps=2), 0)
    torch.rand(10), np.random.rand(10)  # draws of an earlier run in the same process
    second = seeded(lambda: FastFlow(input_size=64, flow_steps=2), 0)
    unseeded = FastFlow(input_size=64, flow_steps=2)
    first_state, second_state, unseeded_state = first.state_dict(), second.state_dict(), unseeded.state_dict()
    assert any(key.endswith(".permutation") for key in first_state)  # FrEIA draws these from numpy
    for key, value in first_state.items():
        torch.testing.assert_close(value, second_state[key], rtol=0, atol=0, equal_nan=True, msg=key)
    network = [key for key in first_state if key.startswith("model.flows.")]
    assert not all(torch.equal(first_state[key], unseeded_state[key]) for key in network)


@pytest.mark.slow
def test_runs_that_only_measure_time_write_no_checkpoint(tiny_dataset: Path, tmp_path: Path) -> None:
    for test in (True, False):
        model = seeded(lambda: FastFlow(input_size=64, flow_steps=2), 0)
        datamodule = MVTec(
            root=tiny_dataset, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0
        )
        result = train_and_test(model, datamodule, 1, tmp_path / f"test_{test}", test=test)
        assert len(result.epoch_seconds) == 1
        assert bool(list((tmp_path / f"test_{test}").rglob("*.ckpt"))) == test

"""Export parity on demo data: ONNX Runtime, OpenVINO FP32/FP16/INT8/bf16 against PyTorch; TensorRT on a GPU.

Nothing here may depend on a runtime's host-dependent defaults: OpenVINO runs FP32 models in
bf16 on CPUs with AVX-512 BF16 or AMX unless told otherwise, so the tests also run our OpenVINO
code under a Core whose default is bf16 (as on those CPUs, wherever OpenVINO can run bf16).
"""

from collections import Counter
from itertools import takewhile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from anomalib.data.utils import read_image
from anomalib.deploy import OpenVINOInferencer
from anomalib.engine import Engine
from lightning.pytorch import seed_everything

from anomalib_fastflow import FastFlow, MVTec, build_demo_dataset
from anomalib_fastflow.data.arrays import split_arrays
from anomalib_fastflow.export import (
    OnnxRuntime,
    OpenVINORuntime,
    TensorRTInferencer,
    TorchRuntime,
    build_engine,
    export_formats,
    openvino_bf16_unavailable_reason,
    openvino_inferencer,
    tensorrt_unavailable_reason,
    torch_bf16_unavailable_reason,
)
from anomalib_fastflow.export.check import export_and_check
from anomalib_fastflow.export.mixed_precision import KEEP_PRECISION, KEPT_PRECISION, keep_stem_f32
from anomalib_fastflow.export.openvino_compile import compiled_precision, weights_precision
from anomalib_fastflow.hardware import describe_cpu


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A FastFlow trained for 8 epochs on the demo's brick category, its checkpoint and data."""
    root = tmp_path_factory.mktemp("export")
    data = build_demo_dataset(root / "data", ["brick"], seed=0)
    seed_everything(0)
    datamodule = MVTec(root=data, category="brick", train_batch_size=8, eval_batch_size=8, num_workers=0)
    Engine(max_epochs=8, default_root_dir=root / "results", logger=False).fit(
        FastFlow(), datamodule=datamodule
    )
    [checkpoint] = (root / "results").glob("FastFlow/MVTec/brick/v0/weights/lightning/model.ckpt")
    return {"root": root, "data": data, "checkpoint": checkpoint}


@pytest.fixture(scope="module")
def report(trained: dict[str, Path]) -> dict[str, object]:
    """The export command's rows, one per format, plus where it wrote the files."""
    output = trained["root"] / "exported"
    formats = [
        "onnx",
        "openvino_fp32",
        "openvino_fp16",
        "openvino_int8",
        "openvino_int8_ptq",
        "openvino_bf16",
    ]
    rows = export_and_check(
        trained["checkpoint"], trained["data"], "brick", output=output, formats=formats, repeats=2
    ).rows
    return {"rows": {row.name: row for row in rows}, "output": output}


@pytest.fixture
def bf16_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenVINO as on a CPU with AVX-512 BF16 or AMX: compiling without a precision hint runs bf16."""
    import openvino

    class Bf16DefaultCore(openvino.Core):
        def compile_model(self, model, device_name=None, config=None):
            return super().compile_model(
                model, device_name, {"INFERENCE_PRECISION_HINT": "bf16", **(config or {})}
            )

    monkeypatch.setattr(openvino, "Core", Bf16DefaultCore)


@pytest.mark.slow
def test_fp32_runtimes_match_pytorch(report: dict[str, object]) -> None:
    rows = report["rows"]
    assert rows["torch"].image_auroc > 0.9
    for name in ("onnx", "openvino_fp32"):
        assert rows[name].precision == "f32", rows[name]
        assert rows[name].max_relative <= 1e-4, rows[name]
        assert round(rows[name].image_auroc, 3) == round(rows["torch"].image_auroc, 3)
    for name in ("openvino_fp16", "openvino_int8"):  # reduced weights, f32 activations
        assert rows[name].precision == "f32", rows[name]


@pytest.mark.slow
def test_parity_report_names_the_cpu_and_each_formats_precision(report: dict[str, object]) -> None:
    text = (report["output"] / "parity.md").read_text()
    assert describe_cpu() in text
    assert "| runs in |" in text and "| openvino_fp32 | f32 |" in text


@pytest.mark.slow
def test_openvino_fp32_stays_f32_where_the_host_defaults_to_bf16(
    report: dict[str, object], bf16_by_default: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # anomalib's inferencer writes an openvino_cache folder here
    path = report["output"] / "openvino_fp32" / "model.xml"
    assert OpenVINORuntime(path).precision == "f32"
    assert compiled_precision(openvino_inferencer(path).model) == "f32"
    if openvino_bf16_unavailable_reason() is None:  # the fixture really makes the default bf16 here
        assert compiled_precision(OpenVINOInferencer(path, device="CPU").model) == "bf16"


@pytest.mark.slow
def test_bf16_formats_are_measured_or_listed_with_the_reason(report: dict[str, object]) -> None:
    """Every CPU: the bf16 IR is written, and each bf16 format is either a row or a skip with its reason."""
    rows, text = report["rows"], (report["output"] / "parity.md").read_text()
    assert (report["output"] / "openvino_bf16" / "model.xml").is_file()  # written on any CPU
    for name, reason in (
        ("openvino_bf16", openvino_bf16_unavailable_reason()),
        ("torch_bf16", torch_bf16_unavailable_reason()),
    ):
        assert (name in rows) == (reason is None), (name, reason)
        assert reason is None or f"{name}: skipped: {reason}" in text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "precision", "unavailable"),
    [
        (
            "openvino_bf16",
            "bf16+f32",
            openvino_bf16_unavailable_reason,
        ),  # bf16 but for the image's first stage
        ("torch_bf16", "bfloat16 autocast", torch_bf16_unavailable_reason),
    ],
)
def test_bf16_runs_in_bf16_and_keeps_auroc(
    report: dict[str, object], name: str, precision: str, unavailable
) -> None:
    if reason := unavailable():
        pytest.skip(reason)
    row, reference = report["rows"][name], report["rows"]["torch"]
    assert row.precision == precision
    assert row.max_relative > 1e-3, row  # really bf16
    assert abs(row.image_auroc - reference.image_auroc) <= 0.01, row


def test_bf16_that_does_not_compile_is_a_reason_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """As under ``ONEDNN_MAX_CPU_ISA=AVX2`` on a bf16 CPU: OpenVINO reports bf16 but cannot build it."""
    import openvino

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Exception from plugin.cpp:54:\ncould not create a primitive descriptor\n")

    monkeypatch.setattr(openvino.Core, "compile_model", refuse)
    openvino_bf16_unavailable_reason.cache_clear()
    try:
        reason = openvino_bf16_unavailable_reason()
    finally:
        openvino_bf16_unavailable_reason.cache_clear()
    expected = f"OpenVINO cannot compile bf16 on CPU of this machine ({describe_cpu()}): could not create"
    assert reason == f"{expected} a primitive descriptor"


@pytest.mark.slow
def test_weights_precision_is_read_from_the_file(report: dict[str, object]) -> None:
    output = report["output"]
    assert weights_precision(output / "openvino_fp32" / "model.xml") == "fp32"
    assert weights_precision(output / "openvino_fp16" / "model.xml") == "fp16"
    assert weights_precision(output / "openvino_int8" / "model.xml") == "int8"
    assert weights_precision(output / "openvino_int8_ptq" / "model.xml") == "int8"
    assert weights_precision(output / "openvino_bf16" / "model.xml") == "bf16"


@pytest.mark.slow
def test_openvino_bf16_keeps_the_first_stage_f32_and_nothing_after_it(report: dict[str, object]) -> None:
    import openvino

    model = openvino.Core().read_model(report["output"] / "openvino_bf16" / "model.xml")
    ops = model.get_ordered_ops()
    kept = {op.get_friendly_name() for op in ops if KEPT_PRECISION in op.get_rt_info()}
    convolutions = [op for op in ops if op.get_type_name() in ("Convolution", "GroupConvolution")]
    full_detail = lambda op: op.get_output_partial_shape(0)[2].get_length() >= 128  # noqa: E731 (256 px input)
    first_stage = list(takewhile(full_detail, convolutions))  # the map's smoothing at the end is not in it
    assert first_stage and {op.get_friendly_name() for op in first_stage} <= kept
    assert not any(op.get_friendly_name() in kept for op in convolutions[len(first_stage) :])
    assert not any(op.get_friendly_name() in kept for op in ops if op.get_type_name() == "MVN")


@pytest.mark.slow
def test_openvino_bf16_compiles_the_first_stage_f32_and_the_rest_bf16(report: dict[str, object]) -> None:
    """What the CPU plugin makes of the marks, where it runs bf16."""
    import openvino

    if reason := openvino_bf16_unavailable_reason():
        pytest.skip(reason)
    model = openvino.Core().read_model(report["output"] / "openvino_bf16" / "model.xml")
    convolutions = [
        op for op in model.get_ordered_ops() if op.get_type_name() in ("Convolution", "GroupConvolution")
    ]
    first_names = {op.get_friendly_name() for op in convolutions if KEPT_PRECISION in op.get_rt_info()}
    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    runs_in = {
        op.get_friendly_name(): op.input_value(0).get_element_type().get_type_name()
        for op in compiled.get_runtime_model().get_ops()
        if op.get_rt_info()["layerType"].astype(str) == "Convolution"
    }
    assert first_names and {runs_in[name] for name in first_names} == {"f32"}, runs_in
    later = {precision for name, precision in runs_in.items() if name not in first_names}
    assert later == {"bf16"}, runs_in


@pytest.mark.slow
def test_the_stem_can_end_after_its_first_convolution(report: dict[str, object]) -> None:
    import openvino

    path = report["output"] / "openvino_fp32" / "model.xml"
    model = openvino.Core().read_model(path)
    marked = keep_stem_f32(model, (256, 256), max_convolutions=1)
    ops = model.get_ordered_ops()
    convolutions = [op for op in ops if op.get_type_name() in ("Convolution", "GroupConvolution")]
    assert [op for op in convolutions if KEEP_PRECISION in op.get_rt_info()] == convolutions[:1]
    assert 0 < marked < keep_stem_f32(openvino.Core().read_model(path), (256, 256))  # the whole first stage


@pytest.mark.slow
def test_openvino_inferencer_refuses_another_precision_or_a_missing_device(report: dict[str, object]) -> None:
    output = report["output"]
    fp16 = output / "openvino_fp16" / "model.xml"
    with pytest.raises(
        ValueError, match=r"openvino_fp16/model.xml holds a FP16 model, but precision='fp32' asks for a FP32"
    ):
        openvino_inferencer(fp16, precision="fp32")
    with pytest.raises(ValueError, match=r"holds a FP32 model, but precision='int8' asks for a INT8"):
        openvino_inferencer(output / "openvino_fp32" / "model.xml", precision="int8")
    with pytest.raises(ValueError, match=r"holds a FP32 model, but precision='bf16' asks for a BF16"):
        openvino_inferencer(output / "openvino_fp32" / "model.xml", precision="bf16")
    with pytest.raises(
        ValueError, match=r"OpenVINO device 'NPU.3' does not exist on this machine; it sees \['CPU'"
    ):
        openvino_inferencer(fp16, precision="fp16", device="NPU.3")
    with pytest.raises(ValueError, match=r"precision='fp64': choose from \['fp32', 'fp16', 'int8', 'bf16'\]"):
        openvino_inferencer(fp16, precision="fp64")
    with pytest.raises(FileNotFoundError, match=r"OpenVINO model not found: .*missing\.xml"):
        openvino_inferencer(output / "missing.xml")


@pytest.mark.slow
def test_reduced_precision_keeps_auroc(report: dict[str, object]) -> None:
    rows = report["rows"]
    for name in ("openvino_fp16", "openvino_int8"):
        assert abs(rows[name].image_auroc - rows["torch"].image_auroc) <= 0.01, rows[name]
    ptq = rows["openvino_int8_ptq"]
    # activations really quantised (u8, or i8+u8 where the CPU has AMX INT8)
    assert set(ptq.precision.split("+")) <= {"i8", "u8"} and ptq.max_relative > 1e-3, ptq
    assert ptq.image_auroc >= rows["torch"].image_auroc - 0.05, (
        ptq
    )  # docs/export_parity_demo.md: 0.9965 vs 1.0
    assert f"| openvino_int8_ptq | {ptq.precision} |" in (report["output"] / "parity.md").read_text()


@pytest.mark.slow
def test_onnx_graph_permutes_by_gather_without_dense_matmuls(report: dict[str, object]) -> None:
    graph = onnx.load(str(report["output"] / "weights" / "onnx" / "model.onnx")).graph
    ops = Counter(node.op_type for node in graph.node)
    assert ops["MatMul"] == 0 and ops["Gemm"] == 0
    assert ops["Gather"] >= 3 * 8  # one per flow step
    assert [output.name for output in graph.output][:4] == [
        "pred_score",
        "pred_label",
        "anomaly_map",
        "pred_mask",
    ]


@pytest.mark.slow
def test_openvino_formats_permute_channels_by_convolution_except_ptq(report: dict[str, object]) -> None:
    """The demo's flows (24-112 channels) permute by 1x1 convolutions in every IR but PTQ's."""
    import openvino

    def count(name: str, op_type: str) -> int:
        model = openvino.Core().read_model(report["output"] / name / "model.xml")
        return sum(op.get_type_name() == op_type for op in model.get_ops())

    for name in ("openvino_fp32", "openvino_fp16", "openvino_int8", "openvino_bf16"):
        # one per flow step
        assert count("openvino_int8_ptq", "Gather") - count(name, "Gather") == 3 * 8, name
        assert count(name, "Convolution") - count("openvino_int8_ptq", "Convolution") == 3 * 8, name


@pytest.mark.slow
def test_anomalib_openvino_inferencer_matches_the_checkpoint(
    trained: dict[str, Path], report: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # anomalib's inferencer writes an openvino_cache folder here
    model = FastFlow.from_checkpoint(trained["checkpoint"])
    image_path = trained["data"] / "brick" / "test" / "stain" / "000.png"
    images, _ = split_arrays(trained["data"], "brick", "test", tuple(model.input_size))
    inferencer = openvino_inferencer(report["output"] / "openvino_fp32" / "model.xml")
    predicted = inferencer.predict(images[0])
    expected = TorchRuntime(model)(images[:1])
    np.testing.assert_allclose(predicted.anomaly_map, expected["anomaly_map"], atol=1e-4)
    raw = inferencer.predict(image_path)  # the 160 px file as it is: the graph resizes it itself
    raw_image = read_image(image_path, as_tensor=True)[None].numpy()
    assert raw_image.shape[-2:] == (160, 160)
    np.testing.assert_allclose(raw.anomaly_map, TorchRuntime(model)(raw_image)["anomaly_map"], atol=1e-4)


@pytest.mark.slow
def test_runtime_refuses_images_without_three_channels(report: dict[str, object]) -> None:
    runtime = OnnxRuntime(report["output"] / "weights" / "onnx" / "model.onnx")
    with pytest.raises(
        ValueError, match=r"Expected RGB images of shape \(N, 3, H, W\), got shape \(1, 1, 256, 256\)"
    ):
        runtime(np.zeros((1, 1, 256, 256), dtype=np.float32))


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "patchcore.ckpt"
    torch.save({"state_dict": {"model.memory_bank": torch.zeros(4, 8)}, "hyper_parameters": {}}, path)
    with pytest.raises(ValueError, match="is not a FastFlow checkpoint"):
        FastFlow.from_checkpoint(path)


def test_unknown_export_format_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"Unknown export formats \['coreml'\]"):
        export_formats(FastFlow(input_size=64, flow_steps=2), tmp_path, ["onnx", "coreml"])


@pytest.mark.slow
@pytest.mark.skipif(tensorrt_unavailable_reason() is not None, reason=str(tensorrt_unavailable_reason()))
@pytest.mark.parametrize("fp16", [False, True])
def test_tensorrt_engine_matches_pytorch(
    trained: dict[str, Path], report: dict[str, object], fp16: bool
) -> None:
    model = FastFlow.from_checkpoint(trained["checkpoint"])
    size = tuple(model.input_size)
    onnx_path = report["output"] / "weights" / "onnx" / "model.onnx"
    engine = build_engine(
        onnx_path, trained["root"] / f"trt{fp16}.engine", size, fp16=fp16, batch_sizes=(1, 4, 8)
    )
    images, _ = split_arrays(trained["data"], "brick", "test", size)
    predicted = TensorRTInferencer(engine).predict(images[:4])
    expected = TorchRuntime(model)(images[:4])
    np.testing.assert_allclose(predicted.anomaly_map, expected["anomaly_map"], atol=1e-2 if fp16 else 1e-4)

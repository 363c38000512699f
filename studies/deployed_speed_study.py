"""Deployed speed: our exported FastFlow against anomalib's Fastflow exported the anomalib way, interleaved.

    python studies/deployed_speed_study.py --backbones tf_efficientnet_lite0 resnet18 wide_resnet50_2 \
        --output docs/deployed_speed

Both models are built on each backbone with random weights (latency does not depend on their
values) and the same preset (flow steps, kernels, hidden ratio). Ours is written by our exporter
(``export_formats``: ``onnx``, ``openvino_fp32`` and, where the CPU runs bf16, ``openvino_bf16``);
anomalib's by ``Engine.export`` (ONNX, and OpenVINO converted from that ONNX file: what
``anomalib export`` writes). The pre-processed backbone alone is exported once to ONNX with a free
batch axis. In each runtime and at each batch size the backbone, ours and anomalib's take turns in
every round (``timing.interleaved_latencies``), so a slow spell of the machine hits all three alike.
Every OpenVINO graph is compiled by the same runtime class (f32 or bf16 inference precision, batch
fixed); anomalib's bf16 row is its FP32 IR compiled at bf16, ours the ``openvino_bf16`` file (first
stage kept f32).

Writes ``<output>/runs.csv`` (one row per backbone, runtime and batch size: median, min and max ms
of each of the three, and the time each model adds on top of the backbone) and
``<output>/README.md`` (the tables, the CPU named; with ``--profile`` also the time by op type at
batch 1). The exported files go to a temporary folder.
"""

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
import torch
from anomalib.deploy import ExportType
from anomalib.engine import Engine

from anomalib_fastflow import FastFlow
from anomalib_fastflow.benchmark.baselines import anomalib_fastflow
from anomalib_fastflow.benchmark.inference import ModuleRuntime, PreProcessedBackbone, backbone_onnx
from anomalib_fastflow.export import OnnxRuntime, OpenVINORuntime, TorchRuntime, export_formats
from anomalib_fastflow.export.availability import openvino_bf16_unavailable_reason
from anomalib_fastflow.export.parity import measure_latencies
from anomalib_fastflow.export.runtimes import Runtime
from anomalib_fastflow.provenance import provenance
from anomalib_fastflow.timing import Latency

RUNTIMES = ("torch", "onnxruntime", "openvino", "openvino_bf16")
MODELS = ("backbone", "ours", "anomalib")
FIELDS = ["backbone", "runtime", "batch_size", "repeats"]
FIELDS += [f"{model}_{stat}_ms" for model in MODELS for stat in ("median", "min", "max")]
FIELDS += ["ours_added_ms", "anomalib_added_ms", "added_ratio"]


def export_both(backbone: str, output: Path, runtimes: list[str]) -> dict[str, dict[str, object]]:
    """Build both models and their backbone, export them; per model, ``{"module", "onnx", "openvino", ...}``."""
    torch.manual_seed(0)
    ours = FastFlow(backbone=backbone, weights="random").eval()
    theirs = anomalib_fastflow(backbone, weights="random").eval()
    formats = ["onnx", "openvino_fp32"] + (["openvino_bf16"] if "openvino_bf16" in runtimes else [])
    paths, _ = export_formats(ours, output / "ours", formats)
    engine = Engine(default_root_dir=output / "engine", logger=False)
    their_onnx = engine.export(theirs, ExportType.ONNX, export_root=output / "anomalib")
    their_openvino = engine.export(theirs, ExportType.OPENVINO, export_root=output / "anomalib")
    size = tuple(ours.input_size)
    backbone_path = backbone_onnx(PreProcessedBackbone(ours), size, output / "backbone")
    return {
        "backbone": {"module": PreProcessedBackbone(ours), "onnx": backbone_path, "openvino": backbone_path},
        "ours": {
            "module": ours,
            "onnx": paths["onnx"],
            "openvino": paths["openvino_fp32"],
            "bf16": paths.get("openvino_bf16"),
        },
        "anomalib": {
            "module": theirs,
            "onnx": their_onnx,
            "openvino": their_openvino,
            "bf16": their_openvino,
        },
    }


def load(models: dict[str, dict[str, object]], runtime: str) -> dict[str, Runtime]:
    """The backbone, ours and anomalib's loaded in ``runtime``."""
    if runtime == "torch":
        return {
            "backbone": ModuleRuntime(models["backbone"]["module"]),
            "ours": TorchRuntime(models["ours"]["module"]),
            "anomalib": TorchRuntime(models["anomalib"]["module"]),
        }
    if runtime == "onnxruntime":
        return {name: OnnxRuntime(model["onnx"]) for name, model in models.items()}
    if runtime == "openvino":
        return {name: OpenVINORuntime(model["openvino"]) for name, model in models.items()}
    # bf16: the backbone's ONNX file compiled at bf16 as well, so the difference is the head's
    return {
        "backbone": OpenVINORuntime(models["backbone"]["openvino"], inference_precision="bf16"),
        "ours": OpenVINORuntime(models["ours"]["bf16"], inference_precision="bf16"),
        "anomalib": OpenVINORuntime(models["anomalib"]["bf16"], inference_precision="bf16"),
    }


def row(
    backbone: str, runtime: str, batch_size: int, repeats: int, latencies: dict[str, Latency]
) -> dict[str, object]:
    """One CSV row: each model's median, min and max, the time each adds to the backbone, their ratio."""
    values: dict[str, object] = {
        "backbone": backbone,
        "runtime": runtime,
        "batch_size": batch_size,
        "repeats": repeats,
    }
    for name, latency in latencies.items():
        values.update(
            {
                f"{name}_median_ms": latency.median_ms,
                f"{name}_min_ms": latency.min_ms,
                f"{name}_max_ms": latency.max_ms,
            }
        )
    ours = latencies["ours"].median_ms - latencies["backbone"].median_ms
    theirs = latencies["anomalib"].median_ms - latencies["backbone"].median_ms
    values.update({"ours_added_ms": ours, "anomalib_added_ms": theirs, "added_ratio": ours / theirs})
    return {key: f"{value:.2f}" if isinstance(value, float) else value for key, value in values.items()}


def openvino_profile(path: Path, images: np.ndarray, runs: int = 10) -> dict[str, float]:
    """Milliseconds per call by OpenVINO layer type (``PERF_COUNT``), f32, batch fixed to ``len(images)``."""
    import openvino

    from anomalib_fastflow.export.openvino_compile import precision_config, read_model

    core = openvino.Core()
    compiled = core.compile_model(
        read_model(path, len(images), core), "CPU", {**precision_config("f32"), "PERF_COUNT": True}
    )
    request = compiled.create_infer_request()
    for _ in range(3):
        request.infer(images)
    totals: dict[str, float] = {}
    for _ in range(runs):
        request.infer(images)
        for info in request.profiling_info:
            if info.status == openvino.ProfilingInfo.Status.EXECUTED:
                totals[info.node_type] = (
                    totals.get(info.node_type, 0.0) + info.real_time.total_seconds() * 1000 / runs
                )
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def onnxruntime_profile(path: Path, images: np.ndarray, output: Path, runs: int = 10) -> dict[str, float]:
    """Milliseconds per call by ONNX operator type (ONNX Runtime's profiler)."""
    import json

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    options.profile_file_prefix = str(output / "ort_profile")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(3 + runs):
        session.run(None, {name: images})
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    kernels = kernels[len(kernels) * 3 // (3 + runs) :]  # the timed runs only
    totals: dict[str, float] = {}
    for event in kernels:
        op = event["args"]["op_name"]
        totals[op] = totals.get(op, 0.0) + event["dur"] / 1000 / runs
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def profile_table(profiles: dict[str, dict[str, float]], top: int = 12) -> str:
    """Markdown: ms per call by op type, one column per model, the ``top`` op types by their largest entry."""
    names = list(profiles)
    ops = sorted(
        {op for p in profiles.values() for op in p},
        key=lambda op: -max(p.get(op, 0.0) for p in profiles.values()),
    )
    lines = ["| op type | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for op in ops[:top]:
        lines.append(f"| {op} | " + " | ".join(f"{profiles[n].get(op, 0.0):.2f}" for n in names) + " |")
    lines.append("| **all** | " + " | ".join(f"{sum(profiles[n].values()):.2f}" for n in names) + " |")
    return "\n".join(lines)


def report(rows: list[dict[str, str]]) -> str:
    """Markdown: per backbone and batch size, added ms ours / anomalib's (ratio) in each runtime."""
    runtimes = [name for name in RUNTIMES if any(r["runtime"] == name for r in rows)]
    lines = [
        "| backbone | batch | " + " | ".join(runtimes) + " |",
        "|---|---|" + "---|" * len(runtimes),
    ]
    keys = dict.fromkeys((r["backbone"], r["batch_size"]) for r in rows)
    for backbone, batch_size in keys:
        cells = []
        for runtime in runtimes:
            match = [
                r
                for r in rows
                if (r["backbone"], r["batch_size"], r["runtime"]) == (backbone, batch_size, runtime)
            ]
            cells.append(
                f"{float(match[0]['ours_added_ms']):.1f} / {float(match[0]['anomalib_added_ms']):.1f} ms "
                f"(**{float(match[0]['added_ratio']):.2f}x**)"
                if match
                else "-"
            )
        lines.append(f"| {backbone} | {batch_size} | " + " | ".join(cells) + " |")
    detail = [
        "| backbone | runtime | batch | backbone ms | ours ms | anomalib's ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        spans = [
            f"{float(r[f'{name}_median_ms']):.1f} ({float(r[f'{name}_min_ms']):.1f}-{float(r[f'{name}_max_ms']):.1f})"
            for name in MODELS
        ]
        detail.append(f"| {r['backbone']} | {r['runtime']} | {r['batch_size']} | " + " | ".join(spans) + " |")
    return (
        "\n".join(lines)
        + "\n\nMedian (min-max) of each, the three taking turns in every round:\n\n"
        + "\n".join(detail)
    )


def main() -> None:
    """Export, time and write ``runs.csv`` and ``README.md`` under ``--output``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backbones", nargs="+", default=["tf_efficientnet_lite0", "resnet18", "wide_resnet50_2"]
    )
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument(
        "--repeats",
        type=int,
        default=20,
        help="rounds at batch 1; larger batches run a third as many (at least 5)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the runtimes use every core)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also time each op type at batch 1 (OpenVINO f32, ONNX Runtime)",
    )
    parser.add_argument("--output", type=Path, default=Path("results/deployed_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runtimes = list(args.runtimes)
    if "openvino_bf16" in runtimes and (reason := openvino_bf16_unavailable_reason()):
        print(f"skipping openvino_bf16: {reason}")
        runtimes.remove("openvino_bf16")
    args.output.mkdir(parents=True, exist_ok=True)
    rows, profiles = [], []
    work = Path(tempfile.mkdtemp(prefix="deployed_speed_"))  # exported files and profiler traces, not results
    for backbone in args.backbones:
        models = export_both(backbone, work / backbone, runtimes)
        size = tuple(models["ours"]["module"].input_size)
        images = np.random.default_rng(0).random((max(args.batch_sizes), 3, *size), dtype=np.float32)
        if args.profile:
            for runtime, measure in (
                ("OpenVINO f32", lambda path: openvino_profile(path, images[:1])),
                ("ONNX Runtime", lambda path: onnxruntime_profile(path, images[:1], work)),
            ):
                key = "openvino" if runtime.startswith("OpenVINO") else "onnx"
                table = profile_table({name: measure(model[key]) for name, model in models.items()})
                profiles.append(f"### {backbone}, {runtime}, batch 1 (ms per call)\n\n{table}")
                print(profiles[-1], flush=True)
        for runtime in runtimes:
            loaded = load(models, runtime)
            for batch_size in args.batch_sizes:
                repeats = args.repeats if batch_size == 1 else max(5, args.repeats // 3)
                latencies = measure_latencies(loaded, images, batch_size, repeats, warmup=3)
                rows.append(row(backbone, runtime, batch_size, repeats, latencies))
                print(
                    backbone,
                    runtime,
                    batch_size,
                    {k: str(v) for k, v in latencies.items()},
                    f"ratio {rows[-1]['added_ratio']}",
                    flush=True,
                )
            del loaded
    with (args.output / "runs.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    text = (
        "# Deployed speed: ours against anomalib's exported Fastflow\n\n"
        + provenance("python studies/deployed_speed_study.py")
        + "\n\nTime each model adds on top of its backbone (median of the model minus median of the backbone), "
        "ours / anomalib's, and the ratio:\n\n"
        + report([{k: str(v) for k, v in r.items()} for r in rows])
        + "\n"
        + ("\n## Where the time goes, by op type\n\n" + "\n\n".join(profiles) + "\n" if profiles else "")
    )
    (args.output / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

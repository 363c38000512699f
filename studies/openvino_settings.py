"""Why is OpenVINO slower or faster than ONNX Runtime here? Settings side by side on one exported model.

    python studies/openvino_settings.py --backbone tf_efficientnet_lite0 --output results/openvino_settings

Exports one FastFlow (random weights: latency does not depend on their values) to ONNX and an
OpenVINO FP32 IR, then times, at batch 1 and 8 on the same images with the runtimes taking turns:
torch eager, ONNX Runtime, and OpenVINO compiled from the IR with each setting in ``VARIANTS``
(inference precision f32 unless the row says bf16; the IR's input is ``(-1, 3, -1, -1)``, any
batch and image size, and each variant fixes some of those axes before compiling). One variant
compiles the ONNX file as OpenVINO converts it, without our export's rewrite of the narrow channel
permutations into 1x1 convolutions (``anomalib_fastflow.export.channel_permutation``). Prints a
Markdown table with the CPU named and writes it to ``<output>/openvino_settings.md``.
"""

import argparse
from pathlib import Path

import numpy as np
import openvino
import torch

from anomalib_fastflow import FastFlow
from anomalib_fastflow.export import (
    OnnxRuntime,
    TorchRuntime,
    export_formats,
    openvino_bf16_unavailable_reason,
)
from anomalib_fastflow.export.openvino_compile import (
    compiled_precision,
    output_name,
    precision_config,
    read_model,
)
from anomalib_fastflow.export.parity import measure_latencies
from anomalib_fastflow.export.runtimes import Runtime
from anomalib_fastflow.provenance import provenance

# name -> (OpenVINO config beyond the f32 precision hint, batch axis fixed, image size fixed,
# IR: "exported" (ours) or "gathers" (the ONNX file as converted: every permutation a Gather))
VARIANTS: dict[str, tuple[dict[str, object], bool, bool, str]] = {
    "openvino, batch free (as saved)": ({}, False, False, "exported"),
    "openvino, batch fixed (our runtime)": ({}, True, False, "exported"),
    "openvino, batch fixed, permutations as Gather": ({}, True, False, "gathers"),
    "openvino, batch and image size fixed": ({}, True, True, "exported"),
    "openvino, batch fixed, THROUGHPUT hint": ({"PERFORMANCE_HINT": "THROUGHPUT"}, True, False, "exported"),
    "openvino, batch fixed, pinned threads": ({"ENABLE_CPU_PINNING": True}, True, False, "exported"),
    "openvino, batch fixed, ACCURACY mode": ({"EXECUTION_MODE_HINT": "ACCURACY"}, True, False, "exported"),
}


class _Compiled:
    """The IR compiled at f32 (or ``inference_precision``) with the given config and input shape."""

    def __init__(
        self, path: Path, config: dict, shape: list[int] | None, inference_precision: str = "f32"
    ) -> None:
        import openvino

        model = read_model(path)
        if shape is not None:
            model.reshape({model.inputs[0]: openvino.PartialShape(shape)})
        self.model = openvino.Core().compile_model(
            model, "CPU", {**precision_config(inference_precision), **config}
        )
        self.precision = compiled_precision(self.model)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.model(images)
        return {output_name(port.names): value for port, value in outputs.items()}


def runtimes_for(model: FastFlow, paths: dict[str, Path], batch_size: int) -> dict[str, Runtime]:
    """Every runtime and OpenVINO variant of ``model`` (exported to ``paths``), loaded for ``batch_size``."""
    size = list(model.input_size)
    runtimes: dict[str, Runtime] = {
        "torch eager": TorchRuntime(model),
        "onnxruntime": OnnxRuntime(paths["onnx"]),
    }
    for name, (config, fixed_batch, fixed_size, ir) in VARIANTS.items():
        shape = [batch_size if fixed_batch else -1, 3, *(size if fixed_size else [-1, -1])]
        runtimes[name] = _Compiled(paths["openvino_fp32" if ir == "exported" else "gathers"], config, shape)
    if openvino_bf16_unavailable_reason() is None:
        runtimes["openvino bf16, batch fixed"] = _Compiled(
            paths["openvino_fp32"], {}, [batch_size, 3, -1, -1], "bf16"
        )
    return runtimes


def main() -> None:
    """Print and write the table: runtime, precision, batch 1 and 8 median ms (min-max), ratio to ORT."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--output", type=Path, default=Path("results/openvino_settings"))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = FastFlow(backbone=args.backbone, weights="random").eval()
    images = np.random.default_rng(0).random((8, 3, *model.input_size), dtype=np.float32)
    paths, _ = export_formats(model, args.output, ["onnx", "openvino_fp32"])
    paths["gathers"] = args.output / "openvino_gathers" / "model.xml"
    openvino.save_model(openvino.convert_model(paths["onnx"]), paths["gathers"])
    results = {}
    for batch_size in (1, 8):
        runtimes = runtimes_for(model, paths, batch_size)
        results[batch_size] = (
            runtimes,
            measure_latencies(runtimes, images, batch_size, args.repeats, warmup=3),
        )
    lines = [
        provenance("python studies/openvino_settings.py"),
        "",
        f"{args.backbone} preset, random weights, {torch.get_num_threads()} torch threads, "
        f"median (min-max) of {args.repeats}.",
        "",
        "| runtime | runs in | batch 1 ms | batch 8 ms | batch 1 vs ONNX Runtime | batch 8 vs ONNX Runtime |",
        "|---|---|---|---|---|---|",
    ]
    for name, runtime in results[1][0].items():
        one, eight = results[1][1][name], results[8][1][name]
        lines.append(
            f"| {name} | {runtime.precision} | {one.median_ms:.1f} ({one.min_ms:.1f}-{one.max_ms:.1f}) "
            f"| {eight.median_ms:.1f} ({eight.min_ms:.1f}-{eight.max_ms:.1f}) "
            f"| {one.median_ms / results[1][1]['onnxruntime'].median_ms:.2f}x "
            f"| {eight.median_ms / results[8][1]['onnxruntime'].median_ms:.2f}x |"
        )
    table = "\n".join(lines)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "openvino_settings.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()

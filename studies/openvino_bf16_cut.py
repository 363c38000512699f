"""Which part of an OpenVINO FastFlow must stay f32 for bf16 to keep the anomaly map?

    python studies/openvino_bf16_cut.py --results results/demo --data_root datasets/demo \\
        --categories brick grass gravel cup retina

Per category (the demo's checkpoints under ``--results``), the FP32 IR at f32, and at bf16 with
nothing, the first convolution, the image's first stage (``keep_stem_f32``, what ``openvino_bf16``
exports) or the whole backbone kept f32: the precision the convolutions run in, max anomaly-map
difference to PyTorch (relative to the map's range), image AUROC, latency at batch 1 and 8
(median of interleaved runs) and the speed-up over f32. Needs a CPU on which OpenVINO runs bf16
(AVX-512 BF16 or AMX for speed; other AVX-512 CPUs emulate it, slower than f32).
"""

import argparse
from pathlib import Path
from tempfile import TemporaryDirectory

import openvino

from anomalib_fastflow import FastFlow
from anomalib_fastflow.data.arrays import split_arrays
from anomalib_fastflow.export import OpenVINORuntime, TorchRuntime, export_formats, parity_report
from anomalib_fastflow.export.mixed_precision import keep_stem_f32
from anomalib_fastflow.provenance import provenance

# variant -> (ops kept f32: None for none, else keep_stem_f32's (min_scale, max_convolutions);
# inference precision)
VARIANTS = {
    "f32": (None, "f32"),
    "bf16, nothing kept f32": (None, "bf16"),
    "bf16, first convolution f32": ((0.5, 1), "bf16"),
    "bf16, first stage f32 (openvino_bf16)": ((0.5, None), "bf16"),
    "bf16, whole backbone f32": ((0.0, None), "bf16"),
}


def main() -> None:
    """Print one Markdown table per category."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=Path("results/demo"))
    parser.add_argument("--data_root", type=Path, default=Path("datasets/demo"))
    parser.add_argument("--categories", nargs="+", default=["brick", "grass", "gravel", "cup", "retina"])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(provenance("python studies/openvino_bf16_cut.py"), "\n")
    for category in args.categories:
        model = FastFlow.from_checkpoint(
            args.results / f"FastFlow/MVTec/{category}/v0/weights/lightning/model.ckpt"
        )
        size = tuple(model.input_size)
        images, labels = split_arrays(args.data_root, category, "test", size)
        with TemporaryDirectory() as folder:
            fp32 = export_formats(model, Path(folder), ["onnx", "openvino_fp32"])[0]["openvino_fp32"]
            runtimes = {}
            for index, (name, (kept, precision)) in enumerate(VARIANTS.items()):
                path = fp32
                if kept is not None:
                    marked = openvino.Core().read_model(fp32)
                    keep_stem_f32(marked, size, *kept)
                    path = Path(folder) / f"variant_{index}" / "model.xml"
                    openvino.save_model(marked, path, compress_to_fp16=False)
                runtimes[name] = OpenVINORuntime(path, inference_precision=precision)
            rows = parity_report(TorchRuntime(model), runtimes, images, labels, repeats=args.repeats)
        print(f"{category}, {len(images)} test images; differences to PyTorch f32\n")
        print(
            "| variant | runs in | max diff / range | image AUROC | batch 1 ms | batch 8 ms "
            "| speed-up over f32 (batch 1 / 8) |\n|---|---|---|---|---|---|---|"
        )
        f32 = next(row for row in rows if row.name == "f32")
        for row in rows[1:]:
            speed_ups = " / ".join(
                f"{base.median_ms / latency.median_ms:.2f}x"
                for base, latency in zip(f32.latencies, row.latencies, strict=True)
            )
            print(
                f"| {row.name} | {row.precision} | {row.max_relative:.2e} | {row.image_auroc:.4f} | "
                + " | ".join(f"{latency.median_ms:.1f}" for latency in row.latencies)
                + f" | {speed_ups} |"
            )
        print()


if __name__ == "__main__":
    main()

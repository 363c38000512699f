"""Torch eager vs TensorRT FP16 latency of the ResNet18 and WRN50 presets on an NVIDIA GPU.

    python studies/tensorrt_latency.py --output results/tensorrt

Backbone weights are random (latency does not depend on their values, and GPU machines are often
offline); each figure is end to end from a host image batch to host outputs, pre- and
post-processing included, median of interleaved runs (torch and TensorRT taking turns) after
warm-up. Without TensorRT or a GPU it prints why and exits 0.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from anomalib_fastflow import FastFlow
from anomalib_fastflow.export import TensorRTRuntime, build_engine, tensorrt_unavailable_reason
from anomalib_fastflow.timing import interleaved_latencies


def main() -> None:
    """Print a Markdown table: preset, batch, torch eager ms, TensorRT FP16 ms, speed-up."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=Path("results/tensorrt"))
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "wide_resnet50_2"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    reason = tensorrt_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    print(f"GPU: {torch.cuda.get_device_name()}")
    print("| preset | batch | torch eager ms | TensorRT FP16 ms | speed-up |\n|---|---|---|---|---|")
    for backbone in args.backbones:
        model = FastFlow(backbone=backbone, weights="random").eval()
        onnx_path = model.to_onnx(args.output / backbone, opset_version=18)
        size = tuple(model.input_size)
        engine_path = args.output / backbone / "fp16.engine"
        batches = sorted(args.batch_sizes)
        build_engine(
            onnx_path, engine_path, size, fp16=True, batch_sizes=(batches[0], batches[-1], batches[-1])
        )
        engine = TensorRTRuntime(engine_path)
        model = model.cuda()
        for batch_size in batches:
            images = np.random.rand(batch_size, 3, *size).astype(np.float32)

            @torch.inference_mode()
            def eager(images: np.ndarray = images) -> object:
                output = model(torch.from_numpy(images).cuda())
                return output.anomaly_map.cpu(), output.pred_score.cpu()

            calls = {"torch": eager, "tensorrt": lambda images=images: engine(images)}
            latencies = interleaved_latencies(
                calls, args.repeats, warmup=5, synchronize=torch.cuda.synchronize
            )
            torch_ms, trt_ms = latencies["torch"].median_ms, latencies["tensorrt"].median_ms
            print(f"| {backbone} | {batch_size} | {torch_ms:.2f} | {trt_ms:.2f} | {torch_ms / trt_ms:.2f}x |")


if __name__ == "__main__":
    main()

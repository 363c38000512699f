"""FastFlow's speed on a GPU beside anomalib's Fastflow, PatchCore and Patchflow, in one short run.

    python studies/gpu_story.py --output docs/gpu/$(date +%F)      # on the GPU machine (docs/gpu.md)
    python studies/gpu_story.py --tiny --output results/gpu_story   # the CPU rehearsal (minutes)

Every inference path of ours and of anomalib's Fastflow (eager fp32, autocast, torch.compile, CUDA
graphs, ONNX Runtime's CUDA and TensorRT providers, a TensorRT engine), batch-1 latency (median,
p99) and batch-32 throughput, the largest map difference to eager fp32, and training seconds per
epoch with peak GPU memory (``anomalib_fastflow.benchmark.device_speed``). A path that cannot run
on the machine is a row with its reason. Writes ``device_speed.md`` and ``device_speed.json``.
"""

import argparse
from pathlib import Path

from anomalib_fastflow.benchmark.device_speed import DeviceSpeedConfig, run_device_speed

TINY = {  # the CPU rehearsal: every row, small enough for the test suite
    "backbones": ["tf_efficientnet_lite0"], "peer_backbone": "tf_efficientnet_lite0", "repeats": 3, "warmup": 1,
    "throughput_batch": 2, "input_size": 64, "training_images": 8, "training_epochs": 2, "patchcore_bank": 100,
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("results/gpu_story"))
    parser.add_argument("--tiny", action="store_true", help="the CPU rehearsal's sizes")
    parser.add_argument(
        "--backbones", nargs="+", default=None, help="our presets (default: resnet18, WRN50, lite0)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed batch-1 calls per path (default 300)"
    )
    args = parser.parse_args()
    settings = dict(TINY) if args.tiny else {}
    if args.backbones:
        settings["backbones"] = args.backbones
    if args.repeats:
        settings["repeats"] = args.repeats
    print(run_device_speed(DeviceSpeedConfig(output=args.output, **settings)))


if __name__ == "__main__":
    main()

"""How fast is our model as `anomalib export --export_type openvino` writes it, before and after our rewrite?

    python studies/anomalib_export_speed.py --backbones tf_efficientnet_lite0 resnet18

``anomalib export`` calls the model's ``to_openvino``. ``before`` is anomalib's own
(``AnomalibModule.to_openvino``: the ONNX file converted, every channel permutation a ``Gather``),
``after`` is ``FastFlow.to_openvino`` (the same IR with the flows' narrow permutations rewritten
as 1x1 convolutions, ``anomalib_fastflow.channel_permutation``). One random model per backbone;
both IRs compiled by ``OpenVINORuntime`` (f32, batch fixed), timed in turns at batch 1 and 8.
Prints a Markdown table with the CPU named and the maps' largest difference (``docs/deployed_speed.md``).
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from anomalib.models.components import AnomalibModule

from anomalib_fastflow import FastFlow
from anomalib_fastflow.export import OpenVINORuntime
from anomalib_fastflow.export.parity import measure_latencies
from anomalib_fastflow.provenance import provenance


def main() -> None:
    """Export both ways, compare the maps, time them; print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbones", nargs="+", default=["tf_efficientnet_lite0", "resnet18"])
    parser.add_argument("--repeats", type=int, default=20, help="rounds at batch 1 (batch 8: 8)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="anomalib_export_"))
    lines = [
        "| backbone | batch | before ms | after ms | after / before | map difference / range |",
        "|---|---|---|---|---|---|",
    ]
    for backbone in args.backbones:
        torch.manual_seed(0)
        model = FastFlow(backbone=backbone, weights="random").eval()
        runtimes = {
            "before": OpenVINORuntime(AnomalibModule.to_openvino(model, work / backbone / "before")),
            "after": OpenVINORuntime(model.to_openvino(work / backbone / "after")),
        }
        images = np.random.default_rng(0).random((8, 3, *model.input_size), dtype=np.float32)
        before, after = (runtime(images[:1])["anomaly_map"] for runtime in runtimes.values())
        difference = float(np.abs(after - before).max() / (before.max() - before.min()))
        for batch_size in (1, 8):
            latency = measure_latencies(
                runtimes, images, batch_size, args.repeats if batch_size == 1 else 8, 3
            )
            ratio = latency["after"].median_ms / latency["before"].median_ms
            lines.append(
                f"| {backbone} | {batch_size} | {latency['before']} | {latency['after']} "
                f"| {ratio:.2f}x | {difference:.1e} |"
            )
            print(lines[-1], flush=True)
    print(
        "\n"
        + provenance("python studies/anomalib_export_speed.py")
        + "\n\nOpenVINO f32, median (min-max):\n\n"
        + "\n".join(lines)
    )


if __name__ == "__main__":
    main()

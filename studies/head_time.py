"""Eager time of the flows and map on the same backbone features: ours vs anomalib's Fastflow, interleaved.

    python studies/head_time.py --backbone resnet18 --repeats 21

Both models are built on ``--backbone`` with random weights and the same preset (flow steps,
kernels, hidden ratio); the features of one random image are computed once and both heads run on
them in turns, batch 1, so a slow spell of the machine hits both alike. Rows: ours with its map
smoothing (what users get), ours without it (``smoothing_sigma=0``, as anomalib's map), and the
flows alone (norms and flows, no map) of each.
"""

import argparse
from collections.abc import Callable

import torch

from anomalib_fastflow import FastFlow
from anomalib_fastflow.benchmark.baselines import anomalib_fastflow
from anomalib_fastflow.provenance import provenance
from anomalib_fastflow.timing import interleaved_latencies


def main() -> None:
    """Print medians (min-max) and the ratios ours / anomalib's."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    torch.manual_seed(0)
    ours = FastFlow(backbone=args.backbone, weights="random").eval().model
    unsmoothed = FastFlow(backbone=args.backbone, weights="random", smoothing_sigma=0).eval().model
    unsmoothed.load_state_dict(ours.state_dict())
    theirs = anomalib_fastflow(args.backbone, weights="random").eval().model
    with torch.inference_mode():
        features = ours.feature_extractor(torch.rand(1, 3, *ours.anomaly_map_generator.input_size))

    def our_head(model: torch.nn.Module) -> Callable[[], object]:
        return lambda: model.anomaly_map_generator(model.encode(features)[0])

    def their_flows() -> list[torch.Tensor]:
        return [
            flow(norm(feature))[0]
            for feature, norm, flow in zip(features, theirs.norms, theirs.fast_flow_blocks, strict=True)
        ]

    def smoothed_head() -> object:
        from anomalib_fastflow.anomaly_map import image_score, smooth_map

        anomaly_map = ours.anomaly_map_generator(ours.encode(features)[0])
        return image_score(anomaly_map), smooth_map(anomaly_map, ours.smoothing_sigma)

    runs = {
        "ours: flows + map + smoothing": smoothed_head,
        "ours: flows + map (no smoothing)": our_head(unsmoothed),
        "anomalib: flows + map": lambda: theirs.anomaly_map_generator(their_flows()),
        "ours: flows": lambda: ours.encode(features),
        "anomalib: flows": their_flows,
    }
    with torch.inference_mode():
        latencies = interleaved_latencies(runs, args.repeats, warmup=3)
    print(provenance("python studies/head_time.py"), "\n")
    print(
        f"{args.backbone} preset, batch 1, {torch.get_num_threads()} threads, "
        f"median (min-max) of {args.repeats} interleaved runs.\n"
    )
    print("| head | ms | ours / anomalib's |\n|---|---|---|")
    for name, latency in latencies.items():
        theirs_name = "anomalib: flows" if name.endswith(": flows") else "anomalib: flows + map"
        print(f"| {name} | {latency} | {latency.median_ms / latencies[theirs_name].median_ms:.2f}x |")


if __name__ == "__main__":
    main()

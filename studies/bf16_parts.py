"""Which part of FastFlow loses the anomaly map in bf16? CPU autocast on the backbone, the flows or neither.

    python studies/bf16_parts.py --ckpt_path CKPT --data_root datasets/demo --category brick

bf16 rounding is the same whether a CPU runs it natively (AVX-512 BF16, AMX) or emulates it
(other AVX-512 CPUs), so this measures the precision on any CPU with oneDNN's bf16 kernels (not the
speed). Per variant: max and mean anomaly-map difference to float32 (relative to the map's range,
before smoothing) and image AUROC on the category's test split.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from anomalib_fastflow import FastFlow
from anomalib_fastflow.data.arrays import split_arrays
from anomalib_fastflow.metrics import auroc
from anomalib_fastflow.provenance import provenance
from anomalib_fastflow.torch_model import FastFlowModel

# name -> (backbone under bf16 autocast, flows under bf16 autocast, latents rounded to bf16)
VARIANTS = {
    "float32": (False, False, False),
    "all bf16": (True, True, False),
    "backbone bf16, flows float32": (True, False, False),
    "backbone float32, flows bf16": (False, True, False),
    "float32, latents rounded to bf16 (the likelihood's input)": (False, False, True),
}


@torch.inference_mode()
def anomaly_maps(
    model: FastFlowModel, images: torch.Tensor, backbone: bool, flows: bool, latents_bf16: bool
) -> torch.Tensor:
    """Unsmoothed ``(N, 1, H, W)`` maps of pre-processed ``images``, parts of the model in bf16 autocast."""
    maps = []
    for batch in images.split(8):
        with torch.autocast("cpu", torch.bfloat16, enabled=backbone):
            features = [feature.float() for feature in model.feature_extractor(batch)]
        with torch.autocast("cpu", torch.bfloat16, enabled=flows):
            latents, _ = model.encode(features)
        dtype = torch.bfloat16 if latents_bf16 else torch.float32
        maps.append(model.anomaly_map_generator([z.to(dtype).float() for z in latents]))
    return torch.cat(maps)


def main() -> None:
    """Print a Markdown table of the variants."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt_path", type=Path, required=True)
    parser.add_argument("--data_root", type=Path, required=True)
    parser.add_argument("--category", required=True)
    args = parser.parse_args()
    model = FastFlow.from_checkpoint(args.ckpt_path)
    images, labels = split_arrays(args.data_root, args.category, "test", tuple(model.input_size))
    inputs = model.pre_processor.export_transform(torch.from_numpy(images))
    reference = anomaly_maps(model.model, inputs, False, False, False).numpy()
    span = float(reference.max() - reference.min())
    print(provenance("python studies/bf16_parts.py"), "\n")
    print("| variant | max diff / range | mean diff / range | image AUROC |\n|---|---|---|---|")
    for name, parts in VARIANTS.items():
        maps = anomaly_maps(model.model, inputs, *parts).numpy()
        difference = np.abs(maps - reference)
        scores = maps.reshape(len(maps), -1).max(axis=1)
        print(
            f"| {name} | {difference.max() / span:.2e} | {difference.mean() / span:.2e} "
            f"| {auroc(scores, labels):.4f} |"
        )


if __name__ == "__main__":
    main()

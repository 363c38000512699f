"""How much of the disturbed test sets' loss is the resampling, not the misalignment (docs/disturbed.md).

Scores the test images of trained demo checkpoints (``anomalib-fastflow demo``) as they are and
under transforms that separate the causes: a half-pixel shift (nothing moves but the resampling
blurs), a whole-pixel shift (no resampling: only the mirrored border comes in), the paper's zoom,
rotation and shift each alone, and its full disturbance, resampled bilinearly and bicubically
(``data.disturbed.disturb``). Prints image AUROC and the good images' mean score (higher: more
anomalous) per category and variant.

    python studies/resampling_study.py --categories brick grass gravel
"""

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor

from anomalib_fastflow import FastFlow
from anomalib_fastflow.data.disturbed import NORMAL_FOLDERS
from anomalib_fastflow.geometry import AffineParams, Disturbance, disturb, draw_params
from anomalib_fastflow.hardware import describe_cpu
from anomalib_fastflow.metrics import auroc

Variant = Callable[[torch.Tensor, str], list[torch.Tensor]]


def _shifted(shift: float, interpolation: str) -> Variant:
    """The image shifted by ``shift`` pixels along both axes, the border mirrored in."""
    params = AffineParams(angle=0.0, translate=(shift, shift), scale=1.0)
    return lambda image, key: [disturb(image, None, params, "reflect", interpolation)[0]]


def _disturbed(
    interpolation: str, copies: int, seed: int, part: Callable[[AffineParams], AffineParams] = lambda p: p
) -> Variant:
    """The paper's ``copies`` disturbed versions (mirrored fill), or ``part`` of each one's transform."""
    disturbance = Disturbance(fill="reflect", interpolation=interpolation)

    def variant(image: torch.Tensor, key: str) -> list[torch.Tensor]:
        size = tuple(image.shape[-2:])
        drawn = (draw_params(disturbance, size, f"{seed}/{key}/{copy}") for copy in range(copies))
        return [disturb(image, None, part(params), "reflect", interpolation)[0] for params in drawn]

    return variant


def _whole_pixel_shift(params: AffineParams) -> AffineParams:
    """Only the shift, rounded to whole pixels: nothing is resampled."""
    return AffineParams(angle=0.0, translate=tuple(float(round(t)) for t in params.translate), scale=1.0)


PARTS: dict[str, Callable[[AffineParams], AffineParams]] = {  # one component of a drawn transform
    "zoom": lambda params: AffineParams(angle=0.0, translate=(0.0, 0.0), scale=params.scale),
    "rotation": lambda params: AffineParams(angle=params.angle, translate=(0.0, 0.0), scale=1.0),
    "shift": lambda params: AffineParams(angle=0.0, translate=params.translate, scale=1.0),
}


def study(checkpoint: Path, category_root: Path, copies: int, seed: int) -> dict[str, tuple[float, float]]:
    """(image AUROC, good images' mean score) per variant for one category's checkpoint."""
    variants: dict[str, Variant] = {
        "as is": lambda image, key: [image],
        "half-pixel shift, bilinear": _shifted(0.5, "bilinear"),
        "half-pixel shift, bicubic": _shifted(0.5, "bicubic"),
        "whole-pixel shifts only (no resampling)": _disturbed("bilinear", copies, seed, _whole_pixel_shift),
        **{f"{name} only, bicubic": _disturbed("bicubic", copies, seed, cut) for name, cut in PARTS.items()},
        "disturbed, bilinear": _disturbed("bilinear", copies, seed),
        "disturbed, bicubic": _disturbed("bicubic", copies, seed),
    }
    model = FastFlow.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    transform = model.pre_processor.export_transform
    scores: dict[str, tuple[list[float], list[int]]] = {name: ([], []) for name in variants}
    for path in sorted((category_root / "test").rglob("*.png")):
        image = pil_to_tensor(Image.open(path).convert("RGB"))
        label = int(path.parent.name not in NORMAL_FOLDERS)
        key = path.relative_to(category_root).as_posix()
        for name, variant in variants.items():
            with torch.no_grad():
                output = model.model(transform(torch.stack(variant(image, key)).float() / 255))
            scores[name][0].extend(output.pred_score.flatten().tolist())
            scores[name][1].extend([label] * len(output.pred_score))
    return {
        name: (
            auroc(torch.tensor(values), torch.tensor(labels)),
            float(torch.tensor(values)[torch.tensor(labels) == 0].mean()),
        )
        for name, (values, labels) in scores.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--categories", nargs="+", default=["brick", "grass", "gravel"])
    parser.add_argument("--data-root", type=Path, default=Path("datasets/demo"))
    parser.add_argument("--checkpoints", type=Path, default=Path("results/demo/FastFlow/MVTec"))
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"CPU: {describe_cpu()}\n")
    print("| category | variant | image AUROC | good images' mean score |\n|---|---|---|---|")
    for category in args.categories:
        checkpoint = args.checkpoints / category / "v0" / "weights" / "lightning" / "model.ckpt"
        results = study(checkpoint, args.data_root / category, args.copies, args.seed)
        for name, (image_auroc, good) in results.items():
            print(f"| {category} | {name} | {image_auroc:.3f} | {good:.4f} |", flush=True)


if __name__ == "__main__":
    main()

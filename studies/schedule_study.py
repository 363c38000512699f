"""Which learning-rate schedule, peak rate and augmentation? Measured on the demo data.

    python studies/schedule_study.py --output docs/schedule_study.md

Trains FastFlow per demo category for a fixed budget under each setting and scores the test split
after every epoch (a measurement only: it changes nothing in the run). Prints the image / pixel
AUROC after the last epoch, the image AUROC curve and the mean training seconds per epoch as a
Markdown table. The demo's anomalies are synthetic; no real dataset's test labels are used.
"""

import argparse
from pathlib import Path
from statistics import mean

from anomalib_fastflow import FastFlow
from anomalib_fastflow.benchmark.datasets import DataSpec
from anomalib_fastflow.benchmark.training import seeded, train_and_test
from anomalib_fastflow.data.demo import TEXTURES

SETTINGS: dict[str, dict[str, object]] = {
    "paper: constant 1e-3, no augmentation": {"lr_schedule": "constant", "lr": 1e-3, "augmentation": "none"},
    "constant 1e-3, augmentation": {"lr_schedule": "constant", "lr": 1e-3, "augmentation": "auto"},
    "one_cycle 1e-3, no augmentation": {"lr_schedule": "one_cycle", "lr": 1e-3, "augmentation": "none"},
    "one_cycle 3e-3, no augmentation": {"lr_schedule": "one_cycle", "lr": 3e-3, "augmentation": "none"},
    "one_cycle 3e-3, augmentation": {"lr_schedule": "one_cycle", "lr": 3e-3, "augmentation": "auto"},
    "one_cycle 5e-3, augmentation (default)": {
        "lr_schedule": "one_cycle",
        "lr": 5e-3,
        "augmentation": "auto",
    },
}


def main() -> None:
    """Train under every setting, print and save the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path("datasets/demo"))
    parser.add_argument("--results", type=Path, default=Path("results/schedule_study"))
    parser.add_argument("--output", type=Path, default=Path("docs/schedule_study.md"))
    parser.add_argument("--categories", nargs="+", default=list(TEXTURES))
    parser.add_argument("--max-epochs", type=int, default=10)
    args = parser.parse_args()
    data = DataSpec("demo", args.root, args.categories)
    lines = [
        "| setting | " + " | ".join(f"{c} image / pixel" for c in args.categories) + " | mean image / pixel "
        "| image AUROC after each epoch (mean of categories) | train s/epoch |",
        "|---|" + "---|" * (len(args.categories) + 3),
    ]
    for name, settings in SETTINGS.items():
        results = [
            train_and_test(
                seeded(lambda: FastFlow(**settings), 0),
                data.datamodule(c),
                args.max_epochs,
                args.results,
                evaluate_each_epoch=True,
            )
            for c in args.categories
        ]
        cells = [f"{r.image_auroc:.4f} / {r.pixel_auroc:.4f}" for r in results]
        curve = [mean(values) for values in zip(*(r.epoch_image_aurocs for r in results), strict=True)]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {mean(r.image_auroc for r in results):.4f} / {mean(r.pixel_auroc for r in results):.4f} "
            + f"| {' '.join(f'{value:.3f}' for value in curve)} | {mean(r.seconds_per_epoch for r in results):.2f} |"
        )
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    command = f"python studies/schedule_study.py --max-epochs {args.max_epochs}"
    header = f"Made by `{command}`: offline backbone, batch 8, seed 0.\n"
    args.output.write_text(f"# Schedule study on the demo data\n\n{header}\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()

"""Does an exported model agree with PyTorch? Anomaly-map differences, AUROC and latency per format."""

from dataclasses import dataclass
from functools import partial

import numpy as np

from ..metrics import auroc
from ..timing import Latency, interleaved_latencies
from .runtimes import Runtime


@dataclass(frozen=True)
class ParityRow:
    """One format against the PyTorch reference on the same images.

    Attributes:
        name: Format name (``torch`` for the reference itself).
        precision: What the runtime computes in (OpenVINO: read back from the compiled model).
        max_abs: Largest absolute anomaly-map difference.
        mean_abs: Mean absolute anomaly-map difference.
        max_relative: ``max_abs`` divided by the reference maps' range.
        image_auroc: Image AUROC of the format's scores.
        latencies: Latency at each measured batch size.
    """

    name: str
    precision: str
    max_abs: float
    mean_abs: float
    max_relative: float
    image_auroc: float
    latencies: tuple[Latency, ...]


def run_batched(runtime: Runtime, images: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Run ``runtime`` over ``images`` in batches and concatenate each output."""
    parts = [runtime(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def measure_latencies(
    runtimes: dict[str, Runtime], images: np.ndarray, batch_size: int, repeats: int = 10, warmup: int = 2
) -> dict[str, Latency]:
    """Median, min and max wall time of each runtime on one batch of ``batch_size`` images, the
    runtimes taking turns in every round (``timing.interleaved_latencies``)."""
    batch = np.resize(images, (batch_size, *images.shape[1:]))
    calls = {name: partial(runtime, batch) for name, runtime in runtimes.items()}
    return interleaved_latencies(calls, repeats, warmup, batch_size)


def parity_report(
    reference: Runtime,
    candidates: dict[str, Runtime],
    images: np.ndarray,
    labels: np.ndarray,
    batch_sizes: tuple[int, ...] = (1, 8),
    repeats: int = 10,
) -> list[ParityRow]:
    """Compare each candidate with ``reference`` on ``images`` ``(N, 3, H, W)``; first row is the reference.

    Latency is measured per batch size, the runtimes taking turns, with torch's current thread count.
    """
    runtimes = {"torch": reference, **candidates}
    latencies = [measure_latencies(runtimes, images, size, repeats) for size in batch_sizes]
    expected = run_batched(reference, images, max(batch_sizes))
    span = float(expected["anomaly_map"].max() - expected["anomaly_map"].min()) or 1.0
    rows = []
    for name, runtime in runtimes.items():
        actual = expected if runtime is reference else run_batched(runtime, images, max(batch_sizes))
        difference = np.abs(actual["anomaly_map"].astype(np.float64) - expected["anomaly_map"])
        rows.append(
            ParityRow(
                name=name,
                precision=runtime.precision,
                max_abs=float(difference.max()),
                mean_abs=float(difference.mean()),
                max_relative=float(difference.max()) / span,
                image_auroc=auroc(actual["pred_score"], labels),
                latencies=tuple(by_name[name] for by_name in latencies),
            )
        )
    return rows


def format_report(rows: list[ParityRow]) -> str:
    """Markdown table of ``rows``: precision, differences, AUROC and its drop, latency and FPS per batch size."""
    sizes = [latency.batch_size for latency in rows[0].latencies]
    header = [
        "format",
        "runs in",
        "max abs diff",
        "max diff / range",
        "mean abs diff",
        "image AUROC",
        "AUROC drop",
    ]
    header += [f"batch {size} ms (min-max)" for size in sizes] + [f"batch {size} FPS" for size in sizes]
    header += ["speed-up vs torch (batch 1)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            row.name,
            row.precision,
            f"{row.max_abs:.2e}",
            f"{row.max_relative:.2e}",
            f"{row.mean_abs:.2e}",
        ]
        cells += [f"{row.image_auroc:.4f}", f"{rows[0].image_auroc - row.image_auroc:+.4f}"]
        cells += [f"{lat.median_ms:.1f} ({lat.min_ms:.1f}-{lat.max_ms:.1f})" for lat in row.latencies]
        cells += [f"{lat.fps:.1f}" for lat in row.latencies]
        cells += [f"{rows[0].latencies[0].median_ms / row.latencies[0].median_ms:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

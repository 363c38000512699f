"""Interleaved wall-clock timing: the timed calls take turns in every round.

On a shared machine a slow spell hits every call of a round alike, so ratios between them stay
fair even when absolute times drift. Used by the export parity report, the benchmark's inference
cost and the studies.
"""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Latency:
    """Milliseconds per batch over repeated runs after warm-up."""

    batch_size: int
    median_ms: float
    min_ms: float
    max_ms: float

    @property
    def fps(self) -> float:
        """Images per second at the median latency."""
        return 1000.0 * self.batch_size / self.median_ms

    def __str__(self) -> str:
        return f"{self.median_ms:.1f} ({self.min_ms:.1f}-{self.max_ms:.1f})"


def interleaved_latencies(
    calls: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 2,
    batch_size: int = 1,
    synchronize: Callable[[], object] | None = None,
) -> dict[str, Latency]:
    """Median, min and max milliseconds of each call, ``repeats`` rounds in which every call runs once.

    Args:
        calls: What to time, by name (each called with no arguments).
        repeats: Timed rounds.
        warmup: Untimed calls of each before the first round.
        batch_size: Images per call, for ``Latency.fps``.
        synchronize: Called before and after each timed call (``torch.cuda.synchronize`` for GPU work).
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            if synchronize is not None:
                synchronize()
            start = time.perf_counter()
            call()
            if synchronize is not None:
                synchronize()
            times[name].append(1000.0 * (time.perf_counter() - start))
    return {name: Latency(batch_size, statistics.median(t), min(t), max(t)) for name, t in times.items()}

"""A benchmark grid from start to report: ``run_benchmark`` is what ``anomalib-fastflow benchmark`` runs."""

from pathlib import Path

from ..provenance import provenance
from .grid import BenchmarkConfig, run_grid
from .tables import write_report


def run_benchmark(grid: BenchmarkConfig = BenchmarkConfig()) -> str:
    """Run a benchmark grid and write its CSVs, ``report.md`` and plots under ``grid.output``.

    Example: ``anomalib-fastflow benchmark --config configs/benchmark/quick.yaml``. Finished runs
    are kept in ``accuracy.csv`` and ``cost.csv``; running the same command again resumes the grid
    (failed runs are retried). See ``BenchmarkConfig`` for every setting (``--grid.<name>``).

    Args:
        grid: Models, backbones, data, epochs per model, runtimes, timing and output folder.

    Returns:
        The report, as written to ``grid.output/report.md``.
    """
    accuracy, cost = run_grid(grid)
    heading = (
        f"# Benchmark: {', '.join(grid.models)} on {', '.join(grid.backbones)} ({grid.weights} weights)\n\n"
        f"{provenance()}\n\n"
        f"Data: {grid.data.name} {grid.data.categories} in {grid.data.root}; epochs {grid.epochs}; "
        f"model options {grid.model_options or 'none'}; "
        f"seed {grid.seed}; {grid.timing.threads} threads, {grid.timing.warmup} warm-up runs, "
        f"median of {grid.timing.repeats}.\n\nEvery model gets the same backbone weights, input size and "
        "pre-processing. anomalib's Fastflow runs with our preset's flow settings (on a backbone it does "
        "not accept, with our feature extractor and its norms and flows rebuilt as its constructor "
        "builds them); PatchCore takes the backbone's stride-8/16 stages, CFlow its stride-8/16/32 stages, "
        "Patchflow its own three stages at three input resolutions."
    )
    return write_report(accuracy, cost, Path(grid.output), heading)

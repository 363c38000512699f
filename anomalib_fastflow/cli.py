"""``anomalib-fastflow``: what the ``anomalib`` command cannot do for this plugin.

A thin shell, as anomalib's is: each subcommand is a function of the package (its signature and
docstring are the subcommand's options and help), and this module only parses, calls and prints.

Subcommands:
    demo              build the demo dataset, train and test FastFlow on each category, print AUROCs
                      (``demo.run_demo``)
    build-demo-data   write the demo dataset only (``data.demo.build_demo_categories``)
    build-elpv        lay out ELPV's monocrystalline solar cells (real defects) as Folder categories
                      (``data.elpv.build_elpv_categories``)
    configs           where the preset configs are, or copies of them (``packaged_configs.config_files``)
    disturb           write a non-aligned (disturbed) copy of a dataset's test split, paper Sec. 8
                      (``data.disturbed.write_disturbed_copy``)
    export            export a checkpoint to ONNX / OpenVINO / TensorRT and report parity and latency
                      (``export.check.export_and_check``)
    compare-training  train ours and anomalib's Fastflow side by side: accuracy, time, memory
                      (``benchmark.compare_training.compare_training``)
    benchmark         the paper's comparison (Tables 1 and 2) with PatchCore, CFlow, Fastflow and
                      Patchflow (``benchmark.run.run_benchmark``)
    report            one HTML page of a trained model on a dataset or on new images
                      (``report.checkpoint_report.write_checkpoint_report``)

A user's mistake (a bad file, folder or argument: ``errors.InputError``; a missing extra) prints one
line and exits 2; anything else is a bug of ours and keeps its traceback.
"""

from . import quiet  # noqa: F401, I001 - first: filters third-party import warnings before they fire

import functools
import sys
from collections.abc import Callable
from typing import Any

from jsonargparse import auto_cli

from . import __version__
from .benchmark.compare_training import compare_training
from .benchmark.run import run_benchmark
from .data.demo import build_demo_categories
from .data.disturbed import write_disturbed_copy
from .data.elpv import build_elpv_categories
from .demo import format_demo, run_demo
from .errors import InputError
from .export.check import export_and_check
from .extras import MissingExtraError
from .packaged_configs import config_files
from .report.checkpoint_report import write_checkpoint_report

USAGE_ERROR = 2  # what argparse and a missing extra exit with


def _printing(function: Callable[..., Any], show: Callable[[Any], str] | None) -> Callable[..., Any]:
    """``function`` as a subcommand (same signature and help) that prints ``show(result)``."""

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        if show is not None:
            print(show(result))
        return result

    return command


def _lines(values: Any) -> str:
    return "\n".join(map(str, values))


COMMANDS: dict[str, tuple[Callable[..., Any], Callable[[Any], str] | None]] = {
    "demo": (run_demo, format_demo),
    "build-demo-data": (build_demo_categories, lambda root: f"Demo data under {root}"),
    "build-elpv": (build_elpv_categories, lambda names: f"ELPV mono cells: {', '.join(names)}"),
    "configs": (config_files, _lines),
    "disturb": (
        write_disturbed_copy,
        lambda written: _lines(
            f"{category}: {count} disturbed test images" for category, count in written.items()
        ),
    ),
    "export": (export_and_check, lambda check: check.report),
    "compare-training": (compare_training, str),
    "benchmark": (run_benchmark, str),
    "report": (write_checkpoint_report, lambda page: f"Report: {page}"),
}


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``anomalib-fastflow`` command."""
    try:
        auto_cli(
            {name: _printing(function, show) for name, (function, show) in COMMANDS.items()},
            args=args,
            as_positional=False,
            prog="anomalib-fastflow",
            version=__version__,
        )
    except (InputError, MissingExtraError) as error:
        print(f"anomalib-fastflow: {error}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None


if __name__ == "__main__":
    main()

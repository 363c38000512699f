"""How and where a result was made: the command, the date, the CPU and the package versions.

One place for every file the package or a study stamps (benchmark tables, parity reports, report
pages, study READMEs), so that all name the same packages the same way.
"""

import os
import platform
import shlex
import sys
from datetime import date

from .extras import installed
from .hardware import describe_cpu

PACKAGES = ("anomalib-fastflow", "anomalib", "torch", "timm", "FrEIA", "onnxruntime", "openvino", "tensorrt")


def versions(packages: tuple[str, ...] = PACKAGES) -> str:
    """``"anomalib-fastflow 0.3.0, anomalib 2.7.0, ..."`` (``not installed`` for a missing one)."""
    return ", ".join(map(installed, packages))


def provenance(program: str = "anomalib-fastflow") -> str:
    """How and where a report was made: the command line (``program`` and its arguments), the date,
    the CPU and package versions."""
    command = " ".join([program, shlex.join(sys.argv[1:])]).strip()
    machine = f"{describe_cpu()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return f"Made by `{command}` on {date.today().isoformat()} ({machine}; {versions()})."

"""Optional packages: which of the package's extras brings each, a one-line error when one is missing,
and the installed version of any package, as reports name them (``installed``).

``pip install anomalib-fastflow`` installs what training, testing, the demo and the benchmark need.
Export runtimes are extras, as in anomalib (``anomalib[openvino]``): OpenVINO and NNCF alone
weigh more than the rest of a CPU install, and a user who deploys to ONNX Runtime or TensorRT
needs neither. Code that needs an extra's package imports it where it is used, after ``require``.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

EXTRAS: dict[str, tuple[str, ...]] = {
    "export": ("onnx", "onnxscript", "onnxruntime", "openvino", "nncf"),
    "tensorrt": ("tensorrt",),
    "elpv": ("elpv_dataset",),
}


def installed(package: str) -> str:
    """``"<package> <version>"``, or ``"<package> not installed"``."""
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return f"{package} not installed"


class MissingExtraError(ImportError):
    """A feature needs packages of an extra that is not installed; the message says what to install."""


def missing_modules(modules: tuple[str, ...] | list[str]) -> list[str]:
    """The modules of ``modules`` that cannot be imported here."""
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def require(extra: str, modules: tuple[str, ...] | list[str], feature: str) -> None:
    """Raise ``MissingExtraError`` unless every module of ``modules`` (from ``extra``) imports.

    Args:
        extra: The extra that brings the modules (a key of ``EXTRAS``).
        modules: Import names the feature needs.
        feature: What needs them, for the message (e.g. ``"export to openvino_fp32"``).

    Raises:
        MissingExtraError: Names the missing modules and the ``pip install`` line that brings them.
        ValueError: ``extra`` is not one of ``EXTRAS`` or does not bring one of ``modules``.
    """
    if not set(modules) <= set(EXTRAS.get(extra, ())):
        msg = f"Extra {extra!r} does not bring {sorted(set(modules))}; extras: {EXTRAS}."
        raise ValueError(msg)
    missing = missing_modules(modules)
    if missing:
        msg = f'{feature} needs {", ".join(missing)}: pip install "anomalib-fastflow[{extra}]"'
        raise MissingExtraError(msg)

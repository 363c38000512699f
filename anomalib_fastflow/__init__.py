"""FastFlow (2D normalizing flows for anomaly detection and localization) as an anomalib plugin.

The names below load on first use (PEP 562), so that ``anomalib_fastflow.cli`` can set its warning
filters before anomalib and timm are imported; ``anomalib_fastflow.FastFlow`` imports the model and
with it the ``MVTec`` and ``BTAD`` datamodules that ``anomalib train --data`` resolves by name.
"""

import importlib

__version__ = "0.3.0"  # the newest release in CHANGELOG.md; pyproject.toml reads it from here

_EXPORTS = {
    "BTAD": ".data",
    "CIFAR10": ".data",
    "MVTec": ".data",
    "build_demo_dataset": ".data",
    "PRESETS": ".backbones",
    "BackbonePreset": ".backbones",
    "FastFlow": ".lightning_model",
    "FastFlowModel": ".torch_model",
    "FastFlowPostProcessor": ".post_processor",
}
__all__ = [
    "BTAD",
    "CIFAR10",
    "PRESETS",
    "BackbonePreset",
    "FastFlow",
    "FastFlowModel",
    "FastFlowPostProcessor",
    "MVTec",
    "build_demo_dataset",
]


def __getattr__(name: str) -> object:
    """Import ``name`` from its module the first time it is asked for."""
    if name not in _EXPORTS:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

"""FastFlow (2D normalizing flows for anomaly detection and localization) as an anomalib plugin."""

__version__ = "0.2.0"  # the newest release in CHANGELOG.md; pyproject.toml reads it from here

from .backbones import PRESETS, BackbonePreset
from .data import BTAD, CIFAR10, MVTec, build_demo_dataset
from .lightning_model import FastFlow
from .torch_model import FastFlowModel

__all__ = ["BTAD", "CIFAR10", "PRESETS", "BackbonePreset", "FastFlow", "FastFlowModel", "MVTec", "build_demo_dataset"]

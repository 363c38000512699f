"""Datamodule aliases, CIFAR-10 one-class, the demo-dataset builder and data checks."""

from .checks import DataCheck, check_image_files
from .cifar10 import CIFAR10
from .datamodules import BTAD, MVTec
from .demo import build_demo_dataset

__all__ = ["BTAD", "CIFAR10", "DataCheck", "MVTec", "build_demo_dataset", "check_image_files"]

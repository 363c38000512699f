"""Datamodule aliases, the demo-dataset builder and data checks."""

from .checks import DataCheck, check_image_files
from .datamodules import BTAD, MVTec
from .demo import build_demo_dataset

__all__ = ["BTAD", "DataCheck", "MVTec", "build_demo_dataset", "check_image_files"]

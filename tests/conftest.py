"""Shared fixtures: small generated datasets and tiny models (CPU, no downloads)."""

from pathlib import Path

import pytest
import torch

from anomalib_fastflow import build_demo_dataset

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset's ``brick`` category, small: 12 train, 4 good + 8 defective test images of 96 px."""
    root = tmp_path_factory.mktemp("tiny")
    return build_demo_dataset(
        root, ["brick"], image_size=96, num_train=12, num_test_good=4, num_test_per_defect=2, seed=1
    )

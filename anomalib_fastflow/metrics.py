"""AUROC from scores and binary labels, for measurements outside anomalib's evaluator (torchmetrics').

Image AUROC takes one score per image; pixel AUROC the anomaly maps and masks, every pixel a sample.
"""

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc


def auroc(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """AUROC of ``scores`` against binary ``labels`` (1 = anomalous) of the same shape, flattened."""
    return float(
        binary_auroc(torch.as_tensor(scores).float().flatten(), torch.as_tensor(labels).long().flatten())
    )

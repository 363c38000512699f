"""AUROC from scores and binary labels, for measurements outside anomalib's evaluator (torchmetrics').

Image AUROC takes one score per image; pixel AUROC the anomaly maps and masks, every pixel a sample.
"""

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc


def auroc(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """AUROC of ``scores`` against binary ``labels`` (1 = anomalous) of the same shape, flattened."""
    scores = torch.as_tensor(np.asarray(scores, dtype=np.float32) if isinstance(scores, np.ndarray) else scores)
    labels = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray) else labels)
    return float(binary_auroc(scores.float().flatten(), labels.long().flatten()))

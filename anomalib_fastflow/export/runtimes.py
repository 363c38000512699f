"""One call style for every runtime: ``runtime(images) -> {"anomaly_map": ..., "pred_score": ...}``.

``images`` is a float32 array ``(N, 3, H, W)`` in ``[0, 1]``; exported graphs hold anomalib's
pre- and post-processing, so no runtime needs Python-side processing. Outputs are numpy arrays:
``anomaly_map`` ``(N, 1, H', W')`` and ``pred_score`` ``(N,)``.
"""

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from anomalib.models.components import AnomalibModule


def check_images(images: np.ndarray) -> np.ndarray:
    """Validate an ``(N, 3, H, W)`` batch and return it as contiguous float32.

    Raises:
        ValueError: Wrong rank or number of channels.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        msg = f"Expected RGB images of shape (N, 3, H, W), got shape {tuple(images.shape)}."
        raise ValueError(msg)
    return np.ascontiguousarray(images, dtype=np.float32)


class Runtime(Protocol):
    """A loaded model that maps an image batch to anomaly maps and scores."""

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``(N, 3, H, W)`` float32 images -> ``{"anomaly_map", "pred_score", ...}`` arrays."""
        ...


class TorchRuntime:
    """The trained anomalib module in PyTorch eager mode (the parity reference)."""

    def __init__(self, model: AnomalibModule) -> None:
        self.model = model.eval()

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Pre-processor, model and post-processor, as the exported graph runs them."""
        output = self.model(torch.from_numpy(check_images(images)))
        return {name: value.numpy() for name, value in output._asdict().items() if value is not None}


class OnnxRuntime:
    """An exported ``.onnx`` file run by ONNX Runtime on the CPU."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the session on ``images``."""
        outputs = self.session.run(None, {self.input_name: check_images(images)})
        return dict(zip(self.output_names, outputs, strict=True))


class OpenVINORuntime:
    """An OpenVINO IR (``.xml``) or ``.onnx`` file compiled for ``device``."""

    def __init__(self, path: Path, device: str = "CPU") -> None:
        import openvino

        self.model = openvino.Core().compile_model(str(path), device)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the compiled model on ``images``."""
        outputs = self.model(check_images(images))
        return {next(iter(port.names)): value for port, value in outputs.items()}

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
    """An exported ``.onnx`` file run by ONNX Runtime on the CPU.

    Its threads do not spin-wait after a run: spinning threads would slow whatever runs next in
    the process (another runtime, or the rest of an application) on a small machine.
    """

    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the session on ``images``."""
        outputs = self.session.run(None, {self.input_name: check_images(images)})
        return dict(zip(self.output_names, outputs, strict=True))


class OpenVINORuntime:
    """An OpenVINO IR (``.xml``) or ``.onnx`` file compiled for ``device``.

    CPU thread pinning is off by default: pinned OpenVINO threads collide with other threads of
    the same process (torch's, or another compiled model's), and latencies then swing by 40%
    from run to run on a small machine. Pass ``config`` to change OpenVINO's settings.
    """

    def __init__(self, path: Path, device: str = "CPU", config: dict | None = None) -> None:
        import openvino

        default = {"ENABLE_CPU_PINNING": False} if device == "CPU" else {}
        self.model = openvino.Core().compile_model(str(path), device, {**default, **(config or {})})

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the compiled model on ``images``."""
        outputs = self.model(check_images(images))
        return {next(iter(port.names)): value for port, value in outputs.items()}

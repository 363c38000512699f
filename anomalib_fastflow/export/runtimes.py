"""One call style for every runtime: ``runtime(images) -> {"anomaly_map": ..., "pred_score": ...}``.

``images`` is a float32 array ``(N, 3, H, W)`` in ``[0, 1]``; exported graphs hold anomalib's
pre- and post-processing, so no runtime needs Python-side processing. Outputs are numpy arrays:
``anomaly_map`` ``(N, 1, H', W')`` and ``pred_score`` ``(N,)``. Each runtime says in ``precision``
what it computes in (for OpenVINO, read back from the compiled model).
"""

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from anomalib.models.components import AnomalibModule

from .availability import tensorrt_unavailable_reason
from .openvino_compile import InferencePrecision, compile_model, compiled_precision, output_name


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

    precision: str

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``(N, 3, H, W)`` float32 images -> ``{"anomaly_map", "pred_score", ...}`` arrays."""
        ...


class TorchRuntime:
    """The trained anomalib module in PyTorch eager mode (the parity reference).

    With ``autocast_dtype`` (``torch.bfloat16``) it runs under CPU autocast: convolutions and
    matrix products in that type, the rest (norms, the likelihood's ``exp``) in float32.
    """

    def __init__(self, model: AnomalibModule, autocast_dtype: torch.dtype | None = None) -> None:
        self.model = model.eval()
        self.autocast_dtype = autocast_dtype
        dtype_name = str(autocast_dtype).removeprefix("torch.")
        self.precision = "f32" if autocast_dtype is None else f"{dtype_name} autocast"

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Pre-processor, model and post-processor, as the exported graph runs them."""
        with torch.autocast("cpu", dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            output = self.model(torch.from_numpy(check_images(images)))
        return {
            name: (value.float() if value.is_floating_point() else value).numpy()
            for name, value in output._asdict().items()
            if value is not None
        }


class OnnxRuntime:
    """An exported ``.onnx`` file run by ONNX Runtime, on the CPU unless ``providers`` say otherwise
    (e.g. ``["CUDAExecutionProvider"]`` or ``["TensorrtExecutionProvider"]`` with onnxruntime-gpu).

    Its threads do not spin-wait after a run: spinning threads would slow whatever runs next in
    the process (another runtime, or the rest of an application) on a small machine.
    """

    precision = "f32"

    def __init__(self, path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=list(providers))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the session on ``images``."""
        outputs = self.session.run(None, {self.input_name: check_images(images)})
        return dict(zip(self.output_names, outputs, strict=True))


class OpenVINORuntime:
    """An OpenVINO IR (``.xml``) or ``.onnx`` file compiled for ``device`` at ``inference_precision``.

    The precision is always passed explicitly (OpenVINO's default depends on the CPU: bf16 on
    AVX-512 BF16 and AMX CPUs), and ``precision`` is what the compiled model runs. The model is
    compiled once per batch size it is called with (a fixed batch runs faster than the IR's
    free one, ``docs/openvino_settings.md``; the image size stays free). Pass ``config`` to change other OpenVINO
    settings (see ``openvino_compile.precision_config``).
    """

    def __init__(
        self,
        path: Path,
        device: str = "CPU",
        inference_precision: InferencePrecision = "f32",
        config: dict | None = None,
    ) -> None:
        self.path, self.device, self.config = path, device, config
        self.inference_precision = inference_precision
        self.compiled = {1: compile_model(path, device, inference_precision, config, batch_size=1)}
        self.precision = compiled_precision(self.compiled[1])

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model compiled for this batch size (compiled now if it is new) on ``images``."""
        images = check_images(images)
        if len(images) not in self.compiled:
            self.compiled[len(images)] = compile_model(
                self.path, self.device, self.inference_precision, self.config, batch_size=len(images)
            )
        outputs = self.compiled[len(images)](images)
        return {output_name(port.names): value for port, value in outputs.items()}


class TensorRTRuntime:
    """A serialized TensorRT engine on the current CUDA device: ``runtime(images) -> outputs``.

    ``fp16`` says whether the engine was built with FP16 kernels allowed (its ``precision``).
    """

    def __init__(self, path: Path, fp16: bool = False) -> None:
        reason = tensorrt_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        import tensorrt as trt

        self._trt = trt
        self.precision = "fp16+f32" if fp16 else "f32"
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(
            Path(path).read_bytes()
        )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(index) for index in range(self.engine.num_io_tensors)]
        inputs = [name for name in names if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT]
        self.input_name = inputs[0]
        self.output_names = [name for name in names if name not in inputs]

    def _dtype(self, name: str) -> torch.dtype:
        types = {
            self._trt.DataType.FLOAT: torch.float32,
            self._trt.DataType.HALF: torch.float16,
            self._trt.DataType.BOOL: torch.bool,
            self._trt.DataType.INT32: torch.int32,
            self._trt.DataType.INT64: torch.int64,
        }
        return types[self.engine.get_tensor_dtype(name)]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Copy ``images`` to the GPU, run the engine and return its outputs as numpy arrays."""
        batch = torch.from_numpy(check_images(images)).cuda()
        self.context.set_input_shape(self.input_name, tuple(batch.shape))
        self.context.set_tensor_address(self.input_name, batch.data_ptr())
        outputs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=self._dtype(name), device="cuda")
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        stream = torch.cuda.current_stream()
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return {name: tensor.cpu().numpy() for name, tensor in outputs.items()}

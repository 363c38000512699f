"""TensorRT engines from the exported ONNX, and an inferencer in anomalib's call style.

Needs NVIDIA's ``tensorrt`` package (``pip install anomalib-fastflow[tensorrt]``) and a CUDA GPU;
``unavailable_reason()`` says in one line what is missing. Buffers live in torch CUDA tensors,
so nothing beyond torch and tensorrt is needed.
"""

from pathlib import Path

import numpy as np
import torch
from anomalib.data import NumpyImageBatch
from anomalib.deploy import OpenVINOInferencer

from .runtimes import check_images


def unavailable_reason() -> str | None:
    """Why TensorRT cannot run here, or ``None`` when it can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install 'anomalib-fastflow[tensorrt]')."
    if not torch.cuda.is_available():
        return "TensorRT needs an NVIDIA GPU, and torch sees no CUDA device."
    return None


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    image_size: tuple[int, int],
    fp16: bool = False,
    batch_sizes: tuple[int, int, int] = (1, 1, 1),
    workspace_gib: int = 4,
) -> Path:
    """Build and save a TensorRT engine for an exported FastFlow ONNX graph.

    Args:
        onnx_path: Exported ONNX file; its batch and image axes may be dynamic.
        engine_path: Where the serialized engine goes.
        image_size: ``(H, W)`` the engine takes (the model's input size).
        fp16: Allow FP16 kernels (FP32 otherwise).
        batch_sizes: ``(min, opt, max)`` batch for a dynamic batch axis; all equal means fixed.
        workspace_gib: Builder workspace limit.

    Raises:
        RuntimeError: TensorRT is unavailable, cannot parse the graph or build the engine.
        ValueError: The graph's fixed shape differs from ``image_size`` or ``batch_sizes``.
    """
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(index)) for index in range(parser.num_errors))
        msg = f"TensorRT could not parse {onnx_path}: {errors}"
        raise RuntimeError(msg)
    image = network.get_input(0)
    graph_shape = tuple(image.shape)
    shapes = [(batch, 3, *image_size) for batch in batch_sizes]
    for axis, size in enumerate(graph_shape):
        if size >= 0 and any(shape[axis] != size for shape in shapes):
            msg = f"{onnx_path} has the fixed input shape {graph_shape}, which cannot take {shapes}."
            raise ValueError(msg)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_gib << 30)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(image.name, *shapes)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        msg = f"TensorRT failed to build an engine from {onnx_path}."
        raise RuntimeError(msg)
    engine_path = Path(engine_path)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(serialized)
    return engine_path


class TensorRTRuntime:
    """A serialized TensorRT engine on the current CUDA device: ``runtime(images) -> outputs``.

    ``fp16`` says whether the engine was built with FP16 kernels allowed (its ``precision``).
    """

    def __init__(self, path: Path, fp16: bool = False) -> None:
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        import tensorrt as trt

        self._trt = trt
        self.precision = "fp16+f32" if fp16 else "f32"
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(Path(path).read_bytes())
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


class TensorRTInferencer:
    """anomalib-style inferencer for a TensorRT engine: ``predict(image) -> NumpyImageBatch``.

    Accepts what anomalib's ``OpenVINOInferencer`` accepts (path, HWC/CHW array or tensor) and
    prepares it the same way.
    """

    def __init__(self, path: str | Path) -> None:
        self.runtime = TensorRTRuntime(Path(path))

    def predict(self, image: str | Path | np.ndarray | torch.Tensor) -> NumpyImageBatch:
        """Anomaly map and score of one image (or a batch).

        Raises:
            ValueError: The image does not have 3 channels.
        """
        if isinstance(image, str | Path):
            from anomalib.data.utils import read_image

            image = read_image(image, as_tensor=False)
        elif isinstance(image, torch.Tensor):
            image = image.cpu().numpy()
        image = OpenVINOInferencer.pre_process(image)
        return NumpyImageBatch(image=image, **self.runtime(image))

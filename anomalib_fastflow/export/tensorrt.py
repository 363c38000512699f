"""TensorRT engines built from the exported ONNX graph.

Needs NVIDIA's ``tensorrt`` package (``pip install anomalib-fastflow[tensorrt]``) and a CUDA GPU;
``availability.tensorrt_unavailable_reason()`` says in one line what is missing. The engine runs in
``runtimes.TensorRTRuntime`` and ``inferencers.TensorRTInferencer``.
"""

from pathlib import Path

from .availability import tensorrt_unavailable_reason


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
    reason = tensorrt_unavailable_reason()
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

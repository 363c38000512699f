"""FastFlow captured whole in a CUDA graph: batch-1 inference without the kernels' launch overhead.

At batch 1 FastFlow's network (backbone, norms, flows, map, score) is hundreds of small kernels;
on a GPU their launches, not their arithmetic, set the latency. ``CudaGraphModel`` records one
forward pass for a fixed input shape into a CUDA graph and replays it with a single launch.
``fastest_inference`` returns it where CUDA is there, and the eager network with a one-line reason
where it is not (a CPU, no CUDA build), so that the same code runs everywhere.
"""

from collections.abc import Callable

import torch
from torch import nn


def cuda_graph_unavailable_reason() -> str | None:
    """Why a CUDA graph cannot be captured here, or ``None`` when it can."""
    if not torch.cuda.is_available():
        return "CUDA graphs need an NVIDIA GPU, and torch sees no CUDA device."
    return None


class CudaGraphModel:
    """``module`` (in eval mode, on a CUDA device) captured for inputs of one shape.

    Calling it copies the images into the graph's input and replays the graph; the outputs are the
    graph's own tensors, overwritten by the next call (clone what you keep).

    Args:
        module: The network to capture, e.g. ``FastFlow(...).model`` (``(N, 3, H, W) -> InferenceBatch``).
        input_shape: ``(N, 3, H, W)`` of every call.
        autocast_dtype: Capture under CUDA autocast to this dtype (``torch.float16``), or ``None`` (fp32).
        warmup: Eager passes on a side stream before the capture (cuDNN picks its kernels there).

    Raises:
        RuntimeError: No CUDA device (the message is ``cuda_graph_unavailable_reason``'s).
    """

    def __init__(
        self,
        module: nn.Module,
        input_shape: tuple[int, int, int, int],
        autocast_dtype: torch.dtype | None = None,
        warmup: int = 3,
    ) -> None:
        if reason := cuda_graph_unavailable_reason():
            raise RuntimeError(reason)
        device = next(module.parameters()).device
        self.static_input = torch.zeros(input_shape, device=device)
        autocast = torch.autocast("cuda", dtype=autocast_dtype, enabled=autocast_dtype is not None)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.inference_mode(), autocast:
            for _ in range(warmup):
                module(self.static_input)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), autocast, torch.cuda.graph(self.graph):
            self.static_output = module(self.static_input)

    def __call__(self, images: torch.Tensor) -> object:
        """Outputs for ``images`` of the captured shape (on the captured device)."""
        self.static_input.copy_(images)
        self.graph.replay()
        return self.static_output


def fastest_inference(
    module: nn.Module, input_shape: tuple[int, int, int, int]
) -> tuple[Callable[[torch.Tensor], object], str | None]:
    """``module`` as a CUDA graph where one can be captured, else ``module`` itself and why not.

    Example:
        >>> network = FastFlow.from_checkpoint(CKPT).model.cuda()  # doctest: +SKIP
        >>> infer, reason = fastest_inference(network, (1, 3, 256, 256))  # doctest: +SKIP
        >>> prediction = infer(images)  # InferenceBatch: pred_score, anomaly_map  # doctest: +SKIP
    """
    if reason := cuda_graph_unavailable_reason():
        return module, reason
    return CudaGraphModel(module, input_shape), None

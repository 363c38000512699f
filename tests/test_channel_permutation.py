"""The flows' channel permutations rewritten as 1x1 convolutions for OpenVINO: exact, and only where asked."""

import numpy as np
import openvino
import pytest
from openvino import opset13

from anomalib_fastflow.channel_permutation import permutations_as_convolutions


def _gather_model(indices: np.ndarray, axis: int, channels: int = 6) -> "openvino.Model":
    """``x -> Gather(x, indices, axis) + 0`` on ``(N, channels, 5, 7)`` f32 images."""
    image = opset13.parameter([-1, channels, 5, 7], np.float32, name="image")
    gathered = opset13.gather(
        image, opset13.constant(indices.astype(np.int64)), opset13.constant(np.int64(axis))
    )
    return openvino.Model([opset13.add(gathered, opset13.constant(np.float32(0)))], [image])


def _run(model: "openvino.Model", images: np.ndarray) -> np.ndarray:
    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(images)[0]


def _types(model: "openvino.Model") -> list[str]:
    return [op.get_type_name() for op in model.get_ordered_ops()]


def test_a_channel_permutation_becomes_an_exact_convolution() -> None:
    permutation = np.random.default_rng(0).permutation(6)
    model = _gather_model(permutation, axis=1)
    images = np.random.default_rng(1).standard_normal((3, 6, 5, 7)).astype(np.float32) * 1e3
    assert permutations_as_convolutions(model) == 1
    assert "Gather" not in _types(model) and "Convolution" in _types(model)
    np.testing.assert_array_equal(_run(model, images), images[:, permutation])


@pytest.mark.parametrize(
    ("indices", "axis", "max_channels"),
    [
        (np.array([4, 3, 2, 1, 0]), 2, 128),  # permutes rows, not channels
        (np.array([0, 0, 1, 2, 3, 4]), 1, 128),  # repeats a channel: not a permutation
        (np.array([1, 0, 2]), 1, 128),  # picks some channels only
        (np.array([5, 4, 3, 2, 1, 0]), 1, 4),  # wider than asked for
    ],
)
def test_other_gathers_are_left_alone(indices: np.ndarray, axis: int, max_channels: int) -> None:
    model = _gather_model(indices, axis)
    assert permutations_as_convolutions(model, max_channels) == 0
    assert "Gather" in _types(model) and "Convolution" not in _types(model)

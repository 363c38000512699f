"""The flows' channel permutations as 1x1 convolutions, for OpenVINO's CPU plugin.

Each flow step ends with a hard channel permutation, a ``Gather`` along channels in the exported
graph. OpenVINO's CPU plugin runs the flows' convolutions in a channels-last layout but a
``Gather`` only in the planar one, so every step pays a layout reorder of its whole feature map
(measured in ``docs/openvino_settings.md``). A 1x1
convolution with a one-hot weight computes the same permutation exactly in f32 (one product by 1,
the rest by 0; in a bf16 model, exactly on the bf16 values it is given) and stays in the
convolutions' layout. It costs ``C^2`` multiply-adds per pixel against the reorder's ``C``, so it
pays for narrow feature maps only: up to ``MAX_CHANNELS`` (where that limit comes from:
``docs/openvino_settings.md``). Used by ``FastFlow.to_openvino`` (what ``anomalib export
--export_type openvino`` writes) and by our exporter's OpenVINO formats.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import openvino

MAX_CHANNELS = 128


def permutations_as_convolutions(model: "openvino.Model", max_channels: int = MAX_CHANNELS) -> int:
    """Replace each channel-permuting ``Gather`` of at most ``max_channels`` in ``model``; returns how many.

    A channel permutation is a ``Gather`` on axis 1 of an ``(N, C, H, W)`` f32 tensor with constant
    indices that hold each of ``0 .. C-1`` once.
    """
    from openvino import opset13

    replaced = 0
    for op in model.get_ordered_ops():
        permutation = _channel_permutation(op)
        if permutation is None or len(permutation) > max_channels:
            continue
        channels = len(permutation)
        weight = np.zeros((channels, channels, 1, 1), dtype=np.float32)
        weight[np.arange(channels), permutation] = 1.0
        conv = opset13.convolution(
            op.input_value(0), opset13.constant(weight), [1, 1], [0, 0], [0, 0], [1, 1]
        )
        conv.set_friendly_name(op.get_friendly_name())
        op.output(0).replace(conv.output(0))
        replaced += 1
    return replaced


def rewrite_openvino_permutations(path: Path, compression: object = None) -> Path:
    """Rewrite the OpenVINO IR at ``path`` in place with ``permutations_as_convolutions``; return ``path``.

    ``compression`` is anomalib's ``CompressionType`` the IR was exported with: FP32 (``None``) and
    FP16 IRs are rewritten (FP16 saved as FP16 again); INT8 IRs are left as NNCF wrote them.
    """
    import openvino  # the export extra, which anomalib's own to_openvino needs as well
    from anomalib.deploy import CompressionType

    if compression not in (None, CompressionType.FP16):
        return path
    model = openvino.Core().read_model(path)
    if permutations_as_convolutions(model):
        rewritten = path.with_name(f"{path.stem}.rewritten.xml")
        openvino.save_model(model, rewritten, compress_to_fp16=compression == CompressionType.FP16)
        del model  # the IR's weights file may be mapped until the model is gone
        rewritten.replace(path)
        rewritten.with_suffix(".bin").replace(path.with_suffix(".bin"))
    return path


def _channel_permutation(op: "openvino.Node") -> np.ndarray | None:
    """The indices of ``op`` if it permutes the channels of an ``(N, C, H, W)`` f32 tensor, else None."""
    if op.get_type_name() != "Gather" or op.get_input_size() != 3:
        return None
    indices, axis = (op.input_value(i).get_node() for i in (1, 2))
    if indices.get_type_name() != "Constant" or axis.get_type_name() != "Constant":
        return None
    shape = op.get_input_partial_shape(0)
    if shape.rank.is_dynamic or shape.rank.get_length() != 4 or not shape[1].is_static:
        return None
    if op.get_input_element_type(0).get_type_name() != "f32" or int(axis.get_data().item()) not in (1, -3):
        return None
    permutation = indices.get_data().astype(np.int64)
    if permutation.ndim != 1 or not np.array_equal(np.sort(permutation), np.arange(shape[1].get_length())):
        return None
    return permutation

"""bf16 that keeps the anomaly map: the image's first stage in f32, the rest of the model in bf16.

Run wholly in bf16, our models lose image AUROC (0.031 on the demo's retina, AMD EPYC with AVX-512
BF16, ``docs/export_parity_demo.md``): the flows read a small shift of a feature as a loss of
likelihood, and the shift comes from the image's first, full-detail stage (pre-processing and the
backbone's stem), not from the flows (``studies/openvino_bf16_cut.py``). ``keep_stem_f32``
marks that stage, every op before the flows' norms whose output is still at half the input
resolution or more, to stay in f32; OpenVINO's CPU plugin keeps marked ops at their IR precision
under a bf16 ``INFERENCE_PRECISION_HINT``, and the marks are saved in the IR, so anyone who
compiles the file in bf16 (anomalib's ``OpenVINOInferencer`` on a bf16 CPU included) gets the
same split. The marks only take effect in a model read from a saved IR.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import openvino

# OpenVINO's marker that keeps an op at its IR precision: the name Python sets, and the name it
# has once ``save_model`` wrote it and ``read_model`` read it back.
KEEP_PRECISION = "precise_0"
KEPT_PRECISION = "DisablePrecisionConversion_0"
# The flows start at their per-scale LayerNorm, which OpenVINO reads as MVN.
FLOWS_START = "MVN"
CONVOLUTIONS = ("Convolution", "GroupConvolution")


def keep_stem_f32(
    model: "openvino.Model",
    input_size: tuple[int, int],
    min_scale: float = 0.5,
    max_convolutions: int | None = None,
) -> int:
    """Mark every op of the image's first stage in ``model`` to keep f32; returns how many were marked.

    The first stage is every op that does not depend on the flows' norms nor on an activation
    whose height or width is below ``min_scale`` of ``input_size`` ``(H, W)``: the input,
    pre-processing and the backbone's stem; with ``max_convolutions``, it also ends before the
    convolution after that many. Constants are marked when all their users are.
    """
    min_height, min_width = (min_scale * size for size in input_size)
    ops = model.get_ordered_ops()
    later: set[str] = set()  # the flows and map, and the backbone past its stem
    convolutions = 0
    for op in ops:
        if op.get_type_name() in CONVOLUTIONS:
            if max_convolutions is not None and convolutions >= max_convolutions:
                later.add(op.get_friendly_name())
            convolutions += 1
        if op.get_type_name() == "Constant":  # weights: their shape is no resolution
            continue
        sources = (port.get_source_output().get_node().get_friendly_name() for port in op.inputs())
        shape = op.get_output_partial_shape(0) if op.get_output_size() else None
        low_resolution = (
            shape is not None
            and shape.rank.is_static
            and shape.rank.get_length() == 4
            and shape[2].is_static
            and shape[3].is_static
            and (shape[2].get_length() < min_height or shape[3].get_length() < min_width)
        )
        if op.get_type_name() == FLOWS_START or low_resolution or any(name in later for name in sources):
            later.add(op.get_friendly_name())
    stem = [op for op in ops if op.get_type_name() != "Constant" and op.get_friendly_name() not in later]
    stem_names = {op.get_friendly_name() for op in stem}
    stem += [op for op in ops if op.get_type_name() == "Constant" and set() < _users(op) <= stem_names]
    for op in stem:
        op.get_rt_info()[KEEP_PRECISION] = ""
    return len(stem)


def _users(op: "openvino.Node") -> set[str]:
    """The names of the ops that read ``op``'s outputs."""
    targets = (target for output in op.outputs() for target in output.get_target_inputs())
    return {target.get_node().get_friendly_name() for target in targets}


def keeps_stem_f32(model: "openvino.Model") -> bool:
    """Whether ``model`` (read from an IR) holds ops marked by ``keep_stem_f32``."""
    return any(KEPT_PRECISION in op.get_rt_info() for op in model.get_ordered_ops())

"""anomalib-style inferencers for exported FastFlow models: ``inferencer.predict(image) -> batch``.

``openvino_inferencer`` builds anomalib's own ``OpenVINOInferencer`` for an IR at the precision asked
for; ``TensorRTInferencer`` gives a TensorRT engine the same call style.
"""

from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING

import numpy as np
import torch
from anomalib.data import NumpyImageBatch
from anomalib.deploy import OpenVINOInferencer

from .availability import openvino_bf16_unavailable_reason
from .openvino_compile import (
    PRECISIONS,
    Precision,
    check_device,
    output_name,
    precision_config,
    read_model,
    weights_precision,
)
from .runtimes import TensorRTRuntime

if TYPE_CHECKING:
    from openvino.utils.data_helpers.wrappers import OVDict


def openvino_inferencer(
    path: Path | str,
    precision: Precision = "fp32",
    device: str = "CPU",
    batch_size: int | None = 1,
    config: dict | None = None,
) -> "OpenVINOInferencer":
    """anomalib's ``OpenVINOInferencer`` for an exported FastFlow, compiled at the precision asked for.

    ``fp32``, ``fp16`` (FP16 weights) and ``int8`` files run at f32 inference precision on every
    CPU; ``bf16`` runs an ``openvino_bf16`` file in bf16 but for its f32 first stage. The model is
    compiled for ``batch_size`` images per call (any image size; ``None`` keeps the batch free,
    slower on a CPU, ``docs/openvino_settings.md``). The call style is anomalib's:
    ``openvino_inferencer("openvino_fp32/model.xml").predict(image)``.

    Raises:
        ValueError: An unknown precision, a file that stores another precision than asked, a
            device OpenVINO does not see, or bf16 where OpenVINO cannot run it.
        FileNotFoundError: No file at ``path``.
    """
    import openvino

    if precision not in PRECISIONS:
        msg = f"precision={precision!r}: choose from {list(PRECISIONS)}."
        raise ValueError(msg)
    if not Path(path).is_file():
        msg = f"OpenVINO model not found: {path}"
        raise FileNotFoundError(msg)
    check_device(device)
    stored, inference_precision = PRECISIONS[precision]
    found = weights_precision(path)
    if found != stored:
        msg = (
            f"{path} holds a {found.upper()} model, "
            f"but precision={precision!r} asks for a {stored.upper()} one."
        )
        raise ValueError(msg)
    if inference_precision == "bf16" and (reason := openvino_bf16_unavailable_reason(device)):
        raise ValueError(reason)
    with TemporaryDirectory() as folder:  # anomalib's inferencer takes a file or the IR's bytes
        xml = Path(folder) / "model.xml"
        openvino.save_model(read_model(path, batch_size), xml, compress_to_fp16=False)
        model = (xml.read_bytes(), xml.with_suffix(".bin").read_bytes())
    settings = {**precision_config(inference_precision, device), **(config or {})}
    return FastFlowOpenVINOInferencer(model, device=device, config=settings)


class FastFlowOpenVINOInferencer(OpenVINOInferencer):
    """anomalib's ``OpenVINOInferencer``, naming each output by our graph's names (``output_name``)."""

    @staticmethod
    def post_process(predictions: "OVDict") -> dict:
        """OpenVINO's outputs as ``{"pred_score": ..., "anomaly_map": ..., ...}``."""
        return {
            output_name(names): value
            for names, value in zip(predictions.names(), predictions.to_tuple(), strict=True)
        }


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

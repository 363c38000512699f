"""FastFlow as an anomalib model: ``anomalib train --model anomalib_fastflow.FastFlow --data MVTec``.

Example:
    >>> from anomalib.engine import Engine
    >>> from anomalib_fastflow import FastFlow, MVTec
    >>> model = FastFlow(backbone="resnet18")  # the paper's ResNet18 preset
    >>> Engine(max_epochs=500).train(model, datamodule=MVTec(root="datasets/MVTecAD"))  # doctest: +SKIP
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from anomalib import LearningType
from anomalib.data import Batch
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torchvision.transforms.v2 import Compose, Normalize, Resize

from .anomaly_map import Fusion, Likelihood
from .backbones import OFFLINE_BACKBONE, PRETRAINED_WEIGHTS, normalization, resolve_preset
from .data.checks import DataCheck
from .loss import negative_log_likelihood
from .torch_model import FastFlowModel


def _network_shapes(state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(tensor.shape) for key, tensor in state_dict.items() if key.startswith("model.")}


class FastFlow(AnomalibModule):
    """FastFlow: unsupervised anomaly detection and localization with 2D normalizing flows.

    Settings left as ``None`` take the paper's preset for the backbone (``backbones.PRESETS``:
    ``resnet18``, ``wide_resnet50_2``, ``deit_base_distilled_patch16_384``, ``cait_m48_448`` and the
    offline ``tf_efficientnet_lite0``), or defaults derived from any other timm model.

    Args:
        backbone: timm model name.
        layers: Backbone feature indices (CNN stages or one transformer block), one flow each.
        flow_steps: Coupling steps per flow.
        conv3x3_only: 3x3 subnet kernels in every step instead of 3x3 / 1x1 alternating.
        hidden_ratio: Subnet hidden channels as a multiple of their input channels.
        input_size: Network input ``(H, W)`` or side; any size works, not only multiples of 32.
        weights: Backbone weights: ``"pretrained"`` (packaged offline weights where they exist,
            else timm's hub download), ``"random"``, or a path to a local weights file.
        likelihood: Per-scale anomaly map from the ``probability`` (paper) or the ``log``-likelihood.
        fusion: Combine scales by their ``mean`` (paper) or pixel-wise ``max``.
        top_k_fraction: Image score = mean of this fraction of top pixels; 0 takes the maximum.
        lr: Adam learning rate (paper: 1e-3).
        weight_decay: Adam weight decay (paper: 1e-5).
        pre_processor: anomalib pre-processor, or ``True`` for resize + the backbone's normalization.
        post_processor: anomalib post-processor, or ``True`` for the default.
        evaluator: anomalib evaluator, or ``True`` for image/pixel AUROC and F1 on the test set.
        visualizer: anomalib visualizer, or ``True`` for the default image visualizer.

    Raises:
        ValueError: Unknown backbone, layers outside it, or an input size that disagrees with
            the given pre-processor.
    """

    def __init__(
        self,
        backbone: str = OFFLINE_BACKBONE,
        layers: Sequence[int] | None = None,
        flow_steps: int | None = None,
        conv3x3_only: bool | None = None,
        hidden_ratio: float | None = None,
        input_size: int | tuple[int, int] | None = None,
        weights: str = PRETRAINED_WEIGHTS,
        likelihood: Likelihood = "probability",
        fusion: Fusion = "mean",
        top_k_fraction: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        preset = resolve_preset(backbone)
        requested_size = (input_size, input_size) if isinstance(input_size, int) else input_size
        if pre_processor is True:
            size = tuple(requested_size or (preset.input_size, preset.input_size))
            pre_processor = self.configure_pre_processor(size, backbone)
        super().__init__(
            pre_processor=pre_processor,
            post_processor=post_processor,
            evaluator=evaluator,
            visualizer=visualizer,
        )
        if self.input_size is None:
            msg = "FastFlow needs a fixed input size: give `input_size` or a pre-processor that resizes."
            raise ValueError(msg)
        if requested_size is not None and tuple(requested_size) != tuple(self.input_size):
            msg = f"input_size={tuple(requested_size)} disagrees with the pre-processor's {tuple(self.input_size)}."
            raise ValueError(msg)
        self.model = FastFlowModel(
            backbone=backbone,
            layers=preset.layers if layers is None else layers,
            input_size=tuple(self.input_size),
            flow_steps=preset.flow_steps if flow_steps is None else flow_steps,
            conv3x3_only=preset.conv3x3_only if conv3x3_only is None else conv3x3_only,
            hidden_ratio=preset.hidden_ratio if hidden_ratio is None else hidden_ratio,
            weights=weights,
            final_norm=preset.final_norm,
            likelihood=likelihood,
            fusion=fusion,
            top_k_fraction=top_k_fraction,
        )

    @classmethod
    def configure_pre_processor(
        cls,
        image_size: tuple[int, int] | None = None,
        backbone: str = OFFLINE_BACKBONE,
    ) -> PreProcessor:
        """Resize to ``image_size`` (default: the backbone's preset) and normalize as its weights expect."""
        image_size = image_size or (resolve_preset(backbone).input_size,) * 2
        mean, std = normalization(backbone)
        return PreProcessor(transform=Compose([Resize(image_size, antialias=True), Normalize(mean, std)]))

    def training_step(self, batch: Batch, *args, **kwargs) -> STEP_OUTPUT:
        """Negative log-likelihood of the batch's features under the flows."""
        del args, kwargs
        latents, log_jacobians = self.model(batch.image)
        loss = negative_log_likelihood(latents, log_jacobians)
        if not torch.isfinite(loss):
            self._stop_with_last_good_weights(f"the training loss is {loss.item()} for images {batch.image_path}")
        self.log("train_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch.image))
        return {"loss": loss}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Stop before a non-finite gradient can reach the weights."""
        del optimizer
        gradients = [parameter.grad.sum() for parameter in self.model.parameters() if parameter.grad is not None]
        if gradients and not torch.isfinite(torch.stack(gradients)).all():
            self._stop_with_last_good_weights("a gradient is not finite")

    def _stop_with_last_good_weights(self, reason: str) -> None:
        """Save the weights (still finite: no bad step was taken) and stop training.

        Raises:
            FloatingPointError: Always; names the epoch, step and checkpoint.
        """
        path = Path(self.trainer.default_root_dir) / "last_good_weights.ckpt"
        self.trainer.save_checkpoint(path)
        msg = (
            f"Training stopped at epoch {self.current_epoch}, step {self.global_step}: {reason}. "
            f"The last good weights are saved in {path}."
        )
        raise FloatingPointError(msg)

    def validation_step(self, batch: Batch, *args, **kwargs) -> STEP_OUTPUT:
        """Anomaly maps and scores for the batch (used by the post-processor's thresholds)."""
        del args, kwargs
        return batch.update(**self.model(batch.image)._asdict())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over the trainable norms and flows (the backbone is frozen)."""
        parameters = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        return torch.optim.Adam(parameters, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, in one clear line, a checkpoint whose network differs from this model's.

        Raises:
            ValueError: The checkpoint's tensors do not fit (another backbone, layers or size).
        """
        if _network_shapes(checkpoint.get("state_dict", {})) != _network_shapes(self.state_dict()):
            settings = ("backbone", "layers", "input_size", "flow_steps", "conv3x3_only", "hidden_ratio")
            saved = checkpoint.get("hyper_parameters", {})
            msg = (
                "The checkpoint does not fit this FastFlow model: it was trained with "
                + ", ".join(f"{key}={saved.get(key)!r}" for key in settings)
                + "; this model has "
                + ", ".join(f"{key}={self.hparams.get(key)!r}" for key in settings)
                + ". Build the model with the checkpoint's settings."
            )
            raise ValueError(msg)
        super().on_load_checkpoint(checkpoint)

    def configure_callbacks(self) -> list[Callback]:
        """anomalib's component callbacks plus a check of every image before the first step."""
        return [*super().configure_callbacks(), DataCheck()]

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """No gradient clipping and no sanity validation; the epoch budget is the user's to set."""
        return {"gradient_clip_val": 0, "num_sanity_val_steps": 0}

    @property
    def learning_type(self) -> LearningType:
        """FastFlow learns from normal images only."""
        return LearningType.ONE_CLASS

"""FastFlow as an anomalib model: ``anomalib train --model anomalib_fastflow.FastFlow --data MVTec``.

Example:
    >>> from anomalib.engine import Engine
    >>> from anomalib_fastflow import FastFlow, MVTec
    >>> model = FastFlow(backbone="resnet18")  # the paper's ResNet18 preset
    >>> Engine(max_epochs=500).train(model, datamodule=MVTec(root="datasets/MVTecAD"))  # doctest: +SKIP
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from anomalib import LearningType
from anomalib.data import Batch
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.utils.serialization import anomalib_safe_globals
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import STEP_OUTPUT, OptimizerLRScheduler
from torchvision.transforms.v2 import Compose, Normalize, Resize

from .backbones import OFFLINE_BACKBONE, PRETRAINED_WEIGHTS, normalization, resolve_preset
from .channel_permutation import rewrite_openvino_permutations
from .checkpoint import (
    CheckpointFile,
    add_missing_post_processor_state,
    check_network_fits,
    read_fastflow_checkpoint,
    take_own_metric_state,
    warn_if_scoring_differs,
)
from .data.checks import DataCheck
from .errors import InputError, require_at_least
from .loss import negative_log_likelihood
from .patch_features import PatchFeatures, stage_pooling
from .post_processor import FastFlowPostProcessor
from .removed_options import take_removed
from .torch_model import FastFlowModel
from .training.budget import DefaultBudget
from .training.guards import NonFiniteGuard
from .training.samplers import SeededOrder
from .training.schedule import budget_one_cycle
from .training.self_validation import SelfValidation
from .training.view_feature_cache import ViewFeatureCache
from .training.view_features import ViewFeatures
from .training.views import AugmentationChoice

LRSchedule = Literal["constant", "one_cycle"]
FUSED_ADAM_DEVICES = {"cpu", "cuda"}
WEIGHT_DECAY = 1e-5  # Adam's, the paper's
MIN_INPUT_SIZE = 32  # pixels a side: the deepest stage of a stride-32 backbone still has a position


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
        smoothing_sigma: Gaussian smoothing of the anomaly map in input pixels (0: none, as the
            paper); the image score is taken before smoothing.
        feature_pooling: Average each backbone feature over its ``k x k`` neighbourhood, as
            PatchCore does: one side for every stage, or one per stage (1: the features as they
            are, the paper's). The default, ``None``, chosen on real images
            (``docs/real_defaults.md``): 3 on every stage but the finest, which keeps its single
            positions. The model's ``hparams`` hold the sides it resolved to.
        augmentation: Training views: ``auto`` (the paper's flips and rotations where the category
            allows them, ``training.views.SAFE_AUGMENTATIONS``; none for unknown categories),
            ``paper`` (always) or ``none``.
        augmentation_views: Fixed views per training image when augmenting (view 0 is the image).
        affine_views: Give every view but the image a random zoom, rotation and shift, their ranges
            as a multiple of the paper's non-aligned test sets' (0: off; 1: zoom 0.85-1.18, +-15
            degrees, +-15% shift, for non-aligned parts; 0.25 for parts placed by hand).
        cache_memory_gb: Memory for the cached backbone features of the training views (half
            precision, per process); the rest spills to ``<default_root_dir>/feature_cache`` and is
            deleted after training. 0 turns the cache off.
        lr: Adam learning rate; the peak rate under ``one_cycle`` (paper: 1e-3, constant).
        lr_schedule: ``one_cycle`` (warm-up to ``lr``, then cosine decay over the run's steps; a run
            longer than the default budget peaks proportionally lower) or ``constant`` (paper).
            Without ``max_epochs``, ``max_steps`` or ``max_time`` FastFlow trains for its default
            budget (``training.budget.default_epochs``).
        self_validation: Normal training images held out of training; after the fit, the
            post-processor's normalisation and thresholds come from them and their synthetic
            defects instead of the validation split (``training.self_validation``). 0: off.
        pre_processor: anomalib pre-processor, or ``True`` for resize + the backbone's normalization.
        post_processor: anomalib post-processor, or ``True`` for ``FastFlowPostProcessor``.
        evaluator: anomalib evaluator, or ``True`` for image/pixel AUROC and F1 on the test set.
        visualizer: anomalib visualizer, or ``True`` for the default image visualizer.
        removed: Options removed in 0.3.0 (``removed_options``): a checkpoint that used one at its
            default loads; otherwise a one-line message says what to do.

    Raises:
        InputError: (a ``ValueError``) Unknown backbone, layers outside it, an input side below
            32 pixels or one that disagrees with the given pre-processor, fewer than one flow step,
            a hidden ratio or learning rate that is not positive, fewer than one augmentation view,
            a negative ``affine_views`` or ``self_validation``, or an unknown ``augmentation``.
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
        smoothing_sigma: float = 4.0,
        feature_pooling: int | Sequence[int] | None = None,
        augmentation: AugmentationChoice = "auto",
        augmentation_views: int = 4,
        affine_views: float = 0.0,
        cache_memory_gb: float = 4.0,
        lr: float = 5e-3,
        lr_schedule: LRSchedule = "one_cycle",
        self_validation: int = 0,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
        **removed: Any,
    ) -> None:
        affine_views, cache_memory_gb = take_removed(removed, affine_views, cache_memory_gb)
        if self_validation < 0:
            msg = f"self_validation={self_validation}: hold out 0 (off) or more normal training images."
            raise InputError(msg)
        preset = resolve_preset(backbone)
        requested_size = (input_size, input_size) if isinstance(input_size, int) else input_size
        for side in requested_size or ():
            require_at_least("input_size", side, MIN_INPUT_SIZE, "each side of the network's input in pixels")
        if flow_steps is not None:
            require_at_least("flow_steps", flow_steps, 1, "the coupling steps per flow")
        if hidden_ratio is not None and not hidden_ratio > 0:
            msg = f"hidden_ratio={hidden_ratio}: the subnets' hidden channels per input channel must be positive."
            raise InputError(msg)
        if not lr > 0:
            msg = f"lr={lr}: the learning rate must be positive."
            raise InputError(msg)
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
            raise InputError(msg)
        if requested_size is not None and tuple(requested_size) != tuple(self.input_size):
            msg = f"input_size={tuple(requested_size)} disagrees with the pre-processor's {tuple(self.input_size)}."
            raise InputError(msg)
        self.model = FastFlowModel(
            backbone=backbone,
            layers=preset.layers if layers is None else layers,
            input_size=tuple(self.input_size),
            flow_steps=preset.flow_steps if flow_steps is None else flow_steps,
            conv3x3_only=preset.conv3x3_only if conv3x3_only is None else conv3x3_only,
            hidden_ratio=preset.hidden_ratio if hidden_ratio is None else hidden_ratio,
            weights=weights,
            final_norm=preset.final_norm,
            smoothing_sigma=smoothing_sigma,
            feature_pooling=feature_pooling,
        )
        self.hparams["feature_pooling"] = list(self.model.patch_features.sides)  # what checkpoints hold
        cache_bytes = int(cache_memory_gb * 2**30) if cache_memory_gb > 0 else None
        self.view_cache = ViewFeatureCache(augmentation, augmentation_views, affine_views, cache_bytes)
        # the training views' features during a fit, set and freed by ``view_cache``
        self.view_features: ViewFeatures | None = None

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

    @classmethod
    def configure_post_processor(cls) -> FastFlowPostProcessor:
        """anomalib's post-processor, whose thresholds ``self_validation`` can fit on held-out images."""
        return FastFlowPostProcessor()

    @classmethod
    def from_checkpoint(cls, checkpoint: "str | Path | CheckpointFile") -> "FastFlow":
        """A trained FastFlow from a Lightning checkpoint, in eval mode on the CPU, its backbone
        weights read from the checkpoint (nothing downloaded).

        The file is read once and unpickled weights-only (``checkpoint.read_fastflow_checkpoint``);
        pass a ``CheckpointFile`` already read to keep its epochs and steps at hand.

        Raises:
            MissingInputError: (a ``FileNotFoundError``) No file at the path.
            InputError: (a ``ValueError``) The file is no PyTorch checkpoint, or not a FastFlow one.
        """
        if not isinstance(checkpoint, CheckpointFile):
            checkpoint = read_fastflow_checkpoint(checkpoint, cls.checkpoint_safe_globals())
        with anomalib_safe_globals(extra=list(cls.checkpoint_safe_globals())):
            model = cls.load_from_checkpoint(
                checkpoint.stream(), map_location="cpu", weights_only=True, weights="random"
            )
        return model.eval()

    def setup(self, stage: str) -> None:
        """Before a fit, after every callback's ``setup``: the training views (and their feature cache)
        wrap the training set the callbacks left, so that their order does not matter."""
        super().setup(stage)
        if stage == TrainerFn.FITTING:
            self.view_cache.wrap_training_set(self.trainer, self)

    def training_step(self, batch: Batch, *args, **kwargs) -> STEP_OUTPUT:
        """Negative log-likelihood of the batch's features under the flows."""
        del args, kwargs
        backbone = self.model.feature_extractor
        if self.view_features is None:
            features = backbone(batch.image)
        else:
            features = self.view_features(batch, self.current_epoch, backbone)
        latents, log_jacobians = self.model.encode(features)
        loss = negative_log_likelihood(latents, log_jacobians)
        self.log("train_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch.image))
        return {"loss": loss}

    def validation_step(self, batch: Batch, *args, **kwargs) -> STEP_OUTPUT:
        """Anomaly maps and scores for the batch (used by the post-processor's thresholds)."""
        del args, kwargs
        return batch.update(**self.model(batch.image)._asdict())

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """Adam over the trainable norms and flows (the backbone is frozen), with the lr schedule.

        Adam runs torch's fused kernel on CPU and CUDA (the same update, one pass over all tensors).

        Raises:
            ValueError: ``one_cycle`` without a bounded run (``max_epochs`` or ``max_steps``).
        """
        parameters = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        fused = True if all(parameter.device.type in FUSED_ADAM_DEVICES for parameter in parameters) else None
        optimizer = torch.optim.Adam(parameters, lr=self.hparams.lr, weight_decay=WEIGHT_DECAY, fused=fused)
        if self.hparams.lr_schedule == "constant":
            return optimizer
        scheduler = budget_one_cycle(optimizer, self.trainer, self.hparams.lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Load with this model's own metric state and the checkpoint's feature pooling; refuse a
        checkpoint whose network differs.

        Metric state is not model state (``checkpoint``): a checkpoint trained with another
        evaluator or visualizer loads in test, predict and export, one from before
        ``FastFlowPostProcessor`` too. The flows were trained on features pooled as the checkpoint
        says (none when it predates ``feature_pooling``), so the model takes that pooling whatever
        it was built with, and scores as the checkpoint's model did. Another smoothing loads with a
        warning: the checkpoint's normalisation statistics were computed on other maps.

        Raises:
            ValueError: The checkpoint's tensors do not fit (another backbone, layers or size).
        """
        take_own_metric_state(checkpoint, self)
        add_missing_post_processor_state(checkpoint, self)
        check_network_fits(checkpoint, self)
        self._take_feature_pooling(checkpoint.get("hyper_parameters", {}).get("feature_pooling", 1))
        warn_if_scoring_differs(checkpoint, self)
        super().on_load_checkpoint(checkpoint)

    def _take_feature_pooling(self, pooling: int | Sequence[int]) -> None:
        """Pool the features as a checkpoint's flows were trained to see them (it has no weights)."""
        sides = stage_pooling(pooling, len(self.model.patch_features.sides))
        if sides != self.model.patch_features.sides:
            rank_zero_info(
                f"FastFlow: the checkpoint's flows were trained on features pooled with feature_pooling={list(sides)}; "
                f"this model was built with {list(self.model.patch_features.sides)}, and takes the checkpoint's."
            )
            self.model.patch_features = PatchFeatures(sides)
            self.hparams["feature_pooling"] = list(sides)

    def to_openvino(self, export_root: Path | str, *args: Any, **kwargs: Any) -> Path:
        """anomalib's export to an OpenVINO IR, with the flows' narrow channel permutations as exact
        1x1 convolutions, which OpenVINO's CPU plugin runs faster (``channel_permutation``).

        What ``anomalib export --export_type openvino`` and ``Engine.export`` call; the arguments are
        anomalib's. FP32 and FP16 IRs are rewritten; INT8 IRs are left as NNCF writes them.
        """
        path = Path(super().to_openvino(export_root, *args, **kwargs))
        return rewrite_openvino_permutations(
            path, kwargs.get("compression_type", args[2] if len(args) > 2 else None)
        )

    def configure_callbacks(self) -> list[Callback]:
        """anomalib's callbacks, an image check and FastFlow's training callbacks, one job each and in
        any order: ``SelfValidation`` (with ``self_validation``), ``DefaultBudget``, ``ViewFeatureCache``
        (its views wrap the training set in the model's own ``setup``, after every callback's),
        ``SeededOrder`` and ``NonFiniteGuard``."""
        held_out = [SelfValidation(self.hparams.self_validation)] if self.hparams.self_validation else []
        training = [*held_out, DefaultBudget(), self.view_cache, SeededOrder(), NonFiniteGuard()]
        return [*super().configure_callbacks(), DataCheck(), *training]

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """No gradient clipping and no sanity validation. The budget is not set here (anomalib's
        ``Engine`` would let it override the user's); ``DefaultBudget`` sets it when the user gave none."""
        return {"gradient_clip_val": 0, "num_sanity_val_steps": 0}

    @property
    def learning_type(self) -> LearningType:
        """FastFlow learns from normal images only."""
        return LearningType.ONE_CLASS

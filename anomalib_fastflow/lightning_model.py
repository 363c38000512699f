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
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback
from lightning.pytorch.utilities.types import STEP_OUTPUT, OptimizerLRScheduler
from torchvision.transforms.v2 import Compose, Normalize, Resize

from .anomaly_map import Fusion, Likelihood
from .backbones import OFFLINE_BACKBONE, PRETRAINED_WEIGHTS, normalization, resolve_preset
from .channel_permutation import permutations_as_convolutions
from .checkpoint import check_fastflow_checkpoint, check_network_fits, take_own_metric_state, warn_if_scoring_differs
from .data.checks import DataCheck
from .loss import negative_log_likelihood
from .norm import NormAffine
from .torch_model import FastFlowModel
from .training.callback import FastFlowTraining
from .training.schedule import budget_one_cycle, cyclic_one_cycle
from .training.views import AugmentationChoice

LRSchedule = Literal["constant", "one_cycle"]
FUSED_ADAM_DEVICES = {"cpu", "cuda"}


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
        smoothing_sigma: Gaussian smoothing of the anomaly map, in input pixels (0: none, as the
            paper; 4 as anomalib's PatchCore and CFlow, chosen in ``docs/scoring_study.md``); the
            image score is taken before smoothing.
        top_k_fraction: Image score = mean of this fraction of top pixels; 0 takes the maximum.
        norm_affine: Learned affine of the per-scale norm in front of each flow: per ``position``
            (the paper's ``LayerNorm([C, H, W])``, which ties what is normal to where it sits) or
            per ``channel`` (measured on parts placed by hand in ``docs/nuisance/``).
        feature_pooling: Average each backbone feature over its ``k x k`` neighbourhood before the
            norm (PatchCore's locally aware patch features use 3); 1: the features as they are.
        augmentation: Training views: ``auto`` (the paper's flips and rotations where the category
            allows them, see ``training.views.SAFE_AUGMENTATIONS``; none for unknown categories),
            ``paper`` (always) or ``none``.
        augmentation_views: Fixed views per training image when augmenting (view 0 is the image).
        affine_augmentation: Probability that a view also gets a random zoom, rotation and shift,
            mirrored at the borders and resampled bicubically (0: off); for parts that are not
            perfectly aligned (``docs/disturbed.md``, ``docs/nuisance.md``; on the demo's grass
            texture it costs localisation).
        affine_scale: Ranges of those views as a multiple of the paper's non-aligned test sets'
            (1: zoom 0.85-1.18, rotation +-15 degrees, shift +-15%, ``docs/disturbed.md``). For parts
            placed by hand under a fixed camera 0.25 (+-3.75 degrees, +-3.75%, zoom 0.96-1.04)
            beat 1 (``docs/nuisance.md``): the views should move the part as far as the line does.
        cache_features: Compute each view's backbone features once and train from the cache
            (batches of cached views are then not read from disk).
        cache_memory_gb: Memory for cached features (half precision) per process; the rest goes
            to ``<default_root_dir>/feature_cache`` on disk and is deleted after training.
        lr: Adam learning rate; the peak rate under ``one_cycle`` (paper: 1e-3, constant).
        weight_decay: Adam weight decay (paper: 1e-5).
        lr_schedule: ``one_cycle`` (warm-up to ``lr``, then cosine decay to near zero over the
            run's steps) or ``constant`` (paper). Without ``max_epochs``, ``max_steps`` or
            ``max_time`` FastFlow trains for its default budget (``training.schedule.default_epochs``);
            the default and its peak rate are chosen in ``docs/training.md``.
        warmup_fraction: Share of the steps spent warming up under ``one_cycle``.
        scale_lr_to_budget: Under ``one_cycle``, a run longer than the default budget peaks at
            ``lr`` times default / actual steps (``training.schedule.budget_peak_lr``), so that a long
            budget does not lose the image AUROC a fixed peak loses (``docs/budget_study/``).
        self_validation: Normal training images held out of training and scored after every epoch,
            as they are and with synthetic defects, for a label-free estimate of image / pixel AUROC
            and AUPRO (logged as ``self_validation/*``, printed after the fit); 0 turns it off
            (``training.self_validation``). With it and no budget given, training goes on in cycles
            of the default budget while the estimate improves (``training.cycle_stopping``) and
            keeps the best cycle's weights. 4 suit a training set of 30-40 images: 8 cost more test
            AUROC and bought no better stopping (``docs/training.md``, "Self-validation").
        keep_best_epoch: With ``self_validation`` and an explicit budget, keep the weights of the epoch
            with the best self-validation score instead of the last epoch's. Off by default: on the
            demo and the production-line parts the kept epoch was no better than the last on
            average (``docs/training.md``, "Self-validation").
        pre_processor: anomalib pre-processor, or ``True`` for resize + the backbone's normalization.
        post_processor: anomalib post-processor, or ``True`` for the default.
        evaluator: anomalib evaluator, or ``True`` for image/pixel AUROC and F1 on the test set.
        visualizer: anomalib visualizer, or ``True`` for the default image visualizer.

    Raises:
        ValueError: Unknown backbone, layers outside it, an input size that disagrees with the
            given pre-processor, a ``warmup_fraction`` outside [0, 1), an ``affine_augmentation``
            outside [0, 1], fewer than one augmentation view or an unknown ``augmentation``.
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
        smoothing_sigma: float = 4.0,
        top_k_fraction: float = 0.0,
        norm_affine: NormAffine = "position",
        feature_pooling: int = 1,
        augmentation: AugmentationChoice = "auto",
        augmentation_views: int = 4,
        affine_augmentation: float = 0.0,
        affine_scale: float = 1.0,
        cache_features: bool = True,
        cache_memory_gb: float = 4.0,
        lr: float = 5e-3,
        weight_decay: float = 1e-5,
        lr_schedule: LRSchedule = "one_cycle",
        warmup_fraction: float = 0.1,
        scale_lr_to_budget: bool = True,
        self_validation: int = 0,
        keep_best_epoch: bool = False,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        if not 0 <= warmup_fraction < 1:
            msg = f"warmup_fraction={warmup_fraction}: the share of steps spent warming up must be in [0, 1)."
            raise ValueError(msg)
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
            smoothing_sigma=smoothing_sigma,
            top_k_fraction=top_k_fraction,
            norm_affine=norm_affine,
            feature_pooling=feature_pooling,
        )
        self.training_callback = FastFlowTraining(
            augmentation,
            augmentation_views,
            affine_augmentation,
            affine_scale,
            cache_bytes=int(cache_memory_gb * 2**30) if cache_features else None,
            self_validation=self_validation,
            keep_best_epoch=keep_best_epoch,
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

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "FastFlow":
        """A trained FastFlow from a Lightning checkpoint, in eval mode on the CPU, its backbone
        weights read from the checkpoint (nothing downloaded).

        Raises:
            FileNotFoundError: No file at ``path``.
            ValueError: The checkpoint is not a FastFlow checkpoint (e.g. another anomalib model's).
        """
        check_fastflow_checkpoint(path, cls.checkpoint_safe_globals())
        return cls.load_from_checkpoint(path, map_location="cpu", weights="random").eval()

    def training_step(self, batch: Batch, *args, **kwargs) -> STEP_OUTPUT:
        """Negative log-likelihood of the batch's features under the flows."""
        del args, kwargs
        features = self.training_callback.features(batch, self.current_epoch, self.model.feature_extractor)
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
        optimizer = torch.optim.Adam(
            parameters, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, fused=fused
        )
        if self.hparams.lr_schedule == "constant":
            return optimizer
        hparams = self.hparams
        if cycle_epochs := self.training_callback.cycle_epochs:  # an adaptive budget: one-cycles in a row
            steps = int(self.trainer.estimated_stepping_batches) * cycle_epochs // self.trainer.max_epochs
            scheduler = cyclic_one_cycle(optimizer, steps, hparams.warmup_fraction)
        else:
            scheduler = budget_one_cycle(
                optimizer, self.trainer, hparams.lr, hparams.warmup_fraction, hparams.scale_lr_to_budget
            )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Load with this model's own metric state; refuse a checkpoint whose network differs.

        Metric state is not model state (``checkpoint``): a checkpoint trained with another
        evaluator or visualizer loads in test, predict and export. Other scoring settings
        (likelihood, fusion, smoothing, image score) load with a warning: the checkpoint's
        normalisation statistics were computed on other maps.

        Raises:
            ValueError: The checkpoint's tensors do not fit (another backbone, layers or size).
        """
        take_own_metric_state(checkpoint, self)
        check_network_fits(checkpoint, self)
        warn_if_scoring_differs(checkpoint, self)
        super().on_load_checkpoint(checkpoint)

    def to_openvino(self, export_root: Path | str, *args: Any, **kwargs: Any) -> Path:
        """anomalib's export to an OpenVINO IR, with the flows' narrow channel permutations as exact
        1x1 convolutions, which OpenVINO's CPU plugin runs faster (``channel_permutation``).

        What ``anomalib export --export_type openvino`` and ``Engine.export`` call; the arguments are
        anomalib's. FP32 and FP16 IRs are rewritten; INT8 IRs are left as NNCF writes them.
        """
        import openvino  # the export extra, which anomalib's own to_openvino needs as well
        from anomalib.deploy import CompressionType

        path = Path(super().to_openvino(export_root, *args, **kwargs))
        compression = kwargs.get("compression_type", args[2] if len(args) > 2 else None)
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

    def configure_callbacks(self) -> list[Callback]:
        """anomalib's callbacks, an image check and FastFlow's training machinery
        (``training.callback.FastFlowTraining``: budget, views and feature cache, training order,
        validation cadence, non-finite guard)."""
        return [*super().configure_callbacks(), DataCheck(), self.training_callback]

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """No gradient clipping and no sanity validation. The budget is not set here (anomalib's
        ``Engine`` would let it override the user's); ``FastFlowTraining`` sets it when the user gave none."""
        return {"gradient_clip_val": 0, "num_sanity_val_steps": 0}

    @property
    def learning_type(self) -> LearningType:
        """FastFlow learns from normal images only."""
        return LearningType.ONE_CLASS

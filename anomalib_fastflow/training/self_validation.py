"""Self-validation: thresholds from normal training images held out of the fit, no defect needed.

A few normal training images are held out of training. After the fit each is scored twice: as it is
(normal) and with a synthetic defect drawn on it (``synthetic_defects``; the families alternate),
whose mask is known. The post-processor takes its normalisation and thresholds from these scores
(``FastFlowPostProcessor.fit_held_out``) instead of from the validation split, which anomalib's
MVTec AD default makes the test split. The held-out images are chosen from their paths (relative to the training
images' common folder) and a seed, so a resumed run, another machine or another copy of the data
picks the same ones, and every process of a distributed run holds out the same whole set (process
0 scores it and tells the others: nothing to gather, no padding). ``SelfValidation`` is the
callback that holds them out and fits the thresholds.
"""

import hashlib

import torch
from anomalib.data import ImageBatch
from anomalib.data.datasets.base import AnomalibDataset
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn, TrainerStatus
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.nn import functional as F

from ..post_processor import FastFlowPostProcessor
from .synthetic_defects import FAMILIES, draw_defect
from .views import common_folder, relative_key


def held_out_indices(paths: list[str], count: int, seed: int) -> list[int]:
    """The indices of the ``count`` images held out of training: the lowest of a hash of
    ``(seed, path relative to the images' common folder)``, in index order.

    Raises:
        ValueError: ``count`` leaves no image to train on.
    """
    if count >= len(paths):
        msg = f"self_validation={count} would hold out all {len(paths)} training images; hold out fewer."
        raise ValueError(msg)
    root = common_folder(paths)
    keys = [relative_key(path, root) for path in paths]

    def rank(index: int) -> bytes:  # a real hash: CRC32's linearity kept the order across seeds
        return hashlib.blake2b(f"{seed}/{keys[index]}".encode(), digest_size=8).digest()

    ranked = sorted(range(len(paths)), key=rank)
    return sorted(ranked[:count])


class SelfValidationSet:
    """Held-out normal images, each with a synthetic defect too, and their cached backbone features.

    Args:
        images: The held-out images, ``(3, H_i, W_i)`` each in ``[0, 1]`` (any sizes).
        keys: One name per image (its relative path), from which its defect is drawn.
    """

    def __init__(self, images: list[torch.Tensor], keys: list[str]) -> None:
        families = [FAMILIES[index % len(FAMILIES)] for index in range(len(images))]
        defects = [draw_defect(*drawn) for drawn in zip(images, keys, families, strict=True)]
        self.images = [*images, *(image for image, _ in defects)]
        self.masks = [
            *(torch.zeros(1, *image.shape[-2:]) for image in images),
            *(mask for _, mask in defects),
        ]
        self.labels = torch.tensor([0] * len(images) + [1] * len(images))
        self.families = ["normal"] * len(images) + families
        self.features: list[torch.Tensor] | None = None
        self.input_masks: torch.Tensor | None = None

    @classmethod
    def hold_out(
        cls, dataset: AnomalibDataset, count: int, seed: int
    ) -> tuple[AnomalibDataset, "SelfValidationSet"]:
        """Split ``count`` normal images off ``dataset``: the training set without them, and the set.

        Raises:
            ValueError: ``count`` leaves no image to train on.
        """
        paths = [str(path) for path in dataset.samples["image_path"]]
        held = held_out_indices(paths, count, seed)
        kept = [index for index in range(len(paths)) if index not in set(held)]
        root = common_folder(paths)
        keys = [relative_key(paths[index], root) for index in held]
        images = [dataset[index].image.float() for index in held]
        return dataset.subsample(kept), cls(images, keys)

    def __len__(self) -> int:
        """Held-out normal images (the set scores twice as many)."""
        return len(self.labels) // 2

    @torch.no_grad()
    def cache_features(self, transform: torch.nn.Module, backbone: torch.nn.Module) -> None:
        """Run ``transform`` (the model's pre-processing) and the frozen ``backbone`` once on every image,
        on the backbone's device; the features are kept in half precision on the CPU."""
        device = next(iter(backbone.parameters()), torch.empty(0)).device
        inputs = torch.stack([transform(image[None].to(device))[0] for image in self.images])
        was_training = backbone.training
        features = backbone.eval()(inputs)
        backbone.train(was_training)
        self.features = [feature.half().cpu() for feature in features]
        size = inputs.shape[-2:]
        self.input_masks = torch.cat(
            [F.interpolate(mask[None], size=size, mode="nearest") for mask in self.masks]
        )

    @torch.no_grad()
    def predict(self, model: torch.nn.Module) -> ImageBatch:
        """The set scored by ``model`` (a ``FastFlowModel``) in eval mode, as an anomalib batch with its
        labels and masks: ``pred_score (2N,)``, ``anomaly_map (2N, 1, H, W)``, ``gt_label``, ``gt_mask``.

        Raises:
            RuntimeError: ``cache_features`` has not run.
        """
        if self.features is None or self.input_masks is None:
            msg = "SelfValidationSet needs cache_features first."
            raise RuntimeError(msg)
        was_training = model.training
        model.eval()
        weight = next(model.flows.parameters())
        latents, _ = model.encode([feature.to(weight.device, weight.dtype) for feature in self.features])
        output = model.score(latents)
        model.train(was_training)
        return ImageBatch(
            image=torch.zeros(len(self.labels), 3, *self.input_masks.shape[-2:]),
            pred_score=output.pred_score.cpu(),
            anomaly_map=output.anomaly_map.cpu(),
            gt_label=self.labels.clone(),
            gt_mask=self.input_masks[:, 0].bool().cpu(),
        )


class SelfValidation(Callback):
    """Holds ``count`` normal training images out of a fit and, after it, fits the post-processor's
    normalisation and thresholds on them (``FastFlowPostProcessor.fit_held_out``); the datamodule
    gets its whole training set back after the fit, also when the fit fails.

    Args:
        count: Normal training images held out.
        seed: Seed of which images are held out (their defects are drawn from their paths).

    Raises:
        ValueError: ``count`` below 1.
    """

    def __init__(self, count: int, seed: int = 0) -> None:
        if count < 1:
            msg = f"self_validation={count}: hold out 1 or more normal training images (0 turns it off)."
            raise ValueError(msg)
        self.count = count
        self.seed = seed
        self.validation_set: SelfValidationSet | None = None  # during a fit
        self._full_train_data: AnomalibDataset | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Before a fit: the training set without the held-out images; process 0 caches their features."""
        datamodule = trainer.datamodule
        if stage != TrainerFn.FITTING or datamodule is None:
            return
        self._full_train_data = datamodule.train_data
        datamodule.train_data, self.validation_set = SelfValidationSet.hold_out(
            datamodule.train_data, self.count, self.seed
        )
        if trainer.is_global_zero:  # process 0 scores the set for all (``on_fit_end``)
            self.validation_set.cache_features(
                pl_module.pre_processor.transform, pl_module.model.feature_extractor
            )

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Fit the thresholds on the held-out set scored by the final weights (by process 0, for every
        process), unless the fit was interrupted; give the datamodule its training set back."""
        if self.validation_set is not None and trainer.state.status != TrainerStatus.INTERRUPTED:
            self._fit_thresholds(trainer, pl_module)
        if self._full_train_data is not None:
            trainer.datamodule.train_data = self._full_train_data
            self._full_train_data = None
        self.validation_set = None

    def _fit_thresholds(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """``FastFlowPostProcessor.fit_held_out`` on the set's predictions (another post-processor: a warning)."""
        post_processor = getattr(pl_module, "post_processor", None)
        if not isinstance(post_processor, FastFlowPostProcessor):
            rank_zero_warn(
                f"self_validation needs FastFlow's post-processor to fit thresholds; {type(post_processor).__name__} "
                "keeps the thresholds of the validation split."
            )
            return
        predicted = self.validation_set.predict(pl_module.model) if trainer.is_global_zero else None
        post_processor.fit_held_out(trainer.strategy.broadcast(predicted))
        rank_zero_info(
            f"FastFlow: thresholds and normalisation fitted on {len(self.validation_set)} held-out normal training "
            "images, each also with a synthetic defect, not on the validation split: the image threshold at the "
            "highest held-out normal score, the pixel threshold F1-optimal on the synthetic defects."
        )

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Give the datamodule its training set back when the fit fails."""
        del exception
        self.validation_set = None  # no thresholds from a failed fit
        self.on_fit_end(trainer, pl_module)

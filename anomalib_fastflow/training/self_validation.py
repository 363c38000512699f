"""Self-validation: how good the model is, measured without a single real defect.

A few normal training images are held out of training. Each is scored twice: as it is (normal)
and with a synthetic defect drawn on it (``synthetic_defects``; the families alternate), whose
mask is known. Image AUROC, pixel AUROC and AUPRO on these images are a label-free estimate of
the model's quality. The held-out images are chosen from their paths (relative to the training
images' common folder) and a seed, so a resumed run, another machine or another copy of the data
picks the same ones, and every process of a distributed run holds out the same whole set (process
0 scores it and tells the others: nothing to gather, no padding). Their backbone features are
computed once, so an evaluation costs only the flows' forward pass.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from anomalib.data import ImageBatch
from anomalib.data.datasets.base import AnomalibDataset
from anomalib.metrics.aupro import _AUPRO
from torch.nn import functional as F

from ..metrics import auroc
from .synthetic_defects import FAMILIES, draw_defect
from .views import common_folder, relative_key


def _this_process_only(tensor: torch.Tensor, group: object = None) -> list[torch.Tensor]:
    """A torchmetrics ``dist_sync_fn`` that gathers nothing. The set is whole in the process that scores
    it (process 0 alone, in a distributed run): gathering would wait on processes that never score."""
    return [tensor]


@dataclass(frozen=True)
class SelfValidationScores:
    """The label-free estimate: AUROCs and AUPRO on ``images`` normal and as many defective images.

    ``family_image_auroc`` is the image AUROC of the normal images against each family's defects alone.
    """

    image_auroc: float
    pixel_auroc: float
    aupro: float
    images: int
    family_image_auroc: dict[str, float]

    @property
    def selection_score(self) -> float:
        """What an adaptive budget maximises: the mean of image and pixel AUROC. The image AUROC alone
        saturates at 1 on aligned objects while the test AUROC still rises; the pixel AUROC keeps
        following it there (``docs/self_validation/``)."""
        return (self.image_auroc + self.pixel_auroc) / 2

    def __str__(self) -> str:
        return (
            f"image AUROC {self.image_auroc:.3f}, pixel AUROC {self.pixel_auroc:.3f}, AUPRO {self.aupro:.3f} "
            f"(on {self.images} held-out normal training images, each also with a synthetic defect)"
        )


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
        self.masks = [*(torch.zeros(1, *image.shape[-2:]) for image in images), *(mask for _, mask in defects)]
        self.labels = torch.tensor([0] * len(images) + [1] * len(images))
        self.families = ["normal"] * len(images) + families
        self.features: list[torch.Tensor] | None = None
        self.input_masks: torch.Tensor | None = None

    @classmethod
    def hold_out(cls, dataset: AnomalibDataset, count: int, seed: int) -> tuple[AnomalibDataset, "SelfValidationSet"]:
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
        self.input_masks = torch.cat([F.interpolate(mask[None], size=size, mode="nearest") for mask in self.masks])

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

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> SelfValidationScores:
        """Score the set with ``model`` (a ``FastFlowModel``: ``encode`` then ``score``) in eval mode.

        Raises:
            RuntimeError: ``cache_features`` has not run.
        """
        batch = self.predict(model)
        masks, scores = self.input_masks.cpu(), batch.pred_score.flatten()
        maps = batch.anomaly_map.reshape(masks.shape)  # anomalib's batch keeps (N, H, W)
        aupro = _AUPRO(dist_sync_fn=_this_process_only)
        aupro.update(maps[len(self) :, 0], masks[len(self) :, 0].int())  # regions: the defective images
        by_family = {}
        for family in sorted(set(self.families) - {"normal"}):
            chosen = torch.tensor([name in ("normal", family) for name in self.families])
            by_family[family] = auroc(scores[chosen], self.labels[chosen])
        return SelfValidationScores(
            image_auroc=auroc(scores, self.labels),
            pixel_auroc=auroc(maps, masks),
            aupro=float(aupro.compute()),
            images=len(self),
            family_image_auroc=by_family,
        )

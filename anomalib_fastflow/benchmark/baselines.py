"""anomalib's own models, built on the same backbone and input as our FastFlow for a fair comparison.

PatchCore and CFlow take the backbone's stride-8/16 (PatchCore) and stride-8/16/32 (CFlow) stages,
as anomalib's defaults do on Wide-ResNet50-2 (``layer2``, ``layer3`` [, ``layer4``]); Patchflow
(anomalib 2.7) takes its own feature indices 2-4 at three input resolutions; backbones with packaged
weights get them loaded into anomalib's feature extractor.

anomalib's ``Fastflow`` gets the same flow settings as our preset for the backbone (flow steps,
subnet kernels, hidden ratio: the paper's), so the two differ only in implementation and training.
It accepts only resnet18, wide_resnet50_2, deit_base_distilled_patch16_384 and cait_m48_448. For any
other backbone (the offline ``tf_efficientnet_lite0``) it is built on resnet18 and then given our
frozen feature extractor, with its norms and flows rebuilt exactly as its constructor builds them
(``LayerNorm([C, H, W])`` and ``create_fast_flow_block`` per scale); ``describe`` says so.
"""

import timm
from anomalib.models import Cflow, Fastflow, Patchcore, Patchflow
from anomalib.models.components import AnomalibModule
from anomalib.models.image.fastflow.torch_model import create_fast_flow_block
from torch import nn

from ..backbones import (
    PACKAGED_WEIGHTS,
    PRETRAINED_WEIGHTS,
    RANDOM_WEIGHTS,
    FeatureExtractor,
    create_timm_model,
    resolve_preset,
)
from ..lightning_model import FastFlow

ANOMALIB_FASTFLOW_BACKBONES = (
    "resnet18",
    "wide_resnet50_2",
    "deit_base_distilled_patch16_384",
    "cait_m48_448",
)


def anomalib_fastflow(backbone: str, weights: str = PRETRAINED_WEIGHTS, **kwargs: object) -> Fastflow:
    """anomalib's ``Fastflow`` with our preset's flow settings on ``backbone`` at the preset's input size.

    ``kwargs`` go to its constructor (e.g. ``evaluator``). It gets our pre-processor (resize to the
    preset's size and the backbone's normalization), so both models see the same pixels.
    """
    preset = resolve_preset(backbone)
    size = (preset.input_size, preset.input_size)
    pre_processor = FastFlow.configure_pre_processor(size, backbone)
    settings = {
        "flow_steps": preset.flow_steps,
        "conv3x3_only": preset.conv3x3_only,
        "hidden_ratio": preset.hidden_ratio,
        "pre_processor": pre_processor,
    }
    if backbone in ANOMALIB_FASTFLOW_BACKBONES:
        return Fastflow(backbone=backbone, pre_trained=weights != RANDOM_WEIGHTS, **settings, **kwargs)
    model = Fastflow(backbone="resnet18", pre_trained=False, **settings, **kwargs)
    hparams = model.hparams
    extractor = FeatureExtractor(backbone, preset.layers, weights, size, preset.final_norm)
    shapes = extractor.feature_shapes(size)
    model.model.feature_extractor = extractor
    model.model.norms = nn.ModuleList(nn.LayerNorm(list(shape), elementwise_affine=True) for shape in shapes)
    model.model.fast_flow_blocks = nn.ModuleList(
        create_fast_flow_block(list(shape), hparams.conv3x3_only, hparams.hidden_ratio, hparams.flow_steps)
        for shape in shapes
    )
    return model


def anomalib_fastflow_backbone(model: Fastflow) -> nn.Module:
    """The features anomalib's ``Fastflow`` computes, as a module of their own (for timing).

    Its ViT path runs the transformer's first blocks inside its forward; the same blocks as a
    ``FeatureExtractor`` (random weights: same compute) time what it spends on the backbone.
    """
    extractor = model.model.feature_extractor
    if isinstance(extractor, FeatureExtractor):
        return extractor
    backbone = model.hparams.backbone
    preset = resolve_preset(backbone)
    return FeatureExtractor(
        backbone, preset.layers, RANDOM_WEIGHTS, tuple(model.input_size), preset.final_norm
    )


def describe(model: nn.Module) -> str:
    """One line naming the model, its backbone and, for a rebuilt anomalib Fastflow, how it was built."""
    if isinstance(model, FastFlow) or not isinstance(model, Fastflow):
        return f"{type(model).__name__} from {type(model).__module__}"
    settings = (
        f"anomalib Fastflow (flow_steps={model.hparams.flow_steps}, conv3x3_only={model.hparams.conv3x3_only}, "
        f"hidden_ratio={model.hparams.hidden_ratio}: our preset's settings)"
    )
    if isinstance(model.model.feature_extractor, FeatureExtractor):
        return (
            f"{settings}, given our feature extractor, norms and flows rebuilt as its constructor builds them"
        )
    return settings


def stage_names(backbone: str, strides: tuple[int, ...]) -> list[str]:
    """Names of the backbone's last stage at each stride, e.g. ``layer2``, ``layer3`` for a ResNet."""
    info = timm.create_model(backbone, pretrained=False, features_only=True).feature_info
    names = dict(zip(info.reduction(), info.module_name(), strict=True))
    return [names[stride] for stride in strides]


def _with_our_weights(
    model: AnomalibModule, extractor: nn.Module, backbone: str, weights: str
) -> AnomalibModule:
    """Load ``weights`` (packaged or a file) into anomalib's timm feature extractor of ``model``."""
    if weights == RANDOM_WEIGHTS or (weights == PRETRAINED_WEIGHTS and backbone not in PACKAGED_WEIGHTS):
        return model
    full = create_timm_model(backbone, weights, (resolve_preset(backbone).input_size,) * 2).state_dict()
    extractor.load_state_dict({key: full[key] for key in extractor.state_dict()})
    return model


def _native_weights(backbone: str, weights: str) -> bool:
    """Whether anomalib should download the ImageNet weights itself (``pre_trained=True``)."""
    return weights == PRETRAINED_WEIGHTS and backbone not in PACKAGED_WEIGHTS


def anomalib_patchcore(backbone: str, weights: str = PRETRAINED_WEIGHTS, **kwargs: object) -> Patchcore:
    """anomalib's ``Patchcore`` (10% coreset, 9 neighbours) on the stride-8 and -16 stages of ``backbone``."""
    size = (resolve_preset(backbone).input_size,) * 2
    model = Patchcore(
        backbone=backbone,
        layers=stage_names(backbone, (8, 16)),
        pre_trained=_native_weights(backbone, weights),
        pre_processor=FastFlow.configure_pre_processor(size, backbone),
        **kwargs,
    )
    return _with_our_weights(model, model.model.feature_extractor.feature_extractor, backbone, weights)


def anomalib_cflow(backbone: str, weights: str = PRETRAINED_WEIGHTS, **kwargs: object) -> Cflow:
    """anomalib's ``Cflow`` (8 coupling blocks, its defaults) on the stride-8, -16 and -32 stages of ``backbone``."""
    size = (resolve_preset(backbone).input_size,) * 2
    model = Cflow(
        backbone=backbone,
        layers=stage_names(backbone, (8, 16, 32)),
        pre_trained=_native_weights(backbone, weights),
        pre_processor=FastFlow.configure_pre_processor(size, backbone),
        **kwargs,
    )
    return _with_our_weights(model, model.model.encoder.feature_extractor, backbone, weights)


def anomalib_patchflow(backbone: str, weights: str = PRETRAINED_WEIGHTS, **kwargs: object) -> Patchflow:
    """anomalib's ``Patchflow`` (its defaults: 3x3-averaged features of indices 2-4 at three input
    resolutions, a 1x1 adaptor to 128 channels, one flow step) on ``backbone`` at our preset's input."""
    size = (resolve_preset(backbone).input_size,) * 2
    model = Patchflow(
        backbone=backbone,
        pre_trained=_native_weights(backbone, weights),
        pre_processor=FastFlow.configure_pre_processor(size, backbone),
        **kwargs,
    )
    return _with_our_weights(model, model.model.feature_extractor.feature_extractor, backbone, weights)

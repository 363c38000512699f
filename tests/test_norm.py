"""The per-scale norm: the paper's per-position affine ties the flow to where things sit, the per-channel one does not."""

import pytest
import torch

from anomalib_fastflow import FastFlow
from anomalib_fastflow.norm import ChannelAffineLayerNorm, build_norm


def _trained_like(norm: torch.nn.Module) -> torch.nn.Module:
    """The norm with random affine parameters, as after training."""
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in norm.parameters():
            parameter.copy_(torch.randn_like(parameter))
    return norm


@pytest.mark.parametrize(("affine", "follows_the_shift"), [("channel", True), ("position", False)])
def test_shifted_features_are_normalised_alike_only_with_a_channel_affine(affine: str, follows_the_shift: bool) -> None:
    norm = _trained_like(build_norm((8, 12, 12), affine))
    features = torch.randn(2, 8, 12, 12)
    shifted = torch.roll(features, shifts=(3, -2), dims=(-2, -1))  # the same part, placed elsewhere
    expected = torch.roll(norm(features), shifts=(3, -2), dims=(-2, -1))
    assert torch.allclose(norm(shifted), expected, atol=1e-5) == follows_the_shift


def test_channel_affine_is_layer_norm_with_one_affine_per_channel() -> None:
    norm = _trained_like(ChannelAffineLayerNorm(8))
    reference = torch.nn.LayerNorm([8, 5, 7])
    with torch.no_grad():
        reference.weight.copy_(norm.weight.expand(8, 5, 7))
        reference.bias.copy_(norm.bias.expand(8, 5, 7))
    features = torch.randn(3, 8, 5, 7) * 4 + 2
    torch.testing.assert_close(norm(features), reference(features))
    assert sum(p.numel() for p in norm.parameters()) == 16


def test_model_takes_the_norm_and_refuses_an_unknown_one() -> None:
    model = FastFlow(input_size=64, flow_steps=2, norm_affine="channel").model
    assert all(isinstance(norm, ChannelAffineLayerNorm) for norm in model.norms)
    with pytest.raises(ValueError, match="norm_affine='batch'"):
        FastFlow(input_size=64, flow_steps=2, norm_affine="batch")

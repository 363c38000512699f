"""The 2D flow: invertibility, exact log-determinants, FrEIA equivalence, kernels, pickling."""

import io
from functools import partial

import numpy as np
import pytest
import torch
from FrEIA.modules import AllInOneBlock

from anomalib_fastflow.flow import ConvSubnet, FastFlowBlock, build_flow


def _randomize_affine(flow: torch.nn.Module) -> None:
    """Move global scales and offsets away from their identity-like initialisation."""
    with torch.no_grad():
        for block in flow:
            block.global_scale.normal_(mean=block.global_scale.mean().item(), std=1.0)
            block.global_offset.normal_(std=0.5)


@pytest.mark.parametrize("conv3x3_only", [True, False])
def test_flow_is_invertible(conv3x3_only: bool) -> None:
    torch.manual_seed(0)
    flow = build_flow((16, 9, 7), flow_steps=8, conv3x3_only=conv3x3_only, hidden_ratio=0.5)
    _randomize_affine(flow)
    x = torch.randn(3, 16, 9, 7)
    z, log_jac = flow(x)
    x_back, log_jac_back = flow(z, rev=True)
    assert not torch.allclose(z, x, atol=1e-2)
    torch.testing.assert_close(x_back, x, atol=1e-4, rtol=0)
    torch.testing.assert_close(log_jac_back, -log_jac, atol=1e-3, rtol=1e-5)


def test_log_determinant_matches_autograd() -> None:
    torch.manual_seed(1)
    shape = (4, 3, 3)
    flow = build_flow(shape, flow_steps=4, conv3x3_only=False, hidden_ratio=1.0).double()
    _randomize_affine(flow)
    x = torch.randn(1, *shape, dtype=torch.float64)

    def forward_flat(flat: torch.Tensor) -> torch.Tensor:
        return flow(flat.view(1, *shape))[0].flatten()

    jacobian = torch.autograd.functional.jacobian(forward_flat, x.flatten())
    sign, expected = torch.linalg.slogdet(jacobian)
    _, log_jac = flow(x)
    assert sign.item() != 0
    torch.testing.assert_close(log_jac, expected.reshape(1), atol=1e-8, rtol=1e-8)


def test_block_computes_what_freia_computes() -> None:
    """Same seed, same weights: our indexed permutation equals FrEIA's permutation matrix."""
    subnet = partial(ConvSubnet, kernel_size=3, hidden_ratio=1.0)
    np.random.seed(3)
    torch.manual_seed(3)
    reference = AllInOneBlock([(10, 6, 6)], subnet_constructor=subnet, affine_clamping=2.0)
    np.random.seed(3)
    torch.manual_seed(3)
    block = FastFlowBlock([(10, 6, 6)], subnet_constructor=subnet, affine_clamping=2.0)
    with torch.no_grad():
        reference.global_scale.normal_()
        block.global_scale.copy_(reference.global_scale)
    x = torch.randn(2, 10, 6, 6)
    (expected,), expected_jac = reference((x,))
    (actual,), actual_jac = block((x,))
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(actual_jac, expected_jac, atol=1e-4, rtol=1e-6)


def test_block_stores_permutations_as_indices_not_matrices() -> None:
    block = FastFlowBlock(
        [(64, 4, 4)], subnet_constructor=partial(ConvSubnet, kernel_size=1, hidden_ratio=1.0)
    )
    names = dict(block.named_parameters()) | dict(block.named_buffers())
    assert "w_perm" not in names and "w_perm_inv" not in names
    assert block.permutation.shape == (64,)
    assert torch.equal(block.permutation[block.inverse_permutation], torch.arange(64))


@pytest.mark.parametrize(("conv3x3_only", "expected"), [(True, [3, 3, 3, 3]), (False, [3, 1, 3, 1])])
def test_subnet_kernels_follow_the_paper(conv3x3_only: bool, expected: list[int]) -> None:
    flow = build_flow((8, 4, 4), flow_steps=4, conv3x3_only=conv3x3_only, hidden_ratio=0.25)
    assert [block.subnet[0].kernel_size[0] for block in flow] == expected
    assert [block.subnet[0].out_channels for block in flow] == [1] * 4  # int(4 * 0.25)


def test_whole_flow_pickles() -> None:
    torch.manual_seed(0)
    flow = build_flow((8, 5, 5), flow_steps=4, conv3x3_only=False, hidden_ratio=1.0)
    buffer = io.BytesIO()
    torch.save(flow, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(loaded(x)[0], flow(x)[0], atol=0, rtol=0)

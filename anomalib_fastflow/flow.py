"""The 2D normalizing flow of FastFlow (paper Sec. 3.3), built from FrEIA's ``AllInOneBlock``.

One flow maps a feature map ``x`` of shape ``(N, C, H, W)`` to a latent ``z`` of the same shape
with ``z ~ N(0, I)`` for normal features, and returns ``log|det dz/dx|`` per sample, shape ``(N,)``.
Each step is an affine coupling whose subnets are small 2D conv nets (3x3 and 1x1 kernels
alternating across steps, or 3x3 only), followed by a learned global affine scale and a hard
channel permutation.
"""

from collections.abc import Callable
from functools import partial

import torch
from FrEIA.framework import SequenceINN
from FrEIA.modules import AllInOneBlock
from torch import nn
from torch.nn import functional as F


class ConvSubnet(nn.Sequential):
    """Coupling subnet ``Conv(k) -> ReLU -> Conv(k)``: ``(N, in, H, W) -> (N, out, H, W)``.

    Args:
        in_channels: Channels of the passive half of the coupling.
        out_channels: Channels of the predicted scale and shift (twice the active half).
        kernel_size: 3 or 1; padding keeps the spatial size.
        hidden_ratio: Hidden channels as a multiple of ``in_channels`` (paper Table 7).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, hidden_ratio: float) -> None:
        hidden_channels = max(1, int(in_channels * hidden_ratio))
        super().__init__(
            nn.Conv2d(in_channels, hidden_channels, kernel_size, padding="same"),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, out_channels, kernel_size, padding="same"),
        )


class FastFlowBlock(AllInOneBlock):
    """FrEIA's ``AllInOneBlock`` made picklable and cheaper, with the same maths.

    FrEIA 0.2 keeps its global-scale activation in a lambda (so ``torch.save(model)`` fails) and
    permutes channels by a 1x1 convolution with a dense permutation matrix. This block drops the
    lambda for a method and stores the permutation as index buffers, so the permutation is a
    gather along channels (``index_select``), one ``Gather`` in exported graphs. Only hard
    permutations and the ``SOFTPLUS`` global affine type, which FastFlow uses, are offered.
    """

    def __init__(
        self,
        dims_in: list[tuple[int, ...]],
        subnet_constructor: Callable[[int, int], nn.Module],
        affine_clamping: float = 2.0,
    ) -> None:
        super().__init__(
            dims_in,
            subnet_constructor=subnet_constructor,
            affine_clamping=affine_clamping,
            global_affine_type="SOFTPLUS",
            permute_soft=False,
        )
        del self.global_scale_activation  # the lambda; the method below takes its place
        permutation = self.w_perm.flatten(1).argmax(dim=1)
        del self.w_perm, self.w_perm_inv
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def global_scale_activation(self, scale: torch.Tensor) -> torch.Tensor:
        """FrEIA's ``0.1 * Softplus(beta=0.5)(a)``, written as ``0.2 * softplus(0.5 * a)``.

        The two are equal (threshold included); this form has no ``beta`` for exporters to drop
        (OpenVINO's direct PyTorch conversion ignores ``Softplus``'s ``beta``).
        """
        return 0.2 * F.softplus(0.5 * scale)

    def _permute(self, x: torch.Tensor, rev: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Global affine scale and shift, then the channel permutation (or the inverse of both)."""
        scale = self.global_scale_activation(self.global_scale)
        log_jac = torch.sum(torch.log(scale))
        if rev:
            return (torch.index_select(x, 1, self.inverse_permutation) - self.global_offset) / scale, log_jac
        return torch.index_select(x * scale + self.global_offset, 1, self.permutation), log_jac


def build_flow(
    shape: tuple[int, int, int],
    flow_steps: int,
    conv3x3_only: bool,
    hidden_ratio: float,
    affine_clamping: float = 2.0,
) -> SequenceINN:
    """Build one 2D flow for features of ``shape = (C, H, W)``.

    Step ``i`` uses 3x3 subnet kernels when ``i`` is even or ``conv3x3_only`` is set, 1x1 otherwise.
    Calling the flow as ``flow(x)`` returns ``(z, log_jac_det)``; ``flow(z, rev=True)`` inverts it.
    """
    flow = SequenceINN(*shape)
    for step in range(flow_steps):
        kernel_size = 3 if conv3x3_only or step % 2 == 0 else 1
        flow.append(
            FastFlowBlock,
            subnet_constructor=partial(ConvSubnet, kernel_size=kernel_size, hidden_ratio=hidden_ratio),
            affine_clamping=affine_clamping,
        )
    return flow

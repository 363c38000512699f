"""FastFlow's training loss: the 2D negative log-likelihood of the features under the flows."""

import torch


def negative_log_likelihood(latents: list[torch.Tensor], log_jacobians: list[torch.Tensor]) -> torch.Tensor:
    """``-log p(x)`` up to a constant, summed over scales and averaged over the batch.

    For each scale, ``-log p(x) = 0.5 * ||z||^2 - log|det dz/dx|`` over all ``C x H x W`` dimensions
    (paper Eq. 2 with a standard normal ``p(z)``).

    Args:
        latents: One ``(N, C, H, W)`` latent per scale.
        log_jacobians: One ``(N,)`` log-determinant per scale.

    Returns:
        Scalar loss.
    """
    return sum(
        torch.mean(0.5 * torch.sum(z**2, dim=(1, 2, 3)) - log_jacobian)
        for z, log_jacobian in zip(latents, log_jacobians, strict=True)
    )

"""The anatomical constraint L_ac = ||M * (x_gen - x_ref)||^2 on the vessel mask M.

Vessels are thin: over a whole slice they are a few percent of the pixels, so a plain image
MSE barely notices a broken vessel. L_ac sums the squared error inside the mask only and
divides by the mask's area, making it the mean squared error over vessel pixels, comparable
across slices with more or fewer vessels; a slice without vessels contributes zero.
"""

from __future__ import annotations

import torch


def anatomical_loss(
    x_gen: torch.Tensor,
    x_ref: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the batch of sum(M (x_gen - x_ref))^2 / max(sum M, 1), optionally weighted.

    `mask` is (B, 1, H, W) in [0, 1] (soft masks allowed); `weight` is (B,) per-sample weights.
    """
    if x_gen.shape != x_ref.shape or mask.shape != x_gen.shape:
        raise ValueError(
            f"shapes differ: x_gen {tuple(x_gen.shape)}, x_ref {tuple(x_ref.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    per_sample = ((mask * (x_gen - x_ref)) ** 2).flatten(1).sum(1)
    per_sample = per_sample / mask.flatten(1).sum(1).clamp_min(1.0)
    if weight is not None:
        per_sample = per_sample * weight
    return per_sample.mean()

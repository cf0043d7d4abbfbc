"""Gated fusion of anatomy and modality codes, and the condition pyramid fed to the denoiser.

G = sigmoid(W_g [z_a; z_m]) per pixel and channel (W_g a 1x1 convolution over the anatomy map
concatenated with the broadcast modality code). The fused map is G * A(z_a) + (1 - G) * M(z_m):
where the anatomy is informative (edges, vessels, lesions) the gate lets it through; in flat
parenchyma the target modality's appearance dominates. With the gate ablated the two are summed.

The pyramid turns the fused map (at H / 2^d) into one condition map per U-Net level, by
nearest upsampling + convolution towards full resolution and average pooling below H / 2^d:
all fixed scale factors, so shapes are static per input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedFusion(nn.Module):
    """G = sigmoid(W_g [z_a; z_m]); out = G * A(z_a) + (1 - G) * M(z_m)."""

    def __init__(self, code_dim: int, modality_dim: int, out_ch: int, gate: bool = True) -> None:
        super().__init__()
        self.use_gate = gate
        # W_g exists only with the gate on (an unused parameter would break DDP).
        self.w_g = nn.Conv2d(code_dim + modality_dim, out_ch, 1) if gate else None
        self.anatomy = nn.Conv2d(code_dim, out_ch, 3, padding=1)
        self.modality = nn.Linear(modality_dim, out_ch)

    def gate(self, za: torch.Tensor, zm: torch.Tensor) -> torch.Tensor:
        """The gate map G in (0, 1), shape (B, out_ch, h, w)."""
        if self.w_g is None:
            raise ValueError("this fusion was built with the gate ablated")
        zm_map = zm[:, :, None, None].expand(-1, -1, za.shape[2], za.shape[3])
        return torch.sigmoid(self.w_g(torch.cat([za, zm_map], dim=1)))

    def forward(self, za: torch.Tensor, zm: torch.Tensor) -> torch.Tensor:
        a = self.anatomy(za)
        m = self.modality(zm)[:, :, None, None]
        if self.use_gate:
            g = self.gate(za, zm)
            return g * a + (1.0 - g) * m
        return a + m


class ConditionPyramid(nn.Module):
    """Fused map at H / 2^d -> one condition map per U-Net level (finest first)."""

    def __init__(self, ch: int, code_downsamples: int, levels: int) -> None:
        super().__init__()
        self.d = code_downsamples
        self.levels = levels
        self.up = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU())
                for _ in range(code_downsamples)
            ]
        )

    def forward(self, fused: torch.Tensor) -> list[torch.Tensor]:
        by_level: dict[int, torch.Tensor] = {self.d: fused}
        h = fused
        for i, block in enumerate(self.up):
            h = block(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            by_level[self.d - 1 - i] = h
        h = fused
        for level in range(self.d + 1, self.levels):
            h = F.avg_pool2d(h, 2)
            by_level[level] = h
        return [by_level[level] for level in range(self.levels)]

"""Wavelet-domain texture loss with Daubechies filters (db9 as the method proposes).

The filter bank comes from PyWavelets (`pywt.Wavelet(name).dec_lo/dec_hi`); the transform is
written in torch (strided 1-D convolutions along each axis with periodic extension, exactly
pywt's mode "periodization", so each level halves the size and shapes stay static) so that it
runs on the GPU and back-propagates. The loss is the L1 distance between the detail bands
(LH, HL, HH) of the generated and the reference image at each level: diffusion models trained
with MSE alone smooth texture away, and these bands are where it lives.
"""

from __future__ import annotations

import pywt
import torch
import torch.nn.functional as F
from torch import nn


class DWT2(nn.Module):
    """One- or multi-level 2-D discrete wavelet transform, pywt "periodization" mode."""

    def __init__(self, wavelet: str = "db9") -> None:
        super().__init__()
        w = pywt.Wavelet(wavelet)
        # conv1d correlates, pywt convolves: reverse the decomposition filters.
        self.register_buffer(
            "lo", torch.tensor(w.dec_lo[::-1], dtype=torch.float64), persistent=False
        )
        self.register_buffer(
            "hi", torch.tensor(w.dec_hi[::-1], dtype=torch.float64), persistent=False
        )
        self.pad = len(w.dec_lo) // 2 - 1

    def _filter(self, x: torch.Tensor, taps: torch.Tensor, dim: int) -> torch.Tensor:
        """Filter and downsample by 2 along `dim` (-1: columns, -2: rows) of (B, C, H, W)."""
        if dim == -2:
            x = x.transpose(-1, -2)
        n = x.shape[-1]
        if n < self.pad:
            raise ValueError(f"image side {n} too small for this wavelet (needs >= {self.pad})")
        rows = x.reshape(-1, 1, n)
        rows = F.pad(rows, (self.pad, self.pad), mode="circular")
        out = F.conv1d(rows, taps.to(x.dtype).view(1, 1, -1), stride=2)
        out = out.reshape(*x.shape[:-1], n // 2)
        return out.transpose(-1, -2) if dim == -2 else out

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(cA, (cH, cV, cD)) with pywt.dwt2's meaning and order."""
        lo_rows = self._filter(x, self.lo, -2)
        hi_rows = self._filter(x, self.hi, -2)
        ca = self._filter(lo_rows, self.lo, -1)
        cv = self._filter(lo_rows, self.hi, -1)
        ch = self._filter(hi_rows, self.lo, -1)
        cd = self._filter(hi_rows, self.hi, -1)
        return ca, (ch, cv, cd)


class WaveletTextureLoss(nn.Module):
    """Sum over levels of the mean L1 difference of the three detail bands."""

    def __init__(self, wavelet: str = "db9", levels: int = 2) -> None:
        super().__init__()
        self.dwt = DWT2(wavelet)
        self.levels = levels

    def forward(
        self, x_gen: torch.Tensor, x_ref: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        total = x_gen.new_zeros(x_gen.shape[0])
        a, b = x_gen, x_ref
        for _ in range(self.levels):
            a, da = self.dwt(a)
            b, db = self.dwt(b)
            for p, q in zip(da, db, strict=True):
                total = total + (p - q).abs().flatten(1).mean(1)
        if weight is not None:
            total = total * weight
        return total.mean()

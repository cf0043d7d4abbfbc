"""The two inference graphs with fixed, flat signatures, as exporters and the runtime see them.

- `EncoderGraph(model)(ct, sequence) -> (cond_0, ..., cond_{L-1})`: once per slice.
- `DenoiserGraph(model)(x_t, t, sequence, cond_0, ...) -> prediction`: once per sampler step.
`t` is a float tensor (B,) of training timesteps; `sequence` int64 (B,) indexes SEQUENCES.
Works for AP-HiDiff and the plain DDPM (whose single condition is the CT itself).
"""

from __future__ import annotations

import torch
from torch import nn


class EncoderGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ct: torch.Tensor, sequence: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.encode(ct, sequence))


class DenoiserGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, sequence: torch.Tensor, *conds: torch.Tensor
    ) -> torch.Tensor:
        return self.model.denoise(x_t, t, sequence, list(conds))


def condition_names(count: int) -> list[str]:
    return [f"cond_{i}" for i in range(count)]

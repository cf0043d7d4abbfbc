"""Exponential moving average of the weights that run at inference.

The EMA weights, not the raw ones, are what prediction and the shipped teacher use: they
average out the last steps' noise (Ho et al. 2020, Song & Ermon 2020). The decay ramps up as
min(decay, (1 + step) / (10 + step)) so a short run is not dominated by the random init.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Shadow copies of a module's floating-point parameters and buffers."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {
            k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()
        }

    def rate(self, step: int) -> float:
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        d = self.rate(step)
        for k, v in module.state_dict().items():
            if k in self.shadow:
                self.shadow[k].mul_(d).add_(v.detach().to(self.shadow[k].dtype), alpha=1 - d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}...")
        for k in self.shadow:
            self.shadow[k].copy_(state[k])

    def weights_for(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The module's state dict with EMA values in place of the tracked entries."""
        return {k: self.shadow.get(k, v) for k, v in module.state_dict().items()}

"""Build a model from its config, and say which optimiser trains which parameters."""

from __future__ import annotations

import torch
from torch import nn

from edge_runtime.errors import InputError
from models.aphidiff.config import ModelConfig
from models.aphidiff.model import APHiDiff
from models.baselines.ddpm import ConditionalDDPM
from models.baselines.pix2pix import Pix2Pix


def build_model(cfg: ModelConfig) -> nn.Module:
    """The network of `cfg.model` ("ap-hidiff", "ddpm" or "pix2pix")."""
    if cfg.model == "ap-hidiff":
        return APHiDiff(cfg)
    if cfg.model == "ddpm":
        return ConditionalDDPM(cfg)
    if cfg.model == "pix2pix":
        return Pix2Pix(cfg)
    raise InputError(f"unknown model {cfg.model!r}")


def phase_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Optimiser name -> its parameters, in the order the phases run each step.

    Diffusion models have one phase; pix2pix updates the discriminator, then the generator.
    """
    if isinstance(model, Pix2Pix):
        return {p: model.phase_parameters(p) for p in Pix2Pix.phases}
    return {"main": [p for p in model.parameters() if p.requires_grad]}


class LossModule(nn.Module):
    """`forward(batch, phase, generator)` -> loss terms: the thing DDP wraps."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, batch: dict[str, torch.Tensor], phase: str, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        if isinstance(self.model, Pix2Pix):
            return self.model.training_losses(batch, generator, phase)
        return self.model.training_losses(batch, generator)

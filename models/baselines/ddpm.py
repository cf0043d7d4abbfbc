"""Plain conditional DDPM: the same U-Net backbone with none of AP-HiDiff's parts.

The CT (2.5D) is concatenated to the noisy MR at the input and the sequence is a class
embedding: the standard image-conditional DDPM (Saharia et al., "Palette", 2022). No VQ-VAE,
no gate, one output scale, MSE on the prediction target only. Its two inference graphs have the
same signature as AP-HiDiff's so the runtime and the benchmarks treat both alike: `encode`
returns the normalised CT itself as the only condition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.aphidiff.config import SEQUENCES, ModelConfig
from models.aphidiff.diffusion import ForwardProcess
from models.aphidiff.unet import UNet


class ConditionalDDPM(nn.Module):
    """x_t concatenated with the CT -> eps or v, sequence as a class condition."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.unet = UNet(cfg.unet, in_channels=1 + cfg.data.ct_channels, num_classes=len(SEQUENCES))
        self.process = ForwardProcess(cfg.diffusion)

    def encode(self, ct: torch.Tensor, sequence: torch.Tensor) -> list[torch.Tensor]:
        """The condition is the CT itself (the sequence enters in `denoise`)."""
        return [ct]

    def denoise(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        sequence: torch.Tensor,
        conds: list[torch.Tensor] | tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        return self.unet(torch.cat([x_t, conds[0]], dim=1), t, sequence)  # type: ignore[return-value]

    def training_losses(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        mr = batch["mr"]
        t = self.process.sample_t(mr.shape[0], generator).to(mr.device)
        noise = torch.randn(mr.shape, generator=generator).to(mr.device, mr.dtype)
        x_t, target = self.process.add_noise(mr, noise, t)
        pred = self.denoise(
            x_t, t.float(), batch["sequence"], self.encode(batch["ct"], batch["sequence"])
        )
        loss = F.mse_loss(pred.float(), target)
        return {"diffusion": loss, "loss": loss}

    def generator_modules(self) -> list[str]:
        return ["unet"]

"""pix2pix (Isola et al. 2017) in the project's framework: U-Net generator, PatchGAN, L1.

Differences from the paper, on purpose: the input is the float, HU-preserving 2.5D CT (never
an 8-bit image); the generator is the project's residual U-Net (so parameter counts compare)
with the MR sequence as a class embedding and a constant time input; the GAN loss is least
squares (LSGAN, Mao et al. 2017), the more stable choice most pix2pix re-implementations use.
One network call per image: the speed any diffusion model has to justify its cost against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.aphidiff.config import SEQUENCES, ModelConfig
from models.aphidiff.unet import UNet


class PatchGAN(nn.Module):
    """Conditional PatchGAN: (CT, MR) -> a map of real/fake scores, one per ~70 px patch."""

    def __init__(self, in_channels: int, width: int, layers: int) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = width
        for i in range(1, layers + 1):
            out = width * min(2**i, 8)
            stride = 2 if i < layers else 1
            mods += [
                nn.Conv2d(ch, out, 4, stride, 1),
                nn.GroupNorm(min(8, out), out),
                nn.LeakyReLU(0.2),
            ]
            ch = out
        mods.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, ct: torch.Tensor, mr: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([ct, mr], dim=1))


class Pix2Pix(nn.Module):
    """Generator + discriminator; `training_losses(..., phase="d"|"g")` gives each side's loss."""

    phases = ("d", "g")

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.generator = UNet(
            cfg.unet, in_channels=cfg.data.ct_channels, num_classes=len(SEQUENCES)
        )
        self.discriminator = PatchGAN(
            cfg.data.ct_channels + 1, cfg.pix2pix.disc_channels, cfg.pix2pix.disc_layers
        )

    def generate(self, ct: torch.Tensor, sequence: torch.Tensor) -> torch.Tensor:
        """CT (2.5D, normalised) -> MR in [-1, 1] (tanh output)."""
        t = torch.zeros(ct.shape[0], device=ct.device)
        return torch.tanh(self.generator(ct, t, sequence))  # type: ignore[arg-type]

    def training_losses(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator, phase: str = "g"
    ) -> dict[str, torch.Tensor]:
        ct, mr, seq = batch["ct"], batch["mr"], batch["sequence"]
        if phase == "d":
            with torch.no_grad():
                fake = self.generate(ct, seq)
            real_score = self.discriminator(ct, mr).float()
            fake_score = self.discriminator(ct, fake).float()
            loss = 0.5 * (
                F.mse_loss(real_score, torch.ones_like(real_score))
                + F.mse_loss(fake_score, torch.zeros_like(fake_score))
            )
            return {"gan_d": loss, "loss": loss}
        fake = self.generate(ct, seq)
        score = self.discriminator(ct, fake).float()
        adv = F.mse_loss(score, torch.ones_like(score))
        l1 = F.l1_loss(fake.float(), mr)
        return {"gan_g": adv, "l1": l1, "loss": adv + self.cfg.pix2pix.l1 * l1}

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        module = self.discriminator if phase == "d" else self.generator
        return list(module.parameters())

    def generator_modules(self) -> list[str]:
        return ["generator"]

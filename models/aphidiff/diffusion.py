"""The forward process and training targets in torch, on the runtime's alpha-bars.

x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps; the network predicts eps or v = sqrt(ab_t) eps -
sqrt(1 - ab_t) x_0, and `predicted_x0` inverts either (the same algebra as
`edge_runtime.samplers.base.to_original_and_epsilon`).
"""

from __future__ import annotations

import torch
from torch import nn

from models.aphidiff.config import DiffusionConfig
from models.aphidiff.runtime_glue import alphas_cumprod


class ForwardProcess(nn.Module):
    """Holds alpha-bar as a (non-persistent) buffer so it follows the model's device."""

    def __init__(self, cfg: DiffusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("alphas_cumprod", alphas_cumprod(cfg), persistent=False)

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self.alphas_cumprod[t][:, None, None, None]
        return ab.sqrt(), (1.0 - ab).sqrt()

    def sample_t(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.cfg.num_train_timesteps, (batch,), generator=generator)

    def add_noise(
        self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t, target) for the configured prediction type."""
        a, s = self.coefficients(t)
        x_t = a * x0 + s * noise
        target = a * noise - s * x0 if self.cfg.prediction == "v_prediction" else noise
        return x_t, target

    def predicted_x0(self, pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = self.coefficients(t)
        if self.cfg.prediction == "v_prediction":
            return a * x_t - s * pred
        return (x_t - s * pred) / a.clamp_min(1e-4)

    def clean_weight(self, t: torch.Tensor) -> torch.Tensor:
        """alpha-bar_t per sample: weight of image-space losses on x0_hat, small where x0_hat is
        a blur (high noise) so those losses act where the image is actually formed."""
        return self.alphas_cumprod[t]

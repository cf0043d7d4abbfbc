"""DDPM ancestral sampling (Ho, Jain & Abbeel 2020), on numpy arrays.

The reference sampler: one network call per step, stochastic, slow with many steps; the full
model's package uses it as ground truth for what the few-step samplers approximate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge_runtime.samplers.base import (
    SamplerOutput,
    SpacedSampler,
    SpacedSamplerConfig,
    to_original_and_epsilon,
)

VARIANCE_TYPES = ("fixed_small", "fixed_large")


@dataclass(frozen=True)
class DDPMConfig(SpacedSamplerConfig):
    # "fixed_small" is the posterior variance beta-tilde (DDPM eq. 7); "fixed_large" is beta_t.
    variance_type: Literal["fixed_small", "fixed_large"] = "fixed_small"
    # Clip the x_0 estimate to the data range: images are scaled to [-1, 1] before training.
    clip_sample: bool = True
    clip_sample_range: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variance_type not in VARIANCE_TYPES:
            raise ValueError(f"unknown variance_type {self.variance_type!r}: {VARIANCE_TYPES}")


class DDPMSampler(SpacedSampler):
    """Ancestral sampling x_t -> x_{t'} through the Gaussian posterior q(x_{t'} | x_t, x_0)."""

    config_class = DDPMConfig
    kind = "ddpm"
    config: DDPMConfig

    def step(
        self,
        model_output: np.ndarray,
        timestep: int,
        sample: np.ndarray,
        generator: np.random.Generator | None = None,
        noise: np.ndarray | None = None,
    ) -> SamplerOutput:
        c = self.config
        t = int(timestep)
        prev_t = self.previous_timestep(t)

        # 1. alphas and betas of this (possibly strided) step: alpha_t' = ab_t / ab_t'.
        ab_t = self.schedule.alpha_bar(t)
        ab_prev = self.schedule.alpha_bar(prev_t)
        beta_prod_t, beta_prod_prev = 1.0 - ab_t, 1.0 - ab_prev
        alpha_step = ab_t / ab_prev
        beta_step = 1.0 - alpha_step

        # 2. the x_0 estimate, DDPM eq. 15 (or its v / sample counterparts).
        x0, _ = to_original_and_epsilon(model_output, sample, ab_t, c.prediction_type)

        # 3. keep x_0 inside the data range.
        if c.clip_sample:
            x0 = np.clip(x0, -c.clip_sample_range, c.clip_sample_range)

        # 4. posterior mean, DDPM eq. 7:
        #    mu = sqrt(ab_t') beta_t / (1 - ab_t) x_0 + sqrt(alpha_t) (1 - ab_t') / (1 - ab_t) x_t
        x0_coeff = ab_prev**0.5 * beta_step / beta_prod_t
        xt_coeff = alpha_step**0.5 * beta_prod_prev / beta_prod_t
        prev = x0_coeff * x0 + xt_coeff * sample

        # 5. add noise with variance beta-tilde_t = (1 - ab_t') / (1 - ab_t) beta_t (eq. 7),
        #    or beta_t itself; none at the last step, which returns the mean.
        if t > 0:
            if c.variance_type == "fixed_small":
                variance = max(beta_prod_prev / beta_prod_t * beta_step, 1e-20)
            else:
                variance = beta_step
            z = self._noise_for(sample.shape, sample.dtype, generator, noise)
            prev = prev + variance**0.5 * z
        return SamplerOutput(prev_sample=prev, pred_original_sample=x0)

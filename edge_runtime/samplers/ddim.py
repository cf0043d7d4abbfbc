"""DDIM (Song, Meng & Ermon 2021), on numpy arrays.

Deterministic with eta = 0: the same noise always gives the same image, which is what a clinic
re-running a case expects, and it takes big strides through the schedule (10-50 steps).

One deliberate difference from diffusers' `DDIMScheduler`: the previous timestep is the next one
in `timesteps`, whereas diffusers computes t - T // n. The two agree for "leading" spacing and
for "trailing" when n divides T; for "linspace" diffusers lands on a noise level that the next
network call is not told about, which we do not copy (see docs/runtime.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_runtime.samplers.base import (
    SamplerOutput,
    SpacedSampler,
    SpacedSamplerConfig,
    to_original_and_epsilon,
)


@dataclass(frozen=True)
class DDIMConfig(SpacedSamplerConfig):
    # 0 is deterministic DDIM; 1 gives DDPM's ancestral noise level (paper eq. 16).
    eta: float = 0.0
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    # After the last step, use alpha-bar = 1 (a clean image) rather than alpha-bar_0.
    set_alpha_to_one: bool = True
    # Re-derive eps from the clipped x_0 (GLIDE); only matters when clipping bites.
    use_clipped_model_output: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")


class DDIMSampler(SpacedSampler):
    """The non-Markovian DDIM update, paper eq. 12."""

    config_class = DDIMConfig
    kind = "ddim"
    config: DDIMConfig

    def _final_alpha_bar(self) -> float:
        return 1.0 if self.config.set_alpha_to_one else float(self.schedule.alphas_cumprod[0])

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

        # 1. the previous timestep t' (the next in the loop; -1 after the last).
        prev_t = self.previous_timestep(t)

        # 2. alpha-bars of t and t'.
        ab_t = self.schedule.alpha_bar(t)
        ab_prev = float(self.schedule.alphas_cumprod[prev_t]) if prev_t >= 0 else None
        if ab_prev is None:
            ab_prev = self._final_alpha_bar()
        beta_prod_t = 1.0 - ab_t

        # 3. "predicted x_0" f_theta(x_t, t), eq. 12, and the matching eps_theta.
        x0, eps = to_original_and_epsilon(model_output, sample, ab_t, c.prediction_type)

        # 4. clip x_0 to the data range.
        if c.clip_sample:
            x0 = np.clip(x0, -c.clip_sample_range, c.clip_sample_range)

        # 5. sigma_t(eta) = eta sqrt((1 - ab_t') / (1 - ab_t)) sqrt(1 - ab_t / ab_t'), eq. 16.
        variance = (1.0 - ab_prev) / beta_prod_t * (1.0 - ab_t / ab_prev)
        std = c.eta * variance**0.5
        if c.use_clipped_model_output:
            eps = (sample - ab_t**0.5 * x0) / beta_prod_t**0.5

        # 6. "direction pointing to x_t": sqrt(1 - ab_t' - sigma_t^2) eps, eq. 12.
        direction = (1.0 - ab_prev - std**2) ** 0.5 * eps

        # 7. x_t' = sqrt(ab_t') x_0 + direction (+ sigma_t z when eta > 0), eq. 12.
        prev = ab_prev**0.5 * x0 + direction
        if c.eta > 0:
            z = self._noise_for(sample.shape, sample.dtype, generator, noise)
            prev = prev + std * z
        return SamplerOutput(prev_sample=prev, pred_original_sample=x0)

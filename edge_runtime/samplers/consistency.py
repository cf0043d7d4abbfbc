"""Few-step consistency sampling (Song et al. 2023; Luo et al. 2023, "LCM"), on numpy arrays.

A consistency-distilled network maps any noisy x_t straight to x_0, so 1-4 network calls make an
image: the edge package's sampler. Multistep sampling alternates "jump to x_0" with "re-noise to
the next, lower timestep" (Song et al. 2023, Algorithm 1), which trades a little determinism for
quality; with one step it is deterministic.

The x_0 estimate goes through the boundary-condition parameterisation of the consistency model,
f(x, t) = c_skip(t) x + c_out(t) F(x, t), with c_skip(0) = 1 and c_out(0) = 0 so that f is the
identity at t = 0 (Song et al. 2023, eq. 3; LCM's discrete-time scalings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_runtime.samplers.base import (
    Sampler,
    SamplerConfig,
    SamplerOutput,
    SamplerStateError,
    to_original_and_epsilon,
)


@dataclass(frozen=True)
class ConsistencyConfig(SamplerConfig):
    # The distillation's own skipping schedule (LCM: 50 steps of the teacher's ODE solver);
    # inference timesteps are picked from it.
    original_inference_steps: int = 50
    # LCM scales t by 10 in c_skip / c_out so they change sharply near t = 0.
    timestep_scaling: float = 10.0
    # Consistency models' sigma_data (Karras et al. 2022): the data's standard deviation.
    sigma_data: float = 0.5
    clip_sample: bool = False
    clip_sample_range: float = 1.0
    set_alpha_to_one: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.original_inference_steps < 1:
            raise ValueError("original_inference_steps must be >= 1")
        if self.original_inference_steps > self.schedule.num_train_timesteps:
            raise ValueError(
                f"original_inference_steps {self.original_inference_steps} exceeds the "
                f"{self.schedule.num_train_timesteps} training timesteps"
            )


class ConsistencySampler(Sampler):
    """LCM-style multistep consistency sampling; stateful like DPM-Solver (step in order)."""

    config_class = ConsistencyConfig
    kind = "consistency"
    config: ConsistencyConfig

    def __init__(self, config: ConsistencyConfig | None = None) -> None:
        super().__init__(config)
        self._last_index = -1

    def distillation_timesteps(self) -> np.ndarray:
        """The teacher-solver timesteps the student was distilled on: k-1, 2k-1, ..., T-1."""
        c = self.config
        k = self.schedule.num_train_timesteps // c.original_inference_steps
        return np.arange(1, c.original_inference_steps + 1, dtype=np.int64) * k - 1

    def _spaced_timesteps(self, num_inference_steps: int) -> np.ndarray:
        """`n` timesteps evenly spaced in index over the distillation schedule, from the
        noisiest down (LCM's rule); an explicit list from the package manifest also works."""
        origin = self.distillation_timesteps()[::-1]
        n = num_inference_steps
        if not 1 <= n <= origin.size:
            raise ValueError(
                f"num_inference_steps must be in 1..{origin.size} "
                f"(original_inference_steps), got {n}"
            )
        idx = np.floor(np.linspace(0, origin.size, num=n, endpoint=False)).astype(np.int64)
        return origin[idx]

    def _on_new_timesteps(self) -> None:
        self._last_index = -1

    def boundary_scalings(self, timestep: int) -> tuple[float, float]:
        """(c_skip, c_out) at `timestep`: c_skip = sd^2 / (s^2 + sd^2), c_out = s / sqrt(s^2 + sd^2)
        with s = timestep_scaling * t, so f(x, 0) = x exactly."""
        sd = self.config.sigma_data
        s = timestep * self.config.timestep_scaling
        return sd**2 / (s**2 + sd**2), s / (s**2 + sd**2) ** 0.5

    def step(
        self,
        model_output: np.ndarray,
        timestep: int,
        sample: np.ndarray,
        generator: np.random.Generator | None = None,
        noise: np.ndarray | None = None,
    ) -> SamplerOutput:
        c = self.config
        ts = self._require_timesteps()
        t = int(timestep)
        i = self.index_of(t)
        if i != 0 and i != self._last_index + 1:
            raise SamplerStateError(
                f"consistency sampling runs its timesteps in order: got {t} after index "
                f"{self._last_index}"
            )

        # 1. the next timestep t' of the loop (none after the last).
        last = i == ts.size - 1
        prev_t = t if last else int(ts[i + 1])

        # 2. alpha-bars of t and t'.
        ab_t = self.schedule.alpha_bar(t)
        if prev_t >= 0:
            ab_prev = self.schedule.alpha_bar(prev_t)
        else:
            ab_prev = 1.0 if c.set_alpha_to_one else float(self.schedule.alphas_cumprod[0])

        # 3. boundary-condition scalings c_skip(t), c_out(t).
        c_skip, c_out = self.boundary_scalings(t)

        # 4. the network's x_0 estimate F(x_t, t) from its parameterisation.
        x0, _ = to_original_and_epsilon(model_output, sample, ab_t, c.prediction_type)
        if c.clip_sample:
            x0 = np.clip(x0, -c.clip_sample_range, c.clip_sample_range)

        # 5. the consistency function f(x_t, t) = c_skip x_t + c_out F(x_t, t).
        denoised = c_out * x0 + c_skip * sample

        # 6. multistep: re-noise to t' with fresh z ~ N(0, I) (Algorithm 1); the last step
        #    (and so one-step sampling) returns f itself.
        if last:
            prev = denoised
        else:
            z = self._noise_for(sample.shape, sample.dtype, generator, noise)
            prev = ab_prev**0.5 * denoised + (1.0 - ab_prev) ** 0.5 * z
        self._last_index = i
        return SamplerOutput(prev_sample=prev, pred_original_sample=denoised)

"""DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095), on numpy arrays.

A second-order multistep solver of the diffusion ODE written in the data-prediction (x_0) form:
it reuses the previous step's x_0 estimate, so it is second order at the price of one network
call per step, and reaches DDIM's 50-step quality in 10-20 steps. Deterministic.

Notation of the paper: alpha_t = sqrt(ab_t), sigma_t = sqrt(1 - ab_t), half-log-SNR
lambda_t = log(alpha_t / sigma_t), step size h = lambda_t' - lambda_t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge_runtime.samplers.base import (
    Sampler,
    SamplerOutput,
    SamplerStateError,
    SpacedSamplerConfig,
    TimestepSpacing,
    to_original_and_epsilon,
)


@dataclass(frozen=True)
class DPMSolverConfig(SpacedSamplerConfig):
    # 2 = DPM-Solver++(2M); 1 is first order (the same update as DDIM).
    solver_order: Literal[1, 2] = 2
    # Second-order correction of the paper ("midpoint") or its Heun variant.
    solver_type: Literal["midpoint", "heun"] = "midpoint"
    # With fewer than 15 steps a first-order last step is more stable (Lu et al., App. D).
    lower_order_final: bool = True
    euler_at_final: bool = False
    # Noise level after the last step: 0 (a clean image) or that of timestep 0.
    final_sigmas_type: Literal["zero", "sigma_min"] = "zero"
    # diffusers' default for this solver: the steps spread evenly over 0..T-1.
    timestep_spacing: TimestepSpacing = "linspace"
    # Stand-in for alpha-bar = 0 at the last step of a zero-terminal-SNR schedule (2^-24).
    zero_snr_alpha_bar: float = 2.0**-24

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.solver_order not in (1, 2):
            raise ValueError(f"solver_order must be 1 or 2, got {self.solver_order}")
        if self.solver_type not in ("midpoint", "heun"):
            raise ValueError(f"unknown solver_type {self.solver_type!r}")
        if self.final_sigmas_type not in ("zero", "sigma_min"):
            raise ValueError(f"unknown final_sigmas_type {self.final_sigmas_type!r}")


def dpm_timesteps(num_train_timesteps: int, n: int, spacing: str, steps_offset: int) -> np.ndarray:
    """The solver's timesteps: like `spaced_timesteps`, but over n + 1 points of which the last
    (timestep 0, already clean) is dropped, as in diffusers' DPMSolverMultistepScheduler."""
    if not 1 <= n <= num_train_timesteps:
        raise ValueError(f"number of steps must be in 1..{num_train_timesteps}, got {n}")
    if spacing == "linspace":
        ts = np.linspace(0, num_train_timesteps - 1, n + 1).round()[::-1][:-1]
    elif spacing == "leading":
        ratio = num_train_timesteps // (n + 1)
        ts = (np.arange(0, n + 1) * ratio).round()[::-1][:-1] + steps_offset
    elif spacing == "trailing":
        ratio = num_train_timesteps / n
        ts = np.arange(num_train_timesteps, 0, -ratio).round() - 1
    else:
        raise ValueError(f"unknown timestep_spacing {spacing!r}")
    return np.ascontiguousarray(ts).astype(np.int64)


class DPMSolverSampler(Sampler):
    """Multistep DPM-Solver++: keeps the last x_0 estimate between calls of `step`."""

    config_class = DPMSolverConfig
    kind = "dpm_solver++"
    config: DPMSolverConfig

    def __init__(self, config: DPMSolverConfig | None = None) -> None:
        super().__init__(config)
        self._sigmas: np.ndarray | None = None
        self._history: list[np.ndarray] = []
        self._last_index = -1

    def _spaced_timesteps(self, num_inference_steps: int) -> np.ndarray:
        c = self.config
        t_max = self.schedule.num_train_timesteps
        return dpm_timesteps(t_max, num_inference_steps, c.timestep_spacing, c.steps_offset)

    def _on_new_timesteps(self) -> None:
        c = self.config
        # VE-form noise levels sigma = sqrt((1 - ab) / ab) at each timestep, then the final one.
        ab = self.schedule.alphas_cumprod.copy()
        if ab[-1] == 0.0:
            # A zero-terminal-SNR schedule has infinite sigma at T-1; like diffusers, use the
            # smallest positive float16 subnormal so the solver's log-SNR stays finite.
            ab[-1] = c.zero_snr_alpha_bar
        ve = np.sqrt((1.0 - ab) / ab)
        last = ve[0] if c.final_sigmas_type == "sigma_min" else 0.0
        self._sigmas = np.concatenate([ve[self.timesteps], [last]])
        self._history = []
        self._last_index = -1

    @staticmethod
    def _alpha_sigma(ve_sigma: float) -> tuple[float, float]:
        """(alpha_t, sigma_t) of the VP process from the VE noise level sigma = sigma_t/alpha_t."""
        alpha = 1.0 / (ve_sigma**2 + 1.0) ** 0.5
        return alpha, ve_sigma * alpha

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
        i = self.index_of(timestep)
        if i == 0:
            self._history = []
        elif i != self._last_index + 1:
            raise SamplerStateError(
                f"DPM-Solver++ is multistep: expected timestep "
                f"{int(ts[self._last_index + 1]) if self._last_index + 1 < ts.size else 'none'}"
                f", got {int(timestep)}; run the timesteps in order"
            )
        n = ts.size
        sigmas = self._sigmas

        # 1. convert the network output to the data prediction x_0 (the "++" of DPM-Solver++).
        alpha_s0, sigma_s0 = self._alpha_sigma(float(sigmas[i]))
        x0, _ = to_original_and_epsilon(model_output, sample, alpha_s0**2, c.prediction_type)
        self._history = [*self._history[-1:], x0]

        # 2. choose the order: first order at the start (no history) and, with few steps or a
        #    zero final noise level, at the last step.
        final_low = i == n - 1 and (
            c.euler_at_final or (c.lower_order_final and n < 15) or c.final_sigmas_type == "zero"
        )
        first_order = c.solver_order == 1 or len(self._history) < 2 or final_low

        alpha_t, sigma_t = self._alpha_sigma(float(sigmas[i + 1]))
        if sigma_t == 0.0:
            # 3a. to noise level 0: lambda_t = +inf, e^{-h} = 0, and every update reduces to x_0.
            prev = x0.copy()
        else:
            lam_t = math.log(alpha_t) - math.log(sigma_t)
            lam_s0 = math.log(alpha_s0) - math.log(sigma_s0)
            h = lam_t - lam_s0
            phi = math.expm1(-h)  # e^{-h} - 1
            if first_order:
                # 3b. DPM-Solver++(1), paper eq. 8 with k = 1 (= DDIM):
                #     x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x_0
                prev = (sigma_t / sigma_s0) * sample - (alpha_t * phi) * x0
            else:
                # 3c. DPM-Solver++(2M), paper Algorithm 2: with the previous estimate m1 at s1,
                #     r0 = h_0 / h, D0 = m0, D1 = (m0 - m1) / r0,
                #     x_t = (sigma_t / sigma_s0) x_s - alpha_t (e^{-h} - 1) (D0 + D1 / 2).
                alpha_s1, sigma_s1 = self._alpha_sigma(float(sigmas[i - 1]))
                lam_s1 = math.log(alpha_s1) - math.log(sigma_s1)
                r0 = (lam_s0 - lam_s1) / h
                m1, m0 = self._history
                d1 = (1.0 / r0) * (m0 - m1)
                prev = (sigma_t / sigma_s0) * sample - (alpha_t * phi) * m0
                if c.solver_type == "midpoint":
                    prev = prev - 0.5 * (alpha_t * phi) * d1
                else:
                    # Heun-style coefficient (diffusers' "heun"): alpha_t ((e^{-h} - 1)/h + 1).
                    prev = prev + (alpha_t * (phi / h + 1.0)) * d1
        self._last_index = i
        prev = prev.astype(sample.dtype, copy=False)
        return SamplerOutput(prev_sample=prev, pred_original_sample=x0)

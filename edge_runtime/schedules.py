"""Noise schedules of the variance-preserving diffusion process, defined once for the project.

Training (`models/`, torch) and inference (the numpy samplers here) must agree on every
alpha-bar to the last digit, or a model sampled with a slightly different schedule than it was
trained with loses quality silently. So the schedule lives here, on plain float64 numpy arrays;
torch code turns them into tensors with `torch.as_tensor(schedule.alphas_cumprod)`.

Notation (Ho et al. 2020, "DDPM"): beta_t is the per-step noise variance, alpha_t = 1 - beta_t,
and alpha-bar_t = prod_{s<=t} alpha_s, so that x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps.
The beta schedules are those of diffusers (linear, scaled-linear, squaredcos_cap_v2), so a model
trained with diffusers' schedulers can be sampled here and vice versa.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

BetaScheduleName = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]
BETA_SCHEDULES: tuple[str, ...] = ("linear", "scaled_linear", "squaredcos_cap_v2")
# Far above any discrete schedule in use (1000-4000); a bound so that a manifest cannot make the
# runtime allocate arbitrary memory.
MAX_TRAIN_TIMESTEPS = 100_000


@dataclass(frozen=True)
class NoiseScheduleConfig:
    """The numbers that define a schedule; saved in a package's manifest next to the sampler."""

    # 1000 training steps: the DDPM paper's choice and what most pretrained models use.
    num_train_timesteps: int = 1000
    # DDPM's linear betas; "squaredcos_cap_v2" is Nichol & Dhariwal's cosine schedule.
    beta_schedule: BetaScheduleName = "linear"
    # DDPM's beta range (ignored by the cosine schedule).
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # Lin et al. 2023: shift the schedule so the last step is pure noise (needs v-prediction).
    rescale_zero_terminal_snr: bool = False

    def __post_init__(self) -> None:
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(
                f"unknown beta_schedule {self.beta_schedule!r}; choose one of {BETA_SCHEDULES}"
            )
        if not 2 <= self.num_train_timesteps <= MAX_TRAIN_TIMESTEPS:
            raise ValueError(
                f"num_train_timesteps must be in 2..{MAX_TRAIN_TIMESTEPS}, "
                f"got {self.num_train_timesteps}"
            )
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseScheduleConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown noise schedule field(s): {sorted(unknown)}")
        return cls(**data)


def linear_betas(n: int, beta_start: float, beta_end: float) -> np.ndarray:
    """DDPM's betas, evenly spaced from beta_start to beta_end."""
    return np.linspace(beta_start, beta_end, n, dtype=np.float64)


def scaled_linear_betas(n: int, beta_start: float, beta_end: float) -> np.ndarray:
    """Latent diffusion's betas: evenly spaced in sqrt(beta), then squared."""
    return np.linspace(beta_start**0.5, beta_end**0.5, n, dtype=np.float64) ** 2


def cosine_alpha_bar(t: float, s: float = 0.008) -> float:
    """Nichol & Dhariwal (2021) eq. 17: alpha-bar(t) = cos^2(((t + s)/(1 + s)) pi/2), t in [0, 1]."""
    return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2


def cosine_betas(n: int, max_beta: float = 0.999) -> np.ndarray:
    """Betas that discretise the cosine alpha-bar, clipped at max_beta to avoid a singular end."""
    betas = [
        min(1.0 - cosine_alpha_bar((i + 1) / n) / cosine_alpha_bar(i / n), max_beta)
        for i in range(n)
    ]
    return np.asarray(betas, dtype=np.float64)


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Lin et al. (2023), Algorithm 1: shift sqrt(alpha-bar) so its last value is exactly 0."""
    alphas_bar_sqrt = np.sqrt(np.cumprod(1.0 - betas))
    first, last = alphas_bar_sqrt[0], alphas_bar_sqrt[-1]
    # 1. shift so the last step has zero signal, 2. scale so the first step keeps its value.
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * first / (first - last)
    alphas_bar = alphas_bar_sqrt**2
    # 3. undo the cumulative product.
    alphas = np.concatenate([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1.0 - alphas


def make_betas(config: NoiseScheduleConfig) -> np.ndarray:
    """The betas of `config`, float64, one per training timestep."""
    n = config.num_train_timesteps
    if config.beta_schedule == "linear":
        betas = linear_betas(n, config.beta_start, config.beta_end)
    elif config.beta_schedule == "scaled_linear":
        betas = scaled_linear_betas(n, config.beta_start, config.beta_end)
    else:
        betas = cosine_betas(n)
    if config.rescale_zero_terminal_snr:
        betas = rescale_zero_terminal_snr(betas)
    return betas


def _expand(coeff: np.ndarray, ndim: int) -> np.ndarray:
    """Shape per-sample coefficients (B,) to broadcast against a (B, ...) batch."""
    coeff = np.asarray(coeff)
    return coeff.reshape(coeff.shape + (1,) * (ndim - coeff.ndim))


@dataclass(frozen=True)
class NoiseSchedule:
    """A schedule's arrays, float64, indexed by integer training timestep 0..T-1."""

    config: NoiseScheduleConfig = field(default_factory=NoiseScheduleConfig)
    betas: np.ndarray = field(init=False, repr=False)
    alphas: np.ndarray = field(init=False, repr=False)
    alphas_cumprod: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        betas = make_betas(self.config)
        alphas = 1.0 - betas
        cumprod = np.cumprod(alphas)
        for name, value in (("betas", betas), ("alphas", alphas), ("alphas_cumprod", cumprod)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def alpha_bar(self, t: int) -> float:
        """alpha-bar_t, with alpha-bar at t < 0 taken as 1 (the clean image)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def signal_noise(self, t: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """(sqrt(alpha-bar_t), sqrt(1 - alpha-bar_t)): the weights of x_0 and eps in x_t."""
        ab = self.alphas_cumprod[np.asarray(t)]
        return np.sqrt(ab), np.sqrt(1.0 - ab)

    def add_noise(self, x0: np.ndarray, noise: np.ndarray, t: np.ndarray | int) -> np.ndarray:
        """The forward process q(x_t | x_0): x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps.

        `t` is one timestep or one per batch element; the result keeps `x0`'s dtype.
        """
        a, s = self.signal_noise(t)
        a, s = _expand(a, x0.ndim), _expand(s, x0.ndim)
        return (a * x0 + s * noise).astype(x0.dtype, copy=False)

    def velocity(self, x0: np.ndarray, noise: np.ndarray, t: np.ndarray | int) -> np.ndarray:
        """The v-prediction target (Salimans & Ho 2022): v = sqrt(ab_t) eps - sqrt(1 - ab_t) x_0."""
        a, s = self.signal_noise(t)
        a, s = _expand(a, x0.ndim), _expand(s, x0.ndim)
        return (a * noise - s * x0).astype(x0.dtype, copy=False)

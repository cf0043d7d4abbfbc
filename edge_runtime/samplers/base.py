"""What every sampler shares: the diffusers-style contract, on numpy arrays.

A sampler is made from a typed config with defaults; `set_timesteps(n)` fills `timesteps`;
`step(model_output, t, sample)` returns the previous (less noisy) sample and the predicted clean
image. The runtime's denoising loop, the package self-check and the torch training code all use
this one contract, so a package can switch samplers by changing its manifest alone.

Randomness is explicit: a stochastic step draws from the `numpy.random.Generator` it is given
(or takes the `noise` array), never from a global state, so a seed fixes the output.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np

from edge_runtime.schedules import NoiseSchedule, NoiseScheduleConfig

PredictionType = Literal["epsilon", "v_prediction", "sample"]
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "v_prediction", "sample")
TimestepSpacing = Literal["leading", "trailing", "linspace"]
TIMESTEP_SPACINGS: tuple[str, ...] = ("leading", "trailing", "linspace")

ConfigT = TypeVar("ConfigT", bound="SamplerConfig")


class SamplerStateError(RuntimeError):
    """A sampler was used out of order, e.g. `step` before `set_timesteps`."""


@dataclass(frozen=True)
class SamplerConfig:
    """Fields every sampler has; each sampler's config adds its own, all with defaults."""

    schedule: NoiseScheduleConfig = field(default_factory=NoiseScheduleConfig)
    # What the network predicts: the noise (DDPM), v (Salimans & Ho 2022) or x_0 itself.
    prediction_type: PredictionType = "epsilon"

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"unknown prediction_type {self.prediction_type!r}; choose one of "
                f"{PREDICTION_TYPES}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, the form stored in a package manifest."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[ConfigT], data: Mapping[str, Any]) -> ConfigT:
        """The config from manifest data; unknown keys are an error, not silently dropped."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s): {sorted(unknown)}")
        if "schedule" in data and not isinstance(data["schedule"], NoiseScheduleConfig):
            data["schedule"] = NoiseScheduleConfig.from_dict(dict(data["schedule"]))
        return cls(**data)


@dataclass(frozen=True)
class SpacedSamplerConfig(SamplerConfig):
    """A sampler whose `n` steps are spread over 0..T-1 by a named rule (diffusers' fields)."""

    # "leading" is diffusers' default for DDPM and DDIM, kept so their pipelines and ours agree.
    timestep_spacing: TimestepSpacing = "leading"
    steps_offset: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"unknown timestep_spacing {self.timestep_spacing!r}")


@dataclass(frozen=True)
class SamplerOutput:
    """One step's result: x_{t_prev} and the model's current estimate of x_0."""

    prev_sample: np.ndarray
    pred_original_sample: np.ndarray


def spaced_timesteps(
    num_train_timesteps: int, num_steps: int, spacing: str, steps_offset: int = 0
) -> np.ndarray:
    """`num_steps` descending integer timesteps out of 0..T-1 (Lin et al. 2023, Table 2).

    "leading" takes 0, k, 2k, ... (k = T // n) and never reaches the noisiest step; "trailing"
    ends at T-1 and so starts from pure noise when the schedule has zero terminal SNR;
    "linspace" spreads the steps evenly over 0..T-1. Same rounding as diffusers.
    """
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"number of steps must be in 1..{num_train_timesteps}, got {num_steps}")
    if spacing == "linspace":
        ts = np.linspace(0, num_train_timesteps - 1, num_steps).round()[::-1]
    elif spacing == "leading":
        ratio = num_train_timesteps // num_steps
        ts = (np.arange(0, num_steps) * ratio).round()[::-1] + steps_offset
    elif spacing == "trailing":
        ratio = num_train_timesteps / num_steps
        ts = np.round(np.arange(num_train_timesteps, 0, -ratio)) - 1
    else:
        raise ValueError(f"unknown timestep_spacing {spacing!r}; choose one of {TIMESTEP_SPACINGS}")
    return np.ascontiguousarray(ts).astype(np.int64)


def check_custom_timesteps(timesteps: Sequence[int], num_train_timesteps: int) -> np.ndarray:
    """Timesteps given by a package: integers, strictly descending, inside 0..T-1."""
    ts = np.asarray(timesteps)
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError("timesteps must be a non-empty list of integers")
    if not np.issubdtype(ts.dtype, np.integer) and not np.all(np.equal(np.mod(ts, 1), 0)):
        raise ValueError(f"timesteps must be integers, got {list(timesteps)}")
    ts = ts.astype(np.int64)
    if np.any(np.diff(ts) >= 0):
        raise ValueError(f"timesteps must be strictly descending, got {ts.tolist()}")
    if ts[0] >= num_train_timesteps or ts[-1] < 0:
        raise ValueError(f"timesteps must lie in 0..{num_train_timesteps - 1}, got {ts.tolist()}")
    return ts


def to_original_and_epsilon(
    model_output: np.ndarray, sample: np.ndarray, alpha_bar: float, prediction_type: str
) -> tuple[np.ndarray, np.ndarray]:
    """Turn any parameterisation into (x_0, eps), from x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps.

    epsilon: x_0 = (x_t - sqrt(1-ab) eps) / sqrt(ab)            (DDPM eq. 15)
    v:       x_0 = sqrt(ab) x_t - sqrt(1-ab) v,  eps = sqrt(ab) v + sqrt(1-ab) x_t
    sample:  eps = (x_t - sqrt(ab) x_0) / sqrt(1-ab)
    """
    a, s = alpha_bar**0.5, (1.0 - alpha_bar) ** 0.5
    if prediction_type == "epsilon":
        return (sample - s * model_output) / a, model_output
    if prediction_type == "v_prediction":
        return a * sample - s * model_output, a * model_output + s * sample
    if prediction_type == "sample":
        return model_output, (sample - a * model_output) / s
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def standard_normal(
    shape: tuple[int, ...], generator: np.random.Generator, dtype: np.dtype
) -> np.ndarray:
    """Gaussian noise drawn in float32 (or float64 when asked) and cast to `dtype`."""
    draw = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    return generator.standard_normal(shape, dtype=draw).astype(dtype, copy=False)


class Sampler(ABC):
    """The contract; see the module docstring. Subclasses set `config_class` and `kind`."""

    config_class: ClassVar[type[SamplerConfig]] = SamplerConfig
    kind: ClassVar[str] = ""
    # Standard deviation of the initial noise x_T (1 for every variance-preserving sampler here).
    init_noise_sigma: ClassVar[float] = 1.0

    def __init__(self, config: SamplerConfig | None = None) -> None:
        config = self.config_class() if config is None else config
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config
        self.schedule = NoiseSchedule(config.schedule)
        self.timesteps: np.ndarray | None = None
        self.num_inference_steps: int | None = None
        self._index: dict[int, int] = {}

    # -- timesteps -------------------------------------------------------------------------

    def set_timesteps(
        self, num_inference_steps: int | None = None, timesteps: Sequence[int] | None = None
    ) -> None:
        """Choose the timesteps of inference: `n` spaced by the config, or an explicit list."""
        t_max = self.schedule.num_train_timesteps
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("pass exactly one of num_inference_steps or timesteps")
        if timesteps is not None:
            ts = check_custom_timesteps(timesteps, t_max)
        else:
            ts = self._spaced_timesteps(num_inference_steps)
        self._store_timesteps(ts)
        self._on_new_timesteps()

    @abstractmethod
    def _spaced_timesteps(self, num_inference_steps: int) -> np.ndarray:
        """The sampler's own rule for `n` inference timesteps, noisiest first."""

    def _on_new_timesteps(self) -> None:  # noqa: B027 (an optional hook, empty by default)
        """Reset per-run state (multistep history, noise levels) after new timesteps."""

    def _store_timesteps(self, ts: np.ndarray) -> None:
        ts = np.ascontiguousarray(ts, dtype=np.int64)
        ts.setflags(write=False)
        self.timesteps = ts
        self.num_inference_steps = int(ts.size)
        self._index = {int(t): i for i, t in enumerate(ts)}

    def _require_timesteps(self) -> np.ndarray:
        if self.timesteps is None:
            raise SamplerStateError(
                f"{type(self).__name__}.step called before set_timesteps: call "
                "set_timesteps(num_inference_steps) first"
            )
        return self.timesteps

    def index_of(self, timestep: int) -> int:
        """Position of `timestep` in the current schedule (an error if it is not in it)."""
        self._require_timesteps()
        try:
            return self._index[int(timestep)]
        except KeyError:
            raise ValueError(
                f"timestep {int(timestep)} is not in the schedule set by set_timesteps: "
                f"{self.timesteps.tolist()}"
            ) from None

    def previous_timestep(self, timestep: int) -> int:
        """The next timestep of the loop (towards the clean image), -1 after the last."""
        ts = self._require_timesteps()
        i = self.index_of(timestep)
        return int(ts[i + 1]) if i + 1 < ts.size else -1

    # -- stepping --------------------------------------------------------------------------

    def init_noise(
        self,
        shape: tuple[int, ...],
        generator: np.random.Generator,
        dtype: np.dtype = np.float32,
    ) -> np.ndarray:
        """x_T: Gaussian noise scaled by `init_noise_sigma`."""
        return standard_normal(shape, generator, dtype) * np.asarray(self.init_noise_sigma, dtype)

    def scale_model_input(self, sample: np.ndarray, timestep: int) -> np.ndarray:
        """The network's input for `sample` at `timestep` (unchanged for every sampler here)."""
        return sample

    @abstractmethod
    def step(
        self,
        model_output: np.ndarray,
        timestep: int,
        sample: np.ndarray,
        generator: np.random.Generator | None = None,
        noise: np.ndarray | None = None,
    ) -> SamplerOutput:
        """One reverse step from `timestep`; `generator` or `noise` feed stochastic samplers."""

    def _noise_for(
        self,
        shape: tuple[int, ...],
        dtype: np.dtype,
        generator: np.random.Generator | None,
        noise: np.ndarray | None,
    ) -> np.ndarray:
        if noise is not None:
            if noise.shape != shape:
                raise ValueError(f"noise has shape {noise.shape}, the sample {shape}")
            return noise.astype(dtype, copy=False)
        if generator is None:
            raise ValueError(
                f"{type(self).__name__} is stochastic: pass a seeded numpy Generator "
                "(np.random.default_rng(seed)) or the noise array, so the result is reproducible"
            )
        return standard_normal(shape, generator, dtype)

    def sample(
        self,
        denoise: Callable[[np.ndarray, int], np.ndarray],
        x_t: np.ndarray,
        generator: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Run the whole loop from `x_t` at the first timestep; `denoise(x, t)` is the network."""
        for t in self._require_timesteps():
            t = int(t)
            out = denoise(self.scale_model_input(x_t, t), t)
            x_t = self.step(out, t, x_t, generator=generator).prev_sample
        return x_t


class SpacedSampler(Sampler):
    """A sampler whose timesteps follow `SpacedSamplerConfig`'s rule via `spaced_timesteps`."""

    config_class: ClassVar[type[SamplerConfig]] = SpacedSamplerConfig
    config: SpacedSamplerConfig

    def _spaced_timesteps(self, num_inference_steps: int) -> np.ndarray:
        c = self.config
        t_max = self.schedule.num_train_timesteps
        return spaced_timesteps(t_max, num_inference_steps, c.timestep_spacing, c.steps_offset)

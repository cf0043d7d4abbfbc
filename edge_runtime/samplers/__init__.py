"""Numpy samplers with the diffusers contract, one file per algorithm, chosen by name.

A package manifest names its sampler (`kind`) and config; `make_sampler` builds it, so swapping
DDIM for DPM-Solver++ or a consistency sampler is a change of data, not of code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_runtime.samplers.base import (
    Sampler,
    SamplerConfig,
    SamplerOutput,
    SamplerStateError,
    spaced_timesteps,
)
from edge_runtime.samplers.consistency import ConsistencyConfig, ConsistencySampler
from edge_runtime.samplers.ddim import DDIMConfig, DDIMSampler
from edge_runtime.samplers.ddpm import DDPMConfig, DDPMSampler
from edge_runtime.samplers.dpm_solver import DPMSolverConfig, DPMSolverSampler

SAMPLERS: dict[str, type[Sampler]] = {
    cls.kind: cls for cls in (DDPMSampler, DDIMSampler, DPMSolverSampler, ConsistencySampler)
}


def make_sampler(kind: str, config: Mapping[str, Any] | SamplerConfig | None = None) -> Sampler:
    """The sampler called `kind` ("ddpm", "ddim", "dpm_solver++", "consistency") with `config`
    given as manifest data (a mapping) or as its config object; ValueError names what is wrong."""
    try:
        cls = SAMPLERS[kind]
    except KeyError:
        raise ValueError(f"unknown sampler {kind!r}; known: {sorted(SAMPLERS)}") from None
    if config is None or isinstance(config, SamplerConfig):
        return cls(config)
    try:
        return cls(cls.config_class.from_dict(config))
    except TypeError as exc:
        raise ValueError(f"bad {kind} sampler config: {exc}") from exc


__all__ = [
    "SAMPLERS",
    "ConsistencyConfig",
    "ConsistencySampler",
    "DDIMConfig",
    "DDIMSampler",
    "DDPMConfig",
    "DDPMSampler",
    "DPMSolverConfig",
    "DPMSolverSampler",
    "Sampler",
    "SamplerConfig",
    "SamplerOutput",
    "SamplerStateError",
    "make_sampler",
    "spaced_timesteps",
]

"""The one place where training meets the runtime's noise schedules and samplers.

`edge_runtime.schedules` and `edge_runtime.samplers` (numpy) define the diffusion process once;
training turns the schedule's alpha-bars into a torch tensor here, once per model, and sampling
drives the runtime's own `set_timesteps` / `step` on numpy arrays, so a model is sampled in
training and in the clinic by the same code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import torch

from edge_runtime.errors import InputError
from edge_runtime.samplers.base import Sampler
from edge_runtime.schedules import NoiseSchedule, NoiseScheduleConfig
from models.aphidiff.config import DiffusionConfig

# sampler kind -> (module, sampler class, config class) in edge_runtime.samplers
_SAMPLERS: dict[str, tuple[str, str, str]] = {
    "ddpm": ("edge_runtime.samplers.ddpm", "DDPMSampler", "DDPMConfig"),
    "ddim": ("edge_runtime.samplers.ddim", "DDIMSampler", "DDIMConfig"),
    "dpm_solver++": ("edge_runtime.samplers.dpm_solver", "DPMSolverSampler", "DPMSolverConfig"),
}


def schedule_config(cfg: DiffusionConfig) -> NoiseScheduleConfig:
    """The runtime's schedule config for a model's diffusion config."""
    return NoiseScheduleConfig(
        num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.schedule
    )


def alphas_cumprod(cfg: DiffusionConfig) -> torch.Tensor:
    """alpha-bar_t for t = 0..T-1 as a float32 tensor (computed in float64 by the runtime)."""
    schedule = NoiseSchedule(schedule_config(cfg))
    return torch.tensor(np.array(schedule.alphas_cumprod), dtype=torch.float32)


def make_sampler(cfg: DiffusionConfig, kind: str | None = None) -> Sampler:
    """A runtime sampler of `kind` (default: the config's) for this model's schedule."""
    kind = kind or cfg.sampler
    if kind not in _SAMPLERS:
        raise InputError(f"unknown sampler {kind!r}; choose from {', '.join(_SAMPLERS)}")
    module, cls_name, cfg_name = _SAMPLERS[kind]
    mod = importlib.import_module(module)
    config = getattr(mod, cfg_name)(schedule=schedule_config(cfg), prediction_type=cfg.prediction)
    return getattr(mod, cls_name)(config)


def sample(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: tuple[int, ...],
    cfg: DiffusionConfig,
    steps: int,
    seed: int,
    kind: str | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Run the runtime sampler's loop with a torch network `denoise(x_t, t) -> prediction`.

    The sampler steps on numpy (CPU) arrays; the network runs on `device`. Returns a CPU tensor.
    """
    sampler = make_sampler(cfg, kind)
    sampler.set_timesteps(steps)
    rng = np.random.default_rng(seed)
    x = sampler.init_noise(shape, rng, np.float32)
    for t in sampler.timesteps:
        tt = torch.full((shape[0],), float(t), device=device)
        with torch.no_grad():
            x_dev = torch.from_numpy(np.ascontiguousarray(x)).to(device)
            out = denoise(x_dev, tt).float().cpu().numpy()
        x = sampler.step(out, int(t), x, generator=rng).prev_sample.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x))

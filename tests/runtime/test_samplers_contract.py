"""The sampler contract beyond matching diffusers: clear errors, seeds, configs as data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_runtime.samplers import (
    SAMPLERS,
    DDIMConfig,
    DDPMSampler,
    DPMSolverSampler,
    SamplerStateError,
    make_sampler,
)
from edge_runtime.schedules import NoiseSchedule, NoiseScheduleConfig

SHAPE = (1, 1, 6, 6)
KINDS = sorted(SAMPLERS)


def toy_denoiser(x: np.ndarray, t: int) -> np.ndarray:
    """A fixed, timestep-dependent 'network' so loops have something to integrate."""
    return (0.3 * np.tanh(x) + 1e-4 * t).astype(x.dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_step_before_set_timesteps_is_a_clear_error(kind: str) -> None:
    s = make_sampler(kind)
    x = np.zeros(SHAPE, np.float32)
    with pytest.raises(SamplerStateError, match="set_timesteps"):
        s.step(x, 999, x, generator=np.random.default_rng(0))


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_image_other_seed_other_image(kind: str) -> None:
    def run(seed: int) -> np.ndarray:
        s = make_sampler(kind)
        s.set_timesteps(4)
        rng = np.random.default_rng(seed)
        return s.sample(toy_denoiser, s.init_noise(SHAPE, rng), generator=rng)

    a, b, c = run(7), run(7), run(8)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


@pytest.mark.parametrize("kind", ["ddpm", "consistency"])
def test_stochastic_step_refuses_to_use_hidden_randomness(kind: str) -> None:
    s = make_sampler(kind)
    s.set_timesteps(4)
    x = np.zeros(SHAPE, np.float32)
    with pytest.raises(ValueError, match="seeded numpy Generator"):
        s.step(x, int(s.timesteps[0]), x)


def test_ddim_with_eta_zero_needs_no_generator() -> None:
    s = make_sampler("ddim", {"eta": 0.0})
    s.set_timesteps(5)
    x = np.ones(SHAPE, np.float32)
    out = s.sample(toy_denoiser, x)
    assert np.isfinite(out).all()


def test_timestep_outside_the_schedule_is_named() -> None:
    s = DDPMSampler()
    s.set_timesteps(10)
    x = np.zeros(SHAPE, np.float32)
    with pytest.raises(ValueError, match="timestep 5 is not in the schedule"):
        s.step(x, 5, x, generator=np.random.default_rng(0))


def test_dpm_solver_refuses_steps_out_of_order() -> None:
    s = DPMSolverSampler()
    s.set_timesteps(5)
    x = np.zeros(SHAPE, np.float32)
    s.step(x, int(s.timesteps[0]), x)
    with pytest.raises(SamplerStateError, match="in order"):
        s.step(x, int(s.timesteps[2]), x)


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trips_through_json(kind: str) -> None:
    s = make_sampler(kind, {"prediction_type": "v_prediction", "schedule": {"beta_end": 0.03}})
    data = json.loads(json.dumps(s.config.to_dict()))
    again = make_sampler(kind, data)
    assert again.config == s.config
    assert again.config.schedule.beta_end == 0.03


def test_bad_configs_are_named() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        make_sampler("euler")
    with pytest.raises(ValueError, match="unknown DDIMConfig field"):
        make_sampler("ddim", {"etaa": 0.1})
    with pytest.raises(ValueError, match="prediction_type"):
        DDIMConfig(prediction_type="noise")
    with pytest.raises(ValueError, match="beta_schedule"):
        NoiseScheduleConfig(beta_schedule="sigmoid")


@pytest.mark.parametrize("kind", KINDS)
def test_explicit_timesteps_from_a_manifest(kind: str) -> None:
    s = make_sampler(kind)
    s.set_timesteps(timesteps=[999, 759, 499, 259])
    assert s.timesteps.tolist() == [999, 759, 499, 259]
    with pytest.raises(ValueError, match="descending"):
        s.set_timesteps(timesteps=[10, 20])
    with pytest.raises(ValueError, match="exactly one"):
        s.set_timesteps(4, timesteps=[999])


def test_schedule_arrays_are_read_only_float64() -> None:
    sched = NoiseSchedule()
    assert sched.alphas_cumprod.dtype == np.float64
    with pytest.raises(ValueError):
        sched.alphas_cumprod[0] = 0.5
    # alpha-bar decreases from almost 1 to almost 0 (the process ends near pure noise).
    assert np.all(np.diff(sched.alphas_cumprod) < 0)
    assert sched.alphas_cumprod[0] > 0.999 and sched.alphas_cumprod[-1] < 1e-4


def test_zero_terminal_snr_ends_at_pure_noise() -> None:
    sched = NoiseSchedule(NoiseScheduleConfig(rescale_zero_terminal_snr=True))
    assert sched.alphas_cumprod[-1] == pytest.approx(0.0, abs=1e-20)
    np.testing.assert_allclose(sched.alphas_cumprod[0], NoiseSchedule().alphas_cumprod[0])


def test_clean_model_recovers_the_image_with_ddim() -> None:
    """An oracle network that knows x_0 makes deterministic DDIM land on x_0 exactly: the
    update's coefficients are consistent with the forward process."""
    rng = np.random.default_rng(3)
    x0 = np.clip(rng.standard_normal(SHAPE), -1, 1).astype(np.float64)
    s = make_sampler("ddim", {"prediction_type": "sample"})
    s.set_timesteps(10)
    out = s.sample(lambda x, t: x0, rng.standard_normal(SHAPE))
    np.testing.assert_allclose(out, x0, atol=1e-12)


def test_schedule_size_is_bounded() -> None:
    with pytest.raises(ValueError, match=r"num_train_timesteps must be in 2\.\.100000"):
        NoiseScheduleConfig(num_train_timesteps=10**9)

"""The numpy samplers reproduce diffusers' schedulers step by step (diffusers: test-only).

Each test feeds both implementations the same sample, the same random model output and the same
Gaussian noise at every step, and compares the previous sample and the x_0 estimate. Tolerance:
|ours - diffusers| <= 1e-5 + 1e-5 |diffusers| (diffusers keeps its schedule in float32; ours is
float64, so the x_0 estimate of an epsilon model at the noisiest step, which is ~100x the data,
differs in the 7th significant digit).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from edge_runtime.samplers import (  # noqa: E402
    ConsistencyConfig,
    ConsistencySampler,
    DDIMConfig,
    DDIMSampler,
    DDPMConfig,
    DDPMSampler,
    DPMSolverConfig,
    DPMSolverSampler,
)
from edge_runtime.schedules import NoiseSchedule, NoiseScheduleConfig  # noqa: E402

RTOL = ATOL = 1e-5
SHAPE = (2, 3, 8, 8)

SCHEDULES = {
    "linear": NoiseScheduleConfig(beta_schedule="linear", beta_start=1e-4, beta_end=0.02),
    "scaled_linear": NoiseScheduleConfig(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
    ),
    "cosine": NoiseScheduleConfig(beta_schedule="squaredcos_cap_v2"),
    "linear_zero_snr": NoiseScheduleConfig(rescale_zero_terminal_snr=True),
}


def diffusers_schedule_kwargs(s: NoiseScheduleConfig) -> dict:
    return {
        "num_train_timesteps": s.num_train_timesteps,
        "beta_schedule": s.beta_schedule,
        "beta_start": s.beta_start,
        "beta_end": s.beta_end,
        "rescale_betas_zero_snr": s.rescale_zero_terminal_snr,
    }


def share_alpha_bars(theirs, ours) -> None:
    """Give diffusers our alpha-bars, rounded to its float32, for the cosine schedule.

    diffusers accumulates the cosine alpha-bars in float32 (1e-5 relative error near the ends,
    see the schedule test, which bounds that difference separately); the step tests then
    compare the step equations themselves. Only the cosine cases need this.
    """
    ab = torch.from_numpy(ours.schedule.alphas_cumprod.astype(np.float32))
    theirs.alphas_cumprod = ab
    if hasattr(theirs, "final_alpha_cumprod") and not theirs.config.get("set_alpha_to_one", True):
        theirs.final_alpha_cumprod = ab[0]


def close(ours: np.ndarray, theirs: torch.Tensor, what: str) -> float:
    ref = theirs.detach().numpy().astype(np.float32)
    assert ours.dtype == np.float32, f"{what}: dtype {ours.dtype}"
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL, err_msg=what)
    return float(np.max(np.abs(ours - ref)))


def walk(
    ours, theirs, *, seed: int, pass_noise, step_kwargs=None, x0_of=None, ref_dtype=torch.float32
) -> float:
    """Run both loops over the same timesteps; return the largest absolute difference.

    `ref_dtype=torch.float64` runs diffusers' arithmetic in float64, for the one case where its
    float32 arithmetic is the less accurate side (see its test).
    """
    rng = np.random.default_rng(seed)
    np.testing.assert_array_equal(ours.timesteps, theirs.timesteps.numpy())
    sample = rng.standard_normal(SHAPE).astype(np.float32)
    worst = 0.0
    for k, t in enumerate(ours.timesteps):
        out = rng.standard_normal(SHAPE).astype(np.float32)
        noise_seed = seed * 1000 + k
        noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(noise_seed))
        kwargs = pass_noise(noise_seed) if pass_noise else {}
        kwargs = {k: v.to(ref_dtype) if torch.is_tensor(v) else v for k, v in kwargs.items()}
        res = theirs.step(
            torch.from_numpy(out).to(ref_dtype),
            int(t),
            torch.from_numpy(sample).to(ref_dtype),
            **kwargs,
            **(step_kwargs or {}),
        )
        mine = ours.step(out, int(t), sample, noise=noise.numpy())
        worst = max(worst, close(mine.prev_sample, res.prev_sample, f"prev at t={t}"))
        theirs_x0 = x0_of(theirs, res) if x0_of else res.pred_original_sample
        worst = max(worst, close(mine.pred_original_sample, theirs_x0, f"x0 at t={t}"))
        sample = res.prev_sample.numpy().astype(np.float32)
    return worst


def torch_gen(seed: int) -> dict:
    return {"generator": torch.Generator().manual_seed(seed)}


# -- schedules -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_matches_diffusers(name: str) -> None:
    cfg = SCHEDULES[name]
    ref = diffusers.DDPMScheduler(**diffusers_schedule_kwargs(cfg))
    ours = NoiseSchedule(cfg)
    if not cfg.rescale_zero_terminal_snr:
        # diffusers re-derives rescaled betas in float32 as ratios of alpha-bars (errors ~1e-3
        # relative); for those the alpha-bars, which the samplers use, are the thing to compare.
        np.testing.assert_allclose(ours.betas, ref.betas.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        ours.alphas_cumprod, ref.alphas_cumprod.numpy(), rtol=2e-5, atol=1e-9
    )
    x0 = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    eps = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    t = np.array([0, 999])
    tt = torch.from_numpy(t)
    noisy = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(eps), tt).numpy()
    np.testing.assert_allclose(ours.add_noise(x0, eps, t), noisy, rtol=RTOL, atol=ATOL)
    vel = ref.get_velocity(torch.from_numpy(x0), torch.from_numpy(eps), tt).numpy()
    np.testing.assert_allclose(ours.velocity(x0, eps, t), vel, rtol=RTOL, atol=ATOL)


# -- DDPM ------------------------------------------------------------------------------------

DDPM_CASES = [
    ("linear", "epsilon", "leading", "fixed_small", True, 10),
    ("scaled_linear", "v_prediction", "trailing", "fixed_large", False, 12),
    ("cosine", "sample", "linspace", "fixed_small", False, 7),
    ("linear", "epsilon", "trailing", "fixed_small", False, 25),
]


@pytest.mark.parametrize(("schedule", "pred", "spacing", "variance", "clip", "steps"), DDPM_CASES)
def test_ddpm_matches_diffusers(schedule, pred, spacing, variance, clip, steps) -> None:
    s = SCHEDULES[schedule]
    ours = DDPMSampler(
        DDPMConfig(
            schedule=s,
            prediction_type=pred,
            timestep_spacing=spacing,
            variance_type=variance,
            clip_sample=clip,
        )
    )
    theirs = diffusers.DDPMScheduler(
        **diffusers_schedule_kwargs(s),
        prediction_type=pred,
        timestep_spacing=spacing,
        variance_type=variance,
        clip_sample=clip,
    )
    if schedule == "cosine":
        share_alpha_bars(theirs, ours)
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)
    walk(ours, theirs, seed=steps, pass_noise=torch_gen)


# -- DDIM ------------------------------------------------------------------------------------

DDIM_CASES = [
    # schedule, prediction, spacing, steps, eta, extra config
    ("linear", "epsilon", "leading", 10, 0.0, {}),
    ("scaled_linear", "epsilon", "leading", 50, 0.0, {"steps_offset": 1, "clip_sample": False}),
    ("linear_zero_snr", "v_prediction", "trailing", 10, 0.0, {"set_alpha_to_one": False}),
    ("cosine", "sample", "leading", 8, 0.7, {"float64_reference": True}),
    ("linear", "epsilon", "trailing", 20, 1.0, {"use_clipped_model_output": True}),
]


@pytest.mark.parametrize(("schedule", "pred", "spacing", "steps", "eta", "extra"), DDIM_CASES)
def test_ddim_matches_diffusers(schedule, pred, spacing, steps, eta, extra) -> None:
    s = SCHEDULES[schedule]
    extra = dict(extra)
    use_clipped = extra.pop("use_clipped_model_output", False)
    # Last step of this case goes to t = 0, where diffusers' float32 1 - alpha-bar_0 (4e-5)
    # loses 3 digits to cancellation: there, compare with diffusers' equations in float64.
    ref_dtype = torch.float64 if extra.pop("float64_reference", False) else torch.float32
    ours = DDIMSampler(
        DDIMConfig(
            schedule=s,
            prediction_type=pred,
            timestep_spacing=spacing,
            eta=eta,
            use_clipped_model_output=use_clipped,
            **extra,
        )
    )
    theirs = diffusers.DDIMScheduler(
        **diffusers_schedule_kwargs(s), prediction_type=pred, timestep_spacing=spacing, **extra
    )
    if schedule == "cosine":
        share_alpha_bars(theirs, ours)
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)
    if ref_dtype == torch.float64:
        theirs.alphas_cumprod = torch.from_numpy(ours.schedule.alphas_cumprod)
        theirs.final_alpha_cumprod = theirs.final_alpha_cumprod.double()

    def noise(seed: int) -> dict:
        return {"variance_noise": torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))}

    walk(
        ours,
        theirs,
        seed=steps,
        pass_noise=noise if eta > 0 else None,
        step_kwargs={"eta": eta, "use_clipped_model_output": use_clipped},
        ref_dtype=ref_dtype,
    )


def test_ddim_linspace_steps_to_the_next_listed_timestep() -> None:
    """Documented difference: diffusers' DDIM uses t - T//n; ours the next listed timestep."""
    ours = DDIMSampler(DDIMConfig(timestep_spacing="linspace"))
    theirs = diffusers.DDIMScheduler(timestep_spacing="linspace")
    ours.set_timesteps(7)
    theirs.set_timesteps(7)
    ts = ours.timesteps.tolist()
    assert ts == theirs.timesteps.tolist()
    assert [ours.previous_timestep(t) for t in ts] == [*ts[1:], -1]
    assert ts[0] - 1000 // 7 != ts[1]  # where diffusers would step to instead


# -- DPM-Solver++(2M) --------------------------------------------------------------------------

DPM_CASES = [
    ("linear", "epsilon", "linspace", 10, {}),
    ("scaled_linear", "v_prediction", "trailing", 20, {}),
    ("cosine", "sample", "leading", 8, {"solver_type": "heun"}),
    (
        "linear",
        "epsilon",
        "linspace",
        20,
        {"final_sigmas_type": "sigma_min", "lower_order_final": False},
    ),
    ("scaled_linear", "epsilon", "linspace", 6, {"solver_order": 1}),
    ("linear_zero_snr", "v_prediction", "trailing", 5, {}),
]


@pytest.mark.parametrize(("schedule", "pred", "spacing", "steps", "extra"), DPM_CASES)
def test_dpm_solver_pp_2m_matches_diffusers(schedule, pred, spacing, steps, extra) -> None:
    s = SCHEDULES[schedule]
    ours = DPMSolverSampler(
        DPMSolverConfig(schedule=s, prediction_type=pred, timestep_spacing=spacing, **extra)
    )
    theirs = diffusers.DPMSolverMultistepScheduler(
        **diffusers_schedule_kwargs(s),
        algorithm_type="dpmsolver++",
        solver_order=extra.get("solver_order", 2),
        prediction_type=pred,
        timestep_spacing=spacing,
        **{k: v for k, v in extra.items() if k != "solver_order"},
    )
    if schedule == "cosine":
        share_alpha_bars(theirs, ours)
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)

    class Result:  # diffusers' multistep step returns only prev_sample; x_0 is in its history
        def __init__(self, out):
            self.prev_sample = out.prev_sample

    def x0_of(sched, res):
        return sched.model_outputs[-1]

    walk(ours, theirs, seed=steps, pass_noise=None, x0_of=x0_of)


def test_dpm_solver_zero_snr_first_step_is_finite() -> None:
    """At the noisiest timestep of a zero-terminal-SNR schedule alpha-bar is 0 (diffusers clamps
    it to 2^-24); the v-prediction update must still be finite."""
    s = DPMSolverSampler(
        DPMSolverConfig(
            schedule=SCHEDULES["linear_zero_snr"],
            prediction_type="v_prediction",
            timestep_spacing="trailing",
        )
    )
    s.set_timesteps(4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    out = s.step(rng.standard_normal(SHAPE).astype(np.float32), int(s.timesteps[0]), x)
    assert np.isfinite(out.prev_sample).all()


# -- consistency (LCM) ---------------------------------------------------------------------------

LCM_CASES = [
    ("scaled_linear", "epsilon", 4, {}),
    ("linear", "v_prediction", 2, {}),
    ("scaled_linear", "sample", 4, {"original_inference_steps": 25, "clip_sample": True}),
    ("cosine", "v_prediction", 1, {}),
    ("linear", "epsilon", 8, {"timestep_scaling": 1.0, "set_alpha_to_one": False}),
]


@pytest.mark.parametrize(("schedule", "pred", "steps", "extra"), LCM_CASES)
def test_consistency_matches_diffusers_lcm(schedule, pred, steps, extra) -> None:
    s = SCHEDULES[schedule]
    ours = ConsistencySampler(ConsistencyConfig(schedule=s, prediction_type=pred, **extra))
    theirs = diffusers.LCMScheduler(**diffusers_schedule_kwargs(s), prediction_type=pred, **extra)
    if schedule == "cosine":
        share_alpha_bars(theirs, ours)
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)
    walk(
        ours,
        theirs,
        seed=steps,
        pass_noise=torch_gen,
        x0_of=lambda sched, res: res.denoised,
    )

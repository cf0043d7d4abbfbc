"""The torch reference row: the teacher run in PyTorch eager with its own default sampler.

    python -m benchmarks.device.torch_reference JSON   (one JSON line on stdout)

Why: the gain of an edge package is only visible next to what running the research code costs.
This is the one place `benchmarks` imports `models` (DESIGN.md's arrows), and only inside this
child process, so `hidiff bench device` works without torch: the parent sees "torch not
installed" as this row's status and the record says so.

What is timed mirrors the package worker: the run's condition encoder once per batch, then the
denoiser once per step of the run's default sampler (`runtime_glue.make_sampler`, the same
numpy sampler the runtime uses, at the run's `sample_steps`), batch N at the run's grid, eval
mode, no gradients, CUDA synchronised. When `timed_steps` < steps, only that many denoiser calls
are timed after one warm-up call and the per-step median is multiplied by the steps
(`extrapolated: true`); otherwise `repeats` whole loops are timed after one warm-up loop.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.device.worker import gpu_memory_mib, peak_rss_mib

PRESET_PREFIX = "preset:"


def _load(spec: str) -> tuple[Any, Any, dict[str, Any]]:
    """A run folder's model with its EMA weights, or `preset:NAME`: an untrained model of that
    preset's shape (the cost of a forward pass does not depend on the weights' values), for a
    teacher that has not been trained at full size on this machine."""
    if spec.startswith(PRESET_PREFIX):
        import torch

        from models.aphidiff.config import preset
        from models.training.factory import build_model

        name = spec[len(PRESET_PREFIX) :]
        mc = preset(name, "ap-hidiff")
        torch.manual_seed(0)
        doc = {"name": f"preset {name}, untrained weights (cost does not depend on them)"}
        return build_model(mc).eval(), mc, doc
    from models.training.predict import load_run

    return load_run(Path(spec))


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"status": "skipped", "reason": "torch is not installed (extra `train`)"}
    from models.aphidiff import runtime_glue

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    model, mc, doc = _load(str(cfg["run"]))
    model = model.to(device)
    load_s = time.perf_counter() - t0
    batch, grid = int(cfg["batch"]), int(mc.data.grid)
    steps = int(mc.diffusion.sample_steps)
    timed = steps if cfg.get("timed_steps") is None else min(int(cfg["timed_steps"]), steps)
    extrapolated = timed < steps
    rng = np.random.default_rng(cfg["seed"])
    ct = torch.from_numpy(
        rng.uniform(-1, 1, (batch, mc.data.ct_channels, grid, grid)).astype(np.float32)
    ).to(device)
    seq = torch.zeros(batch, dtype=torch.int64, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def loop(n_steps: int) -> tuple[float, list[float]]:
        """Encoder once, then n_steps sampler steps; (encode seconds, per-step seconds)."""
        sampler = runtime_glue.make_sampler(mc.diffusion)
        sampler.set_timesteps(steps)
        x = sampler.init_noise((batch, 1, grid, grid), np.random.default_rng(cfg["seed"]))
        gen = np.random.default_rng(cfg["seed"])
        s = time.perf_counter()
        conds = model.encode(ct, seq)
        sync()
        enc = time.perf_counter() - s
        per_step = []
        for t in list(sampler.timesteps)[:n_steps]:
            tt = torch.full((batch,), float(t), device=device)
            s = time.perf_counter()
            xin = torch.from_numpy(np.asarray(sampler.scale_model_input(x, int(t)), np.float32))
            out = model.denoise(xin.to(device), tt, seq, conds)
            sync()
            res = out.float().cpu().numpy()
            x = sampler.step(res, int(t), x, generator=gen).prev_sample.astype(np.float32)
            per_step.append(time.perf_counter() - s)
        return enc, per_step

    with torch.no_grad():
        t0 = time.perf_counter()
        enc0, steps0 = loop(1 if extrapolated else steps)  # first call: warm-up, not timed
        first_call_s = time.perf_counter() - t0
        if extrapolated:
            enc, per_step = loop(timed + 1)
            per_step = per_step[1:]
            step_p50 = float(np.median(per_step))
            totals = [enc + steps * step_p50]
            encodes = [enc]
        else:
            totals, encodes, per_step = [], [], []
            for _ in range(int(cfg["repeats"])):
                enc, ps = loop(steps)
                encodes.append(enc)
                per_step += ps
                totals.append(enc + sum(ps))
            step_p50 = float(np.median(per_step))
    batch_p50 = float(np.median(totals))
    calls_per_volume = -(-int(cfg["volume_slices"]) // batch)
    return {
        "status": "ok",
        "run": str(cfg["run"]),
        "run_name": doc.get("name", Path(cfg["run"]).name),
        "model": type(model).__name__,
        "params": int(sum(p.numel() for p in model.parameters())),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "grid": grid,
        "batch": batch,
        "sampler": {"kind": mc.diffusion.sampler, "steps": steps},
        "extrapolated": extrapolated,
        "denoiser_calls_timed": len(per_step),
        "loops_timed": len(totals),
        "load_s": load_s,
        "first_call_s": first_call_s if not extrapolated else None,
        "encode_s_p50": float(np.median(encodes)),
        "denoise_step_s_p50": step_p50,
        "latency_batch_s": {"p50": batch_p50},
        "latency_slice_s": {"p50": batch_p50 / batch},
        "latency_volume_s": {"p50": batch_p50 * calls_per_volume},
        "throughput_slices_per_s": batch / batch_p50,
        "peak_rss_mib": peak_rss_mib(),
        "gpu_memory_mib": (
            torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
        ),
        "gpu_memory_mib_nvidia_smi": gpu_memory_mib(os.getpid()) if device.type == "cuda" else None,
        "load_average_1m": os.getloadavg()[0],
        "warmup_discarded": {"encode_s": enc0, "steps_s": steps0},
    }


def main() -> None:
    cfg = json.loads(sys.argv[1])
    try:
        result = measure(cfg)
    except Exception as exc:  # reported to the parent as this row's failure
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

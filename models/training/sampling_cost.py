"""The full model's own sampling cost per slice: the figure compression has to beat.

    python -m models.training.sampling_cost --preset full --steps 50 --timed-steps 3 \
        --out benchmarks/results/sampling-cost-cpu-full.json

Runs AP-HiDiff (or a baseline) as the runtime would: the condition encoder once, then the
denoiser once per step of the runtime's default sampler (`edge_runtime.samplers`, driven through
`runtime_glue`), batch 1 at the preset's grid, in eval mode with no gradients. The cost does not
depend on the weights' values, so an untrained network of the
preset's shape is measured. With `--timed-steps k < steps` only k denoiser calls are timed
(after one warm-up call) and the per-step median is multiplied by `steps`: stated in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge_runtime.atomic import atomic_write_json
from edge_runtime.machine import provenance
from models.aphidiff import runtime_glue
from models.aphidiff.config import preset
from models.training.factory import build_model
from models.training.trainer import peak_memory_mib


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full")
    parser.add_argument("--model", default="ap-hidiff", choices=["ap-hidiff", "ddpm"])
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: model's)")
    parser.add_argument("--timed-steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    mc = preset(args.preset, args.model)
    steps = args.steps or mc.diffusion.sample_steps
    timed = min(args.timed_steps or steps, steps)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = build_model(mc).to(device).eval()
    grid = mc.data.grid
    ct = torch.zeros(1, mc.data.ct_channels, grid, grid, device=device)
    seq = torch.zeros(1, dtype=torch.int64, device=device)
    sampler = runtime_glue.make_sampler(mc.diffusion)
    sampler.set_timesteps(steps)
    rng = np.random.default_rng(0)
    x = sampler.init_noise((1, 1, grid, grid), rng, np.float32)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        t0 = time.perf_counter()
        conds = model.encode(ct, seq)
        sync()
        encode_s = time.perf_counter() - t0
        times = []
        for i, t in enumerate(list(sampler.timesteps)[: timed + 1]):
            tt = torch.full((1,), float(t), device=device)
            t0 = time.perf_counter()
            out = model.denoise(torch.from_numpy(x).to(device), tt, seq, conds)
            sync()
            if i > 0:  # the first call warms up kernels
                times.append(time.perf_counter() - t0)
            x = sampler.step(out.cpu().numpy(), int(t), x, generator=rng).prev_sample
    per_step = statistics.median(times) if times else float("nan")
    record = {
        "benchmark": "sampling-cost",
        "model": args.model,
        "preset": args.preset,
        "grid": grid,
        "params": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "sampler": mc.diffusion.sampler,
        "steps": steps,
        "denoiser_calls_timed": len(times),
        "encode_s": round(encode_s, 4),
        "denoise_step_s_median": round(per_step, 4),
        "slice_s": round(encode_s + steps * per_step, 3),
        "slice_s_is_extrapolated": len(times) < steps,
        "peak_memory_mib": round(peak_memory_mib(device), 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "weights": "untrained (cost does not depend on weight values)",
        "provenance": provenance(["python", "-m", "models.training.sampling_cost", *sys.argv[1:]]),
    }
    atomic_write_json(args.out, record)
    print(json.dumps({k: v for k, v in record.items() if k != "provenance"}))


if __name__ == "__main__":
    main()

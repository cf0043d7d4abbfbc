"""One configuration measured in its own process: `python -m benchmarks.device.worker JSON`.

Why a child process: peak RSS (`getrusage(RUSAGE_SELF).ru_maxrss`) only ever grows, load time
includes imports and allocator state, and a first call warms caches for every later session in
the same process. A fresh process per configuration makes each of these its own. The child
prints exactly one JSON line on stdout (the parent reads the last line); everything else goes
to stderr.

What one timed call is: `Engine.encode` on a batch of model-space CT slices, then
`Engine.denoise` through the package's whole sampler (every denoiser step), outputs returned as
numpy arrays, so the call is finished (synchronised) when it returns, on CPU and on CUDA with IO
binding alike. With an input grid (`--grid G`) the call also resamples G x G slices onto the
package grid and the output back (`benchmarks.device.input_grid`). Normalisation of whole
volumes and file I/O are not in it (`edge_runtime.synthesize_bench` measures those).

A slow package (one call predicted above `extrapolate_above_s` from the first call) is timed by
its parts instead: `repeats` encoder calls and `repeats` single denoiser steps of its own
sampler, after `warmup` untimed ones; a call is then encoder + steps x step, and the result
says so (`extrapolated_from_steps`). A 50-step 512^2 package is measured in minutes, not hours.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edge_runtime.machine import peak_rss_mib


def _percentiles(values: list[float], pcts: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    out = {f"p{int(p) if float(p).is_integer() else p}": float(np.percentile(arr, p)) for p in pcts}
    out |= {"mean": float(arr.mean()), "min": float(arr.min()), "max": float(arr.max())}
    return out


def gpu_memory_mib(pid: int) -> float | None:
    """GPU memory held by process `pid` per nvidia-smi, None without an NVIDIA GPU."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            return float(parts[1])
    return 0.0


def ct_batch(package: Any, batch: int, seed: int) -> np.ndarray:
    """A CT batch in model space: the package's own reference CT slices, repeated to fill the
    batch (real anatomy, so no path of the graph sees unrealistic values), else uniform noise
    in the model range for a package that ships no reference case."""
    m = package.manifest
    cases = m.reference.cases
    if cases:
        ref = package.load_array(cases[0].input).astype(np.float32)
        reps = math.ceil(batch / ref.shape[0])
        return np.concatenate([ref] * reps, axis=0)[:batch]
    rng = np.random.default_rng(seed)
    shape = (batch, m.task.in_channels, *m.grid.shape)
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def sampler_steps(
    engine: Any, cond: Any, noise: np.ndarray, seed: int
) -> Iterator[tuple[float, np.ndarray]]:
    """The package's own sampler, one timed denoiser step at a time, restarted from x_T when
    it ends: yields (seconds, x after the step). What `Engine.denoise` runs, step by step."""
    gen = np.random.default_rng(seed)
    while True:
        sampler = engine.package.make_sampler()
        x = np.asarray(noise, dtype=np.float32) * np.float32(sampler.init_noise_sigma)
        for t in sampler.timesteps:
            t = int(t)
            s = time.perf_counter()
            pred = engine.predict(cond, sampler.scale_model_input(x, t), t)
            x = sampler.step(pred, t, x, generator=gen).prev_sample.astype(np.float32)
            yield time.perf_counter() - s, x


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    s = time.perf_counter()
    value = fn()
    return time.perf_counter() - s, value


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    """Load the package, make the engine, run the first call, warm-up and timed calls.

    A package whose call would take longer than `extrapolate_above_s` (predicted from the
    first call's encoder and first denoiser step) is timed by its parts: `repeats` encoder
    calls and `repeats` single denoiser steps after `warmup` untimed ones, and a call is
    encoder + steps x step (componentwise percentiles), flagged `extrapolated_from_steps`.
    """
    from edge_runtime.package import Engine, load_package
    from edge_runtime.providers import RuntimeOptions

    t0 = time.perf_counter()
    package = load_package(cfg["package"])
    options = RuntimeOptions(
        intra_op_threads=cfg.get("threads"),
        cache_dir=None if not cfg.get("use_cache") else RuntimeOptions().cache_dir,
    )
    engine = Engine(package, cfg["provider"], cfg["precision"], options)
    load_s = time.perf_counter() - t0
    rss_after_load = peak_rss_mib()

    m = package.manifest
    batch = int(cfg["batch"])
    steps = len(package.make_sampler().timesteps)
    base = {
        "threads": engine.denoiser.session.get_session_options().intra_op_num_threads,
        "provider_used": engine.provider,
        "providers_session": engine.denoiser.providers,
        "encoder_provider": engine.encoder.provider,
        "precision": engine.precision,
        "io_binding": engine.denoiser_runner.io_binding,
        "package_grid": list(m.grid.shape),
        "input_grid": cfg.get("input_grid"),
        "sampler_steps": steps,
    }
    if engine.batch is not None and engine.batch != batch:
        return base | {
            "status": "skipped",
            "reason": f"graphs are fixed to batch {engine.batch}",
        }
    ct = ct_batch(package, batch, cfg["seed"])
    io = None
    if cfg.get("input_grid"):  # SimpleITK only where a configuration resamples
        from benchmarks.device.input_grid import InputGrid

        io = InputGrid.build(package, ct, cfg["input_grid"])
    rng = np.random.default_rng(cfg["seed"])
    noise = rng.standard_normal((batch, engine.sample_channels, *m.grid.shape)).astype(np.float32)
    output = m.task.outputs[0].name

    def model_input() -> np.ndarray:
        return io.to_model() if io is not None else ct

    def back(x: np.ndarray) -> np.ndarray:
        return io.to_input(x) if io is not None else x

    # First call, step by step, so that a slow package is recognised after one step.
    r_in, x_in = _timed(model_input)
    enc0, cond = _timed(lambda: engine.encode(x_in, output))
    stepper = sampler_steps(engine, cond, noise, cfg["seed"])
    step0, out = next(stepper)
    slow = enc0 + steps * step0 > cfg.get("extrapolate_above_s", math.inf)
    pcts = list(cfg["percentiles"])
    if not slow:
        for _ in range(steps - 1):
            dt, out = next(stepper)
            step0 += dt
        r_out, _img = _timed(lambda: back(out))
        first_call_s = r_in + enc0 + step0 + r_out
        if not np.isfinite(out).all():
            raise RuntimeError("the package produced non-finite output")

        def call() -> tuple[float, float, float]:
            a, x = _timed(model_input)
            e, c = _timed(lambda: engine.encode(x, output))
            d, y = _timed(lambda: engine.denoise(c, noise, np.random.default_rng(cfg["seed"])))
            b, _img = _timed(lambda: back(y))
            return a + b, e, d

        for _ in range(cfg["warmup"]):
            call()
        resamples, encodes, denoises = zip(*(call() for _ in range(cfg["repeats"])), strict=True)
        totals = [a + e + d for a, e, d in zip(resamples, encodes, denoises, strict=True)]
        batch_s = _percentiles(totals, pcts)
        timing: dict[str, Any] = {
            "extrapolated_from_steps": None,
            "timings_s": totals,
            "denoise_s_p50": float(np.median(denoises)),
            "denoise_step_s_p50": float(np.median(denoises)) / steps,
        }
    else:
        for _ in range(cfg["warmup"]):
            engine.encode(model_input(), output)
            next(stepper)
        step_s = [next(stepper)[0] for _ in range(cfg["repeats"])]
        out = next(stepper)[1]
        if not np.isfinite(out).all():
            raise RuntimeError("the package produced non-finite output")
        ins, outs, encodes = [], [], []
        for _ in range(cfg["repeats"]):
            a, x = _timed(model_input)
            ins.append(a)
            encodes.append(_timed(lambda x=x: engine.encode(x, output))[0])
            outs.append(_timed(lambda: back(out))[0])
        # Without an input grid there is nothing to resample (the timings are of no-ops).
        resamples = [(a + b if io is not None else 0.0) for a, b in zip(ins, outs, strict=True)]
        parts = [_percentiles(v, pcts) for v in (resamples, encodes, step_s)]
        batch_s = {k: parts[0][k] + parts[1][k] + steps * parts[2][k] for k in parts[0]}
        step_p50 = parts[2]["p50"]
        # The first call's own encoder and first step, the other steps and the way back at
        # their medians.
        first_call_s = r_in + enc0 + step0 + (steps - 1) * step_p50 + float(np.median(outs))
        timing = {
            "extrapolated_from_steps": len(step_s),
            "step_timings_s": step_s,
            "encode_timings_s": encodes,
            "first_step_s": step0,
            "denoise_s_p50": steps * step_p50,
            "denoise_step_s_p50": step_p50,
        }
    on_gpu = engine.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
    calls_per_volume = math.ceil(cfg["volume_slices"] / batch)
    return (
        base
        | timing
        | {
            "status": "ok",
            "load_s": load_s,
            "first_call_s": first_call_s,
            "latency_batch_s": batch_s,
            "latency_slice_s": {k: v / batch for k, v in batch_s.items()},
            "latency_volume_s": {k: v * calls_per_volume for k, v in batch_s.items()},
            "calls_per_volume": calls_per_volume,
            "encode_s_p50": float(np.median(encodes)),
            "resample_s_p50": float(np.median(resamples)) if io is not None else None,
            "throughput_slices_per_s": batch / batch_s["p50"],
            "peak_rss_mib": peak_rss_mib(),
            "rss_after_load_mib": rss_after_load,
            "gpu_memory_mib": gpu_memory_mib(os.getpid()) if on_gpu else None,
            "load_average_1m": os.getloadavg()[0],
        }
    )


def main() -> None:
    cfg = json.loads(sys.argv[1])
    try:
        result = measure(cfg)
    except Exception as exc:  # reported to the parent as this configuration's failure
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

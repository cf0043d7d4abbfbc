"""One configuration measured in its own process: `python -m benchmarks.device.worker JSON`.

Why a child process: peak RSS (`getrusage(RUSAGE_SELF).ru_maxrss`) only ever grows, load time
includes imports and allocator state, and a first call warms caches for every later session in
the same process. A fresh process per configuration makes each of these its own. The child
prints exactly one JSON line on stdout (the parent reads the last line); everything else goes
to stderr.

What one timed call is: `Engine.encode` on a batch of model-space CT slices, then
`Engine.denoise` through the package's whole sampler (every denoiser step), outputs returned as
numpy arrays, so the call is finished (synchronised) when it returns, on CPU and on CUDA with IO
binding alike. Resampling, normalisation and file I/O are not in it (`edge_runtime.
synthesize_bench` measures those).
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _percentiles(values: list[float], pcts: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    out = {f"p{int(p) if float(p).is_integer() else p}": float(np.percentile(arr, p)) for p in pcts}
    out |= {"mean": float(arr.mean()), "min": float(arr.min()), "max": float(arr.max())}
    return out


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB.

    Linux: VmHWM from /proc/self/status, the high-water mark of this process's own address
    space. Not `getrusage(RUSAGE_SELF).ru_maxrss`: Linux carries ru_maxrss across fork + exec,
    so a child started by a large parent (the `hidiff` process with onnxruntime loaded) would
    report the parent's footprint (measured here: 248 MiB instead of 129 MiB). Elsewhere
    ru_maxrss (macOS reports bytes, other systems KiB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024.0)


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


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    """Load the package, make the engine, run first call, warm-up and timed calls."""
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
    base = {
        "threads": engine.denoiser.session.get_session_options().intra_op_num_threads,
        "provider_used": engine.provider,
        "providers_session": engine.denoiser.providers,
        "encoder_provider": engine.encoder.provider,
        "precision": engine.precision,
        "io_binding": engine.denoiser_runner.io_binding,
    }
    if engine.batch is not None and engine.batch != batch:
        return base | {
            "status": "skipped",
            "reason": f"graphs are fixed to batch {engine.batch}",
        }
    ct = ct_batch(package, batch, cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    noise = rng.standard_normal((batch, engine.sample_channels, *m.grid.shape)).astype(np.float32)
    output = m.task.outputs[0].name

    def call() -> tuple[float, float, np.ndarray]:
        s = time.perf_counter()
        cond = engine.encode(ct, output)
        e = time.perf_counter()
        out = engine.denoise(cond, noise, np.random.default_rng(cfg["seed"]))
        return e - s, time.perf_counter() - e, out

    enc, den, out = call()
    first_call_s = enc + den
    if not np.isfinite(out).all():
        raise RuntimeError("the package produced non-finite output")
    for _ in range(cfg["warmup"]):
        call()
    totals, encodes, denoises = [], [], []
    for _ in range(cfg["repeats"]):
        enc, den, _out = call()
        encodes.append(enc)
        denoises.append(den)
        totals.append(enc + den)
    pcts = list(cfg["percentiles"])
    on_gpu = engine.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
    batch_s = _percentiles(totals, pcts)
    calls_per_volume = math.ceil(cfg["volume_slices"] / batch)
    steps = len(package.make_sampler().timesteps)
    return base | {
        "status": "ok",
        "load_s": load_s,
        "first_call_s": first_call_s,
        "latency_batch_s": batch_s,
        "latency_slice_s": {k: v / batch for k, v in batch_s.items()},
        "latency_volume_s": {k: v * calls_per_volume for k, v in batch_s.items()},
        "calls_per_volume": calls_per_volume,
        "encode_s_p50": float(np.median(encodes)),
        "denoise_s_p50": float(np.median(denoises)),
        "denoise_step_s_p50": float(np.median(denoises)) / steps,
        "sampler_steps": steps,
        "throughput_slices_per_s": batch / batch_s["p50"],
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_load_mib": rss_after_load,
        "gpu_memory_mib": gpu_memory_mib(os.getpid()) if on_gpu else None,
        "timings_s": totals,
        "load_average_1m": os.getloadavg()[0],
    }


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

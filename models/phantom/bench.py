"""Seconds to render a phantom case on one core (OMP/BLAS threads = 1, pinned to one CPU).

Each size runs in a fresh interpreter whose environment fixes the thread counts before numpy
loads; the worker times `render_case` (the in-memory render) and, separately, writing the
case folder. `hidiff phantom bench` writes the JSON with the machine's provenance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_runtime.atomic import atomic_write_json, ensure_writable_dir
from edge_runtime.machine import provenance

SIZES = ((256, 48, 10.0), (512, 64, 60.0))  # (grid, slices, target seconds)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _worker(grid: int, slices: int, seed: int, repeats: int) -> dict[str, Any]:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from models.phantom.case import render_case
    from models.phantom.io import write_case

    render_case(seed, grid=64, slices=8)  # warm-up: imports, caches
    times, cpu = [], []
    case = None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        case = render_case(seed, grid=grid, slices=slices)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_case(case, Path(tmp) / "case")
        write_s = time.perf_counter() - t0
    times.sort()
    cpu.sort()
    return {
        "grid": grid,
        "slices": slices,
        "seed": seed,
        "repeats": repeats,
        "render_s_median": times[len(times) // 2],
        "render_s_all": times,
        "render_cpu_s_median": cpu[len(cpu) // 2],
        "render_cpu_s_all": cpu,
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "write_s": write_s,
        "cpu_affinity": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
    }


def run_size(grid: int, slices: int, seed: int = 7, repeats: int = 3) -> dict[str, Any]:
    """Time one size in a single-threaded child interpreter."""
    env = dict(os.environ)
    env.update({v: "1" for v in THREAD_VARS})
    code = (
        "import json, sys; from models.phantom.bench import _worker; "
        f"print(json.dumps(_worker({grid}, {slices}, {seed}, {repeats})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_bench(out_dir: Path, repeats: int = 3, sizes=SIZES) -> Path:
    out_dir = ensure_writable_dir(Path(out_dir))
    results = []
    for grid, slices, target in sizes:
        r = run_size(grid, slices, repeats=repeats)
        r["target_s"] = target
        r["meets_target_wall"] = r["render_s_median"] <= target
        r["meets_target_cpu"] = r["render_cpu_s_median"] <= target
        results.append(r)
    record = provenance() | {
        "benchmark": "phantom-render",
        "threads": {v: "1" for v in THREAD_VARS},
        "what": "render_case (all CT phases, MR at both phases and the second MR realisation for "
        "the SSIM ceiling), in memory; write_s is writing the case folder. render_s is wall "
        "time, render_cpu_s the process CPU time: on a shared machine (see load_average_1m) "
        "the CPU time is what one dedicated core needs",
        "results": results,
    }
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return atomic_write_json(out_dir / f"phantom-render-{stamp}.json", record)

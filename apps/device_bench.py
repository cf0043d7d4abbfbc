"""The Device page's quick benchmark: latency and memory of a package on this device.

It runs the package's own reference case (model space, so no scan is needed and every device
runs the same input) through the `Engine`: warm-up once, then `repeats` timed runs; the median
time is divided by the slices in the case. Memory is the process's resident set: its growth
while the session is built and run, and the peak (ru_maxrss) of the whole app process. Results
are appended to a JSON file in the user's hidiff cache with the machine's provenance.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from edge_runtime.atomic import atomic_write_json
from edge_runtime.machine import machine_info
from edge_runtime.package import EdgePackage, Engine
from edge_runtime.providers import hidiff_cache_root


@dataclass(frozen=True)
class BenchConfig:
    repeats: int = 3  # medians of 3 after one warm-up: quick, and robust to one hiccup
    keep_last: int = 50  # results kept in the history file


@dataclass(frozen=True)
class BenchResult:
    package: str
    provider: str
    precision: str
    steps: int
    slices: int
    ms_per_slice: float
    rss_growth_mb: float
    peak_rss_mb: float
    date: str


def results_path() -> Path:
    return hidiff_cache_root() / "app" / "device-bench.json"


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def run_bench(package: EdgePackage, provider: str, cfg: BenchConfig = BenchConfig()) -> BenchResult:
    """Time the first reference case of `package` on `provider`."""
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    engine = Engine(package, provider)
    case = package.manifest.reference.cases[0]
    ct = package.load_array(case.input).astype(np.float32)
    noise = package.load_array(case.noise).astype(np.float32)
    engine.generate(ct, noise, case.seed, case.output_name)  # warm-up
    times = []
    for _ in range(cfg.repeats):
        start = time.perf_counter()
        engine.generate(ct, noise, case.seed, case.output_name)
        times.append(time.perf_counter() - start)
    rss1 = proc.memory_info().rss
    return BenchResult(
        package=package.name,
        provider=engine.provider,
        precision=engine.precision,
        steps=package.manifest.sampler.steps,
        slices=int(ct.shape[0]),
        ms_per_slice=1000.0 * statistics.median(times) / ct.shape[0],
        rss_growth_mb=(rss1 - rss0) / 1024**2,
        peak_rss_mb=_peak_rss_mb(),
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def load_results(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or results_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return data.get("results", []) if isinstance(data, dict) else []


def save_result(
    result: BenchResult, path: Path | None = None, cfg: BenchConfig = BenchConfig()
) -> Path:
    path = path or results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    history = [*load_results(path), asdict(result)][-cfg.keep_last :]
    atomic_write_json(path, {"machine": machine_info(), "results": history})
    return path

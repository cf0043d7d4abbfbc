"""Time per slice and peak memory of `hidiff synthesize` on this machine, as a JSON record.

    python -m edge_runtime.synthesize_bench --package P --input CT_256.nii.gz --input CT_512.nii.gz
        [--repeats 3] [--out benchmarks/results/synthesize-cpu-<date>.json]

Each input is synthesized by a fresh `hidiff synthesize` process (what a clinic runs), `repeats`
times; the record holds per run the wall time, the time per slice inside the synthesis (from the
output's synthesis record: resampling, normalisation, model, blending, resampling back) and the
process's peak RSS (`getrusage(RUSAGE_CHILDREN)` after it exits: the whole process, Python and
onnxruntime included), and the median over runs. A 512^2 input is resampled to the package's
grid first: the record states the input size, the model grid and the tiles per slice, so it is
clear what the model actually processed. Torch-free (this file is part of the runtime layer).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from edge_runtime.atomic import atomic_write_json
from edge_runtime.io import read_image
from edge_runtime.machine import provenance
from edge_runtime.package.loader import load_package


@dataclass(frozen=True)
class BenchConfig:
    # Medians of 3 fresh processes: one cold start is not a measurement on a shared machine.
    repeats: int = 3
    provider: str = "cpu"
    batch: int = 8
    seed: int = 0


def _run_once(package: Path, ct: Path, work: Path, cfg: BenchConfig) -> dict[str, Any]:
    out = work / f"mr-{time.monotonic_ns()}.nii.gz"
    cmd = [
        sys.executable, "-m", "edge_runtime.cli", "synthesize", str(ct), "--package", str(package),
        "--out", str(out), "-p", cfg.provider, "--batch", str(cfg.batch), "--seed", str(cfg.seed),
    ]  # fmt: skip
    # A wrapper process whose only child is `hidiff synthesize`: its RUSAGE_CHILDREN peak
    # (KiB on Linux) is that run's alone, not the maximum over earlier runs.
    wrapper = (
        "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(json.dumps({'rc': p.returncode, 'err': p.stderr[-500:], "
        "'wall': time.perf_counter() - t, "
        "'kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True
    )
    measured = json.loads(proc.stdout)
    if measured["rc"] != 0:
        raise RuntimeError(f"hidiff synthesize failed: {measured['err'].strip()}")
    wall, peak = measured["wall"], measured["kib"]
    record = json.loads(out.with_name(out.name.split(".")[0] + ".json").read_text())
    stats = record["stats"]
    return {
        "process_wall_s": wall,
        "seconds_per_slice": stats["seconds_per_slice"],
        "model_seconds_per_slice": stats["seconds_model"] / max(1, stats["slices"]),
        "peak_rss_mib": peak / 1024.0,
        "slices": stats["slices"],
        "model_grid": stats["model_grid"],
        "tiles_per_slice": stats["tiles_per_slice"],
        "provider": stats["provider"],
        "steps": stats["steps"],
    }


def bench(package: Path, inputs: list[Path], cfg: BenchConfig) -> dict[str, Any]:
    """Run every input `repeats` times, smallest first; medians per input."""
    pkg = load_package(package)
    sized = sorted(inputs, key=lambda p: read_image(p).voxels.size)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[Path, list[dict[str, Any]]] = {p: [] for p in sized}
        for _ in range(cfg.repeats):
            for p in sized:
                runs[p].append(_run_once(package, p, Path(tmp), cfg))
        for p in sized:
            img = read_image(p)
            r = runs[p]
            results.append(
                {
                    "input": str(p),
                    "input_size_xyz": list(img.size),
                    "input_spacing_mm": list(img.spacing),
                    "model_grid_zyx": r[0]["model_grid"],
                    "tiles_per_slice": r[0]["tiles_per_slice"],
                    "slices": r[0]["slices"],
                    "median_seconds_per_slice": float(
                        np.median([x["seconds_per_slice"] for x in r])
                    ),
                    "median_model_seconds_per_slice": float(
                        np.median([x["model_seconds_per_slice"] for x in r])
                    ),
                    "median_process_wall_s": float(np.median([x["process_wall_s"] for x in r])),
                    "peak_rss_mib": max(x["peak_rss_mib"] for x in r),
                    "runs": r,
                }
            )
    m = pkg.manifest
    return {
        "benchmark": "hidiff synthesize, time per slice and peak RSS",
        "package": m.name,
        "package_manifest_sha256": pkg.manifest_sha256,
        "package_grid": list(m.grid.shape),
        "package_spacing_mm": list(m.grid.spacing_mm),
        "sampler": {"kind": m.sampler.kind, "steps": m.sampler.steps},
        "config": cfg.__dict__,
        "what_is_measured": (
            "seconds_per_slice: the Synthesizer's own time for the volume (resample to the "
            "model grid, normalise, encoder once per slice, denoiser per sampler step, blend, "
            "de-normalise, resample back) divided by the input's slices; model_seconds: "
            "encoder + sampler loop only; process wall time adds Python start-up, package "
            "verification (sha256), session creation and NIfTI I/O. peak_rss: the whole "
            "`hidiff synthesize` process. Inputs larger than the package's grid are resampled "
            "to its spacing first (a 512^2 CT over 360 mm becomes the package's 128^2 grid), "
            "so the model work per slice is the same; the difference is I/O and resampling."
        ),
        "results": results,
        "provenance": provenance(),
    }


def main(
    package: Annotated[Path, typer.Option("--package", help="Model package.")],
    inputs: Annotated[list[Path], typer.Option("--input", help="CT volume(s) to synthesize.")],
    out: Annotated[Path | None, typer.Option("--out", help="Result JSON path.")] = None,
    repeats: Annotated[int, typer.Option("--repeats")] = BenchConfig.repeats,
    batch: Annotated[int, typer.Option("--batch")] = BenchConfig.batch,
) -> None:
    """Benchmark `hidiff synthesize` and write the JSON record."""
    record = bench(package, inputs, BenchConfig(repeats=repeats, batch=batch))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out or Path("benchmarks/results") / f"synthesize-cpu-{stamp}.json"
    atomic_write_json(path, record)
    for r in record["results"]:
        print(
            f"{r['input_size_xyz'][0]}x{r['input_size_xyz'][1]}x{r['input_size_xyz'][2]}: "
            f"{r['median_seconds_per_slice']:.3f} s/slice "
            f"(model {r['median_model_seconds_per_slice']:.3f}), peak RSS "
            f"{r['peak_rss_mib']:.0f} MiB, model grid {r['model_grid_zyx']}"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    typer.run(main)

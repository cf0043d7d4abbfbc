"""Run every configuration in its own child process and assemble the device record.

The record (kind `hidiff-bench-device/1`, schema `benchmarks/device/schema.json`) holds the
provenance (command, commit, machine, libraries, date), the configuration, the load average
before and after (the machine may be shared: timings are only as quiet as it was), one entry
per package, one result per package x provider x precision x grid x batch, the torch reference
row, and the ratios between packages (and against torch) measured in this same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import onnxruntime as ort

from benchmarks.device.config import RECORD_KIND, DeviceBenchConfig, TorchReferenceConfig
from edge_runtime.atomic import atomic_write_json
from edge_runtime.console import progress
from edge_runtime.errors import HidiffError, InputError
from edge_runtime.machine import provenance
from edge_runtime.package import load_package
from edge_runtime.providers import choose_precision, resolve_profile

SCHEMA_PATH = Path(__file__).with_name("schema.json")

DERIVATIONS = {
    "call": "one call = Engine.encode on a batch of model-space CT slices + Engine.denoise "
    "through every step of the package's sampler; outputs are numpy arrays, so the call has "
    "finished (synchronised) when it returns. Resampling, normalisation and file I/O excluded.",
    "latency_batch_s": "percentiles over `repeats` timed calls, after the first call and "
    "`warmup` further untimed calls; for a package whose call would exceed "
    "config.extrapolate_above_s (result.extrapolated_from_steps = N): resampling + encoder + "
    "sampler_steps x one denoiser step, each percentile componentwise over N timed encoder "
    "calls and N timed single steps of the package's own sampler (after `warmup` untimed)",
    "grid": "without --grid: the package's own grid, one call = the engine alone; with --grid "
    "G (input_grid): G x G CT slices covering the package's field of view, resampled onto the "
    "package grid before the encoder and the output back onto G x G after the sampler, both "
    "inside the timed call (resample_s_p50)",
    "latency_slice_s": "latency_batch_s / batch",
    "latency_volume_s": "latency_batch_s x ceil(volume_slices / batch): a volume of "
    "volume_slices slices run as consecutive batches (derived, not a separate run)",
    "throughput_slices_per_s": "batch / p50 of latency_batch_s",
    "peak_rss_mib": "VmHWM (peak resident set) of the fresh child process that measured this "
    "configuration alone (Python, onnxruntime, package, inputs included); ru_maxrss is not "
    "used on Linux because it carries the parent's peak across fork + exec",
    "load_s": "load_package (sha256 of every file) + both onnxruntime sessions, without the "
    "optimised-graph cache unless config.use_cache",
    "gpu_memory_mib": "nvidia-smi's used_memory of the child process after the timed calls "
    "(CUDA/TensorRT only); torch: torch.cuda.max_memory_allocated",
    "ratios": "package / reference package (the first --package) for the same provider asked, "
    "grid and batch (same precision where the reference has it); speedup = reference p50 / "
    "package p50; against torch: the torch row of the same grid and batch; `extrapolated`: "
    "either side's latency is extrapolated from timed steps",
    "package_size_bytes": "sum of the manifest's file sizes plus manifest.json",
}


def _child(module: str, cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and parse its last stdout line."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module, json.dumps(cfg)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"child process exceeded {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "failed", "reason": f"child exited {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def describe_package(path: Path) -> dict[str, Any]:
    """Size, grid, sampler and precisions of a package, verified as the runtime loads it."""
    pkg = load_package(path)
    m = pkg.manifest
    manifest_bytes = (pkg.root / "manifest.json").stat().st_size
    graph_bytes: dict[str, int] = {}
    for precision, roles in m.graphs.items():
        sizes = {e.path: e.bytes for e in m.files}
        graph_bytes[precision] = int(sum(sizes[p] for p in roles.values()))
    return {
        "path": str(path),
        "name": m.name,
        "manifest_sha256": pkg.manifest_sha256,
        "size_bytes": int(sum(e.bytes for e in m.files) + manifest_bytes),
        "graph_bytes": graph_bytes,
        "precisions": sorted(m.graphs),
        "grid": list(m.grid.shape),
        "sampler": {"kind": m.sampler.kind, "steps": len(pkg.make_sampler().timesteps)},
        "description": m.description,
    }


def _precisions(pkg: dict[str, Any], provider: str, cfg: DeviceBenchConfig) -> list[str]:
    if cfg.precisions is None:
        return list(pkg["precisions"])
    wanted = [p for p in cfg.precisions if p in pkg["precisions"]]
    if not wanted:  # none of the asked precisions: the one the runtime would pick
        wanted = [choose_precision(resolve_profile(provider), pkg["precisions"])]
    return wanted


def plan(packages: list[dict[str, Any]], cfg: DeviceBenchConfig) -> list[dict[str, Any]]:
    """Every configuration to measure, in order: `grid` is the input slice size (`--grid`,
    resampled to the package's grid in the call) or, without `--grid`, the package's own."""
    jobs = []
    for pkg in packages:
        grids = list(cfg.grids) if cfg.grids else [pkg["grid"][0]]
        for provider in cfg.providers:
            for precision in _precisions(pkg, provider, cfg):
                for grid in grids:
                    for batch in cfg.batches:
                        jobs.append(
                            {
                                "package": pkg["path"],
                                "package_name": pkg["name"],
                                "provider_asked": provider,
                                "precision_asked": precision,
                                "grid": grid,
                                "input_grid": grid if cfg.grids else None,
                                "batch": batch,
                            }
                        )
    return jobs


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _extrapolated(result: dict[str, Any]) -> bool:
    return bool(result.get("extrapolated_from_steps"))


def ratios(
    results: list[dict[str, Any]],
    packages: list[dict[str, Any]],
    torch_rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each package against the first package (and the torch rows), same provider asked, grid
    and batch; the reference at the same precision when it has it, else its first one."""
    ok = [r for r in results if r["status"] == "ok"]
    size = {p["name"]: p["size_bytes"] for p in packages}
    ref_name = packages[0]["name"]
    out = []
    for r in ok:
        key = (r["provider_asked"], r["grid"], r["batch"])
        refs = [
            x
            for x in ok
            if x["package_name"] == ref_name and (x["provider_asked"], x["grid"], x["batch"]) == key
        ]
        if refs and r["package_name"] != ref_name:
            same = [x for x in refs if x["precision"] == r["precision"]]
            ref = (same or refs)[0]
            out.append(
                {
                    "against": "package",
                    "reference": f"{ref_name} {ref['precision']}",
                    "package": f"{r['package_name']} {r['precision']}",
                    "provider_asked": r["provider_asked"],
                    "grid": r["grid"],
                    "batch": r["batch"],
                    "speedup_p50": _ratio(
                        ref["latency_batch_s"]["p50"], r["latency_batch_s"]["p50"]
                    ),
                    "throughput_ratio": _ratio(
                        r["throughput_slices_per_s"], ref["throughput_slices_per_s"]
                    ),
                    "peak_rss_ratio": _ratio(r["peak_rss_mib"], ref["peak_rss_mib"]),
                    "size_ratio": _ratio(size[r["package_name"]], size[ref_name]),
                    "extrapolated": _extrapolated(r) or _extrapolated(ref),
                }
            )
        for torch_row in torch_rows:
            if torch_row.get("status") != "ok":
                continue
            if (torch_row["grid"], torch_row["batch"]) == (r["grid"], r["batch"]):
                out.append(
                    {
                        "against": "torch",
                        "reference": f"torch {torch_row['run_name']} ({torch_row['device']})",
                        "package": f"{r['package_name']} {r['precision']}",
                        "provider_asked": r["provider_asked"],
                        "grid": r["grid"],
                        "batch": r["batch"],
                        "speedup_p50": _ratio(
                            torch_row["latency_batch_s"]["p50"], r["latency_batch_s"]["p50"]
                        ),
                        "throughput_ratio": _ratio(
                            r["throughput_slices_per_s"], torch_row["throughput_slices_per_s"]
                        ),
                        "peak_rss_ratio": _ratio(r["peak_rss_mib"], torch_row["peak_rss_mib"]),
                        "size_ratio": None,
                        "extrapolated": _extrapolated(r) or bool(torch_row["extrapolated"]),
                    }
                )
    return out


def run_device_bench(
    package_paths: Sequence[Path],
    out: Path,
    cfg: DeviceBenchConfig | None = None,
    torch_run: Path | str | None = None,
    torch_cfg: TorchReferenceConfig | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Measure every configuration, each in a fresh child process; write the record to `out`."""
    cfg = cfg or DeviceBenchConfig()
    torch_cfg = torch_cfg or TorchReferenceConfig()
    if not package_paths:
        raise InputError("give at least one --package")
    if cfg.repeats < 1 or cfg.warmup < 0:
        raise InputError("--repeats must be >= 1 and --warmup >= 0")
    if any(b < 1 for b in cfg.batches):
        raise InputError("--batch values must be >= 1")
    for prov in cfg.providers:
        resolve_profile(prov)  # refuse an unknown or unavailable provider before any work
    if (
        torch_run is not None
        and not str(torch_run).startswith("preset:")
        and not Path(torch_run).is_dir()
    ):
        raise InputError(f"--torch-reference {torch_run} is not a run folder (nor preset:NAME)")
    packages = [describe_package(Path(p)) for p in package_paths]
    names = [p["name"] for p in packages]
    if len(set(names)) != len(names):
        raise InputError(f"the same package was given twice: {names}")
    load_start = list(os.getloadavg())
    jobs = plan(packages, cfg)
    results: list[dict[str, Any]] = []
    n_torch = len(cfg.batches) if torch_run is not None else 0
    with progress() as bar:
        task = bar.add_task("device benchmark", total=len(jobs) + n_torch)
        for job in jobs:
            child = {
                "package": job["package"],
                "provider": job["provider_asked"],
                "precision": job["precision_asked"],
                "batch": job["batch"],
                "input_grid": job["input_grid"],
                "seed": cfg.seed,
                "warmup": cfg.warmup,
                "repeats": cfg.repeats,
                "percentiles": list(cfg.percentiles),
                "volume_slices": cfg.volume_slices,
                "threads": cfg.threads,
                "use_cache": cfg.use_cache,
                "extrapolate_above_s": cfg.extrapolate_above_s,
            }
            res = _child("benchmarks.device.worker", child, cfg.child_timeout_s)
            results.append(job | {"repeats": cfg.repeats, "warmup": cfg.warmup} | res)
            bar.advance(task)
        torch_rows: list[dict[str, Any]] = []
        for batch in cfg.batches if torch_run is not None else []:
            tcfg = asdict(torch_cfg) | {
                "run": str(torch_run),
                "batch": batch,
                "seed": cfg.seed,
                "volume_slices": cfg.volume_slices,
            }
            if tcfg["threads"] is None:
                tcfg["threads"] = cfg.threads
            torch_rows.append(
                _child("benchmarks.device.torch_reference", tcfg, cfg.child_timeout_s)
                | {"batch": batch}
            )
            bar.advance(task)
    failed = [r for r in results if r["status"] == "failed"]
    if failed and len(failed) == len(results):
        raise HidiffError(f"every configuration failed; first: {failed[0]['reason']}")
    torch_ref: dict[str, Any] = (
        {"run": str(torch_run), "rows": torch_rows, "config": asdict(torch_cfg)}
        if torch_run is not None
        else {"rows": [], "note": "not asked (--torch-reference none)"}
    )
    record = {
        "kind": RECORD_KIND,
        "provenance": provenance(command),
        "onnxruntime": {
            "version": ort.__version__,
            "available_providers": ort.get_available_providers(),
        },
        "config": cfg.to_dict(),
        "load_average": {"start": load_start, "end": list(os.getloadavg())},
        "derivations": DERIVATIONS,
        "packages": packages,
        "results": results,
        "torch_reference": torch_ref,
        "ratios": ratios(results, packages, torch_rows),
    }
    validate_record(record)
    atomic_write_json(Path(out), record)
    return record


def validate_record(record: dict[str, Any]) -> None:
    """Check a record against the committed schema (a bug here, not a user error)."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator(schema).validate(record)

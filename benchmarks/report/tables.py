"""The report's tables, as DataFrames built from the input records (no number is recomputed
except unit changes: seconds to milliseconds, bytes to MiB)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchmarks.stats import verdict_text

MIB = 2**20
EXTRAPOLATED = "extrapolated"


def short_provider(name: str | None) -> str:
    return (name or "").replace("ExecutionProvider", "") or "?"


def device_table(rec: dict[str, Any]) -> pd.DataFrame:
    """One row per measured configuration (status ok) and per torch reference row."""
    rows = []
    sizes = {p["name"]: p["size_bytes"] for p in rec["packages"]}
    for r in rec["results"]:
        if r["status"] != "ok":
            continue
        n_steps = r.get("extrapolated_from_steps")
        rows.append(
            {
                "model": r["package_name"],
                "runtime": f"onnxruntime {short_provider(r['provider_used'])}",
                "precision": r["precision"],
                "grid": r["grid"],
                "input": "engine only" if not r.get("input_grid") else "resampled",
                "batch": r["batch"],
                "steps": r["sampler_steps"],
                "threads": r["threads"],
                "ms/slice p50": r["latency_slice_s"]["p50"] * 1e3,
                "ms/slice p95": r["latency_slice_s"]["p95"] * 1e3,
                "s/volume p50": r["latency_volume_s"]["p50"],
                "slices/s": r["throughput_slices_per_s"],
                "first call s": r["first_call_s"],
                "load s": r["load_s"],
                "peak RSS MiB": r["peak_rss_mib"],
                "GPU MiB": r["gpu_memory_mib"],
                "size MiB": sizes[r["package_name"]] / MIB,
                "timing": timing_text(n_steps, len(r.get("timings_s", []))),
            }
        )
    for t in rec["torch_reference"]["rows"]:
        if t.get("status") != "ok":
            continue
        rows.append(
            {
                "model": f"{t['run_name']} (torch eager)",
                "runtime": f"torch {t['device']}",
                "precision": "fp32",
                "grid": t["grid"],
                "input": "engine only",
                "batch": t["batch"],
                "steps": t["sampler"]["steps"],
                "threads": t["threads"],
                "ms/slice p50": t["latency_slice_s"]["p50"] * 1e3,
                "ms/slice p95": None,
                "s/volume p50": t["latency_volume_s"]["p50"],
                "slices/s": t["throughput_slices_per_s"],
                "first call s": t.get("first_call_s"),
                "load s": t["load_s"],
                "peak RSS MiB": t["peak_rss_mib"],
                "GPU MiB": t.get("gpu_memory_mib"),
                "size MiB": None,
                "timing": timing_text(
                    t["denoiser_calls_timed"] if t["extrapolated"] else None,
                    t.get("loops_timed", 0),
                ),
            }
        )
    return pd.DataFrame(rows)


def timing_text(extrapolated_from_steps: int | None, whole_calls: int) -> str:
    """How a row's latency was obtained, as the tables and figures show it."""
    if extrapolated_from_steps:
        return f"{EXTRAPOLATED} from {extrapolated_from_steps} timed steps"
    return f"{whole_calls} whole calls"


def extrapolated_notes(rec: dict[str, Any]) -> list[str]:
    """One line per configuration whose latency is extrapolated from timed denoiser steps."""
    return [
        f"{r['package_name']} {r['precision']} {r['grid']}^2 batch {r['batch']}: latency "
        f"{EXTRAPOLATED} from {r['extrapolated_from_steps']} timed denoiser steps and "
        f"{len(r['encode_timings_s'])} encoder calls (call = encoder + {r['sampler_steps']} x "
        "step median; the package's call is longer than the benchmark's whole-call limit)"
        for r in rec["results"]
        if r["status"] == "ok" and r.get("extrapolated_from_steps")
    ]


def not_measured(rec: dict[str, Any]) -> list[str]:
    """Configurations asked for but skipped or failed, with their reasons."""
    out = [
        f"{r['package_name']} {r['provider_asked']} {r['precision_asked']} {r['grid']}^2 "
        f"batch {r['batch']}: {r['status']} ({r['reason']})"
        for r in rec["results"]
        if r["status"] != "ok"
    ]
    out += [
        f"torch reference batch {t['batch']}: {t['status']} ({t['reason']})"
        for t in rec["torch_reference"]["rows"]
        if t.get("status") != "ok"
    ]
    return out


def ratio_table(rec: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "package": x["package"],
            "vs": x["reference"],
            "provider": x["provider_asked"],
            "grid": x["grid"],
            "batch": x["batch"],
            "speedup (p50)": x["speedup_p50"],
            "peak RSS ratio": x["peak_rss_ratio"],
            "size ratio": x["size_ratio"],
            "latency": EXTRAPOLATED if x.get("extrapolated") else "measured",
        }
        for x in rec["ratios"]
    ]
    return pd.DataFrame(rows)


def headline(rec: dict[str, Any], summary: dict[str, Any] | None) -> list[str]:
    """The report's first lines: each package against the reference package measured in the
    same run (latency, size, peak RSS) and the harness's non-inferiority verdicts, in words."""
    ok = {
        (r["package_name"], r["precision"], r["provider_asked"], r["grid"], r["batch"]): r
        for r in rec["results"]
        if r["status"] == "ok"
    }
    sizes = {p["name"]: p["size_bytes"] / MIB for p in rec["packages"]}
    lines = []
    for x in rec["ratios"]:
        if x["against"] != "package" or x["speedup_p50"] is None:
            continue
        (a, ap), (b, bp) = x["package"].rsplit(" ", 1), x["reference"].rsplit(" ", 1)
        key = (x["provider_asked"], x["grid"], x["batch"])
        ra, rb = ok[(a, ap, *key)], ok[(b, bp, *key)]
        mark = f" ({EXTRAPOLATED} from timed steps)" if x.get("extrapolated") else ""
        lines.append(
            f"{x['package']} vs {x['reference']} ({x['provider_asked']}, {x['grid']}^2, batch "
            f"{x['batch']}): {ra['latency_slice_s']['p50'] * 1e3:.4g} vs "
            f"{rb['latency_slice_s']['p50'] * 1e3:.4g} ms per slice (p50), "
            f"{x['speedup_p50']:.3g}x faster{mark}; size {sizes[a]:.3g} vs {sizes[b]:.3g} MiB "
            f"({x['size_ratio']:.3g}x); peak RSS {ra['peak_rss_mib']:.0f} vs "
            f"{rb['peak_rss_mib']:.0f} MiB ({x['peak_rss_ratio']:.3g}x)"
        )
    if not lines:
        lines.append("no two packages were measured in the same configuration: no ratio")
    for c in (summary or {}).get("comparisons", []):
        if c.get("status") == "ok" and c.get("noninferior") is not None:
            lines.append(
                f"{c['metric']}, {c['b']} vs {c['a']}: mean "
                f"{c['mean_b']:.4g} vs {c['mean_a']:.4g} (n = {c['n']}): {verdict_text(c)}"
            )
    if summary is None:
        lines.append("accuracy not given: no non-inferiority verdict")
    return lines


def ledger_table(stages: list[dict[str, Any]]) -> pd.DataFrame:
    """The ledger's stages in order, every column as written (status and reason included)."""
    return pd.DataFrame([{k: v for k, v in st.items() if k != "name"} for st in stages])


def verdict_table(summary: dict[str, Any]) -> pd.DataFrame:
    """The paired comparisons of `hidiff bench accuracy` (benchmarks.stats.paired_comparison)."""
    rows = []
    for c in summary.get("comparisons", []):
        if c.get("status") != "ok":
            rows.append({"metric": c["metric"], "A": c["a"], "B": c["b"], "verdict": c["status"]})
            continue
        rows.append(
            {
                "metric": c["metric"],
                "A": c["a"],
                "B": c["b"],
                "n": c["n"],
                "mean A": c["mean_a"],
                "mean B": c["mean_b"],
                "mean B-A": c["mean_diff"],
                f"{int(c['ci_level'] * 100)}% CI": f"[{c['ci_low']:.4g}, {c['ci_high']:.4g}]",
                "t p": c["t_p"],
                "Wilcoxon p": c["wilcoxon_p"],
                "non-inferiority p": c.get("noninferiority_p"),
                "verdict": verdict_text(c),
            }
        )
    return pd.DataFrame(rows)


def accuracy_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Mean (sd) of the headline metrics per method and sequence, from the summary."""
    rows = []
    for method, res in summary.get("results", {}).items():
        for seq, metrics in res.get("by_sequence", {}).items():
            row: dict[str, Any] = {"method": method, "sequence": seq}
            for m in (
                "ssim",
                "ssim_liver_masked",
                "ssim_liver_masked_2d",
                "ms_ssim_body",
                "psnr",
                "mae",
                "vessel_cldice",
            ):
                if m in metrics and metrics[m]["mean"] is not None:
                    row[m] = metrics[m]["mean"]
            rows.append(row)
    return pd.DataFrame(rows)


def fmt(df: pd.DataFrame) -> pd.DataFrame:
    """Numbers to 4 significant digits for display; missing values as blanks."""

    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return ""
        if isinstance(v, float):
            return f"{v:.4g}"
        return v

    return df.apply(lambda col: col.map(one)) if len(df) else df

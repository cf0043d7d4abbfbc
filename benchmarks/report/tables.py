"""The report's tables, as DataFrames built from the input records (no number is recomputed
except unit changes: seconds to milliseconds, bytes to MiB)."""

from __future__ import annotations

from typing import Any

import pandas as pd

MIB = 2**20


def short_provider(name: str | None) -> str:
    return (name or "").replace("ExecutionProvider", "") or "?"


def device_table(rec: dict[str, Any]) -> pd.DataFrame:
    """One row per measured configuration (status ok) and per torch reference row."""
    rows = []
    sizes = {p["name"]: p["size_bytes"] for p in rec["packages"]}
    for r in rec["results"]:
        if r["status"] != "ok":
            continue
        rows.append(
            {
                "model": r["package_name"],
                "runtime": f"onnxruntime {short_provider(r['provider_used'])}",
                "precision": r["precision"],
                "grid": r["grid"],
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
                "timed calls": len(r["timings_s"]),
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
                "timed calls": t["denoiser_calls_timed"] if t["extrapolated"] else t["loops_timed"],
            }
        )
    return pd.DataFrame(rows)


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
        }
        for x in rec["ratios"]
    ]
    return pd.DataFrame(rows)


def verdict_text(c: dict[str, Any]) -> str:
    """The harness's own non-inferiority boolean, in words (nothing is re-tested here)."""
    if c.get("noninferior") is True:
        return f"non-inferior (margin {c['noninferiority_margin']})"
    if c.get("noninferior") is False:
        return f"NOT shown non-inferior (margin {c['noninferiority_margin']})"
    return "difference only (no margin set for this metric)"


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
            for m in ("ssim", "ssim_liver_masked", "ms_ssim_body", "psnr", "mae", "vessel_cldice"):
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

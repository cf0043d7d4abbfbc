"""The markdown of issue #6's comparison, read from `hidiff bench accuracy`'s summary.json.

It only formats what the harness measured and tested (nothing is recomputed here, so the table
and summary.json cannot disagree) and states the verdict the issue asks for: does AP-HiDiff beat
both baselines on SSIM and vessel clDice with p < 0.05 (paired t-test and Wilcoxon both), and on
the < 3 mm satellite miss rate.
"""

from __future__ import annotations

from typing import Any

# (summary column, heading, digits) of the per-method table, per sequence
COLUMNS = (
    ("ssim", "SSIM liver slices", 3),
    ("ssim_liver_masked", "SSIM liver mask", 3),
    ("psnr", "PSNR body dB", 2),
    ("mae", "MAE body", 1),
    ("roi_ssim_tumour", "SSIM tumour ROI", 3),
    ("roi_ssim_background", "SSIM background", 3),
    ("vessel_cldice", "vessel clDice", 3),
)
# the issue's must-beat metrics that have a paired test, and the baselines they are judged on
MUST_BEAT = ("ssim", "vessel_cldice")
BASELINES = ("ddpm", "pix2pix")
SMALL_BIN = "<3mm"


def _num(x: float | None, digits: int) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2g}" if x >= 0.001 else f"{x:.0e}"


def _rate(d: dict[str, Any], n_key: str, k_key: str) -> str:
    n = d.get(n_key) or 0
    return f"{d[k_key]}/{n}" if n else "0/0 (none)"


def _beats(c: dict[str, Any], alpha: float) -> bool:
    """The reference (a) is better than b in the metric's direction, both paired tests < alpha."""
    better = c["mean_diff"] < 0 if c["higher_is_better"] else c["mean_diff"] > 0
    return bool(better and c["t_p"] < alpha and c["wilcoxon_p"] < alpha)


def _method_rows(summary: dict[str, Any], seq: str) -> list[str]:
    head = ["method", *(h for _, h, _ in COLUMNS), "< 3 mm missed", "shunts drawn", "FFBD"]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for m, res in summary["results"].items():
        agg = res["by_sequence"].get(seq, {})
        cells = [m]
        for col, _, digits in COLUMNS:
            d = agg.get(col) or {}
            sd = f" ± {_num(d.get('sd'), digits)}" if d.get("sd") is not None else ""
            cells.append(_num(d.get("mean"), digits) + sd)
        small = res["lesion_detection"].get(SMALL_BIN, {})
        missed = (small.get("visible_in_truth") or 0) - (small.get("detected") or 0)
        cells.append(_rate({**small, "missed": missed}, "visible_in_truth", "missed"))
        cells.append(_rate(res["hallucination"]["shunts"], "regions", "hallucinated"))
        cells.append(_num(res["ffbd_pooled"].get(seq), 3))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _test_rows(summary: dict[str, Any]) -> list[str]:
    ok = [c for c in summary["comparisons"] if c.get("status") == "ok"]
    metrics = list(dict.fromkeys(c["metric"] for c in ok))
    head = ["method (b) vs " + summary["reference_method"], *metrics]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for b in list(summary["results"])[1:]:
        cells = [b]
        for metric in metrics:
            c = next((c for c in ok if c["b"] == b and c["metric"] == metric), None)
            cells.append(
                "n/a"
                if c is None
                else f"{c['mean_diff']:+.3g} (t {_p(c['t_p'])}, W {_p(c['wilcoxon_p'])})"
            )
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def verdict(summary: dict[str, Any], alpha: float = 0.05) -> list[str]:
    """One line per baseline and must-beat metric: beaten or not, with the numbers."""
    ref = summary["reference_method"]
    lines = []
    for b in BASELINES:
        if b not in summary["results"]:
            continue
        for metric in MUST_BEAT:
            c = next(
                (c for c in summary["comparisons"] if c["b"] == b and c["metric"] == metric), None
            )
            if c is None or c.get("status") != "ok":
                lines.append(f"- {metric} vs {b}: not testable ({(c or {}).get('status')})")
                continue
            word = "BEATS" if _beats(c, alpha) else "does NOT beat"
            lines.append(
                f"- {metric}: {ref} {c['mean_a']:.3f} vs {b} {c['mean_b']:.3f}: {ref} {word} "
                f"{b} at p < {alpha} (t p = {_p(c['t_p'])}, Wilcoxon p = {_p(c['wilcoxon_p'])}, "
                f"n = {c['n']})"
            )
        mine = summary["results"][ref]["lesion_detection"].get(SMALL_BIN, {})
        theirs = summary["results"][b]["lesion_detection"].get(SMALL_BIN, {})
        if not mine.get("visible_in_truth"):
            lines.append(f"- < 3 mm miss rate vs {b}: not testable (no visible < 3 mm lesion)")
        else:
            lower = mine["miss_rate"] < theirs["miss_rate"]
            lines.append(
                f"- < 3 mm miss rate: {ref} {mine['miss_rate']:.2f} vs {b} "
                f"{theirs['miss_rate']:.2f} ({mine['visible_in_truth']} visible lesions, pooled, "
                f"no test): {ref} {'is lower' if lower else 'is NOT lower'}"
            )
    return lines


def comparison_markdown(summary: dict[str, Any], record: dict[str, Any]) -> str:
    """The full markdown: settings, per-method table per sequence, paired tests, verdict, runs."""
    plan = record["plan"]
    n = len(summary["cases"])
    out = [
        f"# Model comparison, preset `{plan['preset']}`",
        "",
        f"Held-out truth: `{summary['truth']}` ({n} patients: {', '.join(summary['cases'])}); "
        f"sequences {', '.join(summary['sequences'])}. Every run: {plan['steps']} steps of batch "
        f"{plan['batch_size']}, seed {plan['seed']}, data `{plan['train_data']}`; sampler steps "
        f"{plan['predict_steps'] or 'each model default'}. Reference of the paired tests: "
        f"`{summary['reference_method']}`; p-values are paired t-test (t) and Wilcoxon "
        "signed-rank (W) over patients, difference = method - reference.",
        "",
    ]
    if record.get("not_run"):
        out += [f"Not run (out of time on the shared CPU): {', '.join(record['not_run'])}.", ""]
    for seq in summary["sequences"]:
        out += [f"## {seq.upper()}: mean ± sd over patients", "", *_method_rows(summary, seq), ""]
    out += [
        "SSIM liver slices: mean 2D SSIM over slices with liver (the harness's `ssim`); SSIM "
        "liver mask: SSIM map averaged inside the liver; PSNR and MAE inside the body (phantom "
        "signal units); < 3 mm missed: visible < 3 mm lesions the fixed detector misses, pooled "
        "over patients; shunts drawn: arterio-portal shunts (pseudo-lesions) drawn as lesions; "
        "FFBD: Frechet filter-bank distance of the pooled slices (lower is closer).",
        "",
        "## Paired tests against the reference (mean difference, p-values)",
        "",
        *_test_rows(summary),
        "",
        "## Verdict (issue #6: beat both baselines on SSIM and clDice, p < 0.05, and on < 3 mm)",
        "",
        *verdict(summary),
        "",
        "## Training runs",
        "",
        "| run | steps | wall s | images/s | peak memory MiB | final loss |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, t in record["training"].items():
        out.append(
            f"| {name} | {t['steps']} | {t['wall_s']} | {t['images_per_s']} | "
            f"{t['peak_memory_mib']} | {t['final_loss']} |"
        )
    return "\n".join(out) + "\n"

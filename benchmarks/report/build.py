"""Assemble the report folder: report.html (self-contained), figures/*.png, summary.md.

    report.html   Plotly's JavaScript inlined once (opens offline, no CDN); accuracy images
                  embedded as data URIs, so the single file is the whole report
    figures/      latency.png, memory_size.png, ledger_waterfall.png (when a ledger is given)
                  and copies of the accuracy harness's own PNGs
    summary.md    the same tables in markdown, with the notes on what is missing

The folder appears only when complete (edge_runtime.atomic).
"""

from __future__ import annotations

import base64
import html
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.offline

from benchmarks.report import plots, tables
from benchmarks.report.inputs import read_accuracy, read_device, read_ledger
from edge_runtime.atomic import atomic_directory, atomic_write_text

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f2f2f2}.note{color:#8a5a00}img{max-width:100%}
tr.failed td{background:#fde0e0;color:#b00000;font-weight:bold}
.headline{background:#eef4ff;border-left:4px solid #636efa;padding:6px 12px}
"""


def _md_table(df: pd.DataFrame) -> str:
    return tables.fmt(df).to_markdown(index=False) if len(df) else "(none)"


def _html_table(df: pd.DataFrame, failed_rows: frozenset[int] = frozenset()) -> str:
    """An HTML table of `df` (numbers as `tables.fmt` shows them); rows in `failed_rows` red."""
    if not len(df):
        return "<p>(none)</p>"
    shown = tables.fmt(df)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join(
        ('<tr class="failed">' if i in failed_rows else "<tr>")
        + "".join(f"<td>{html.escape(str(v))}</td>" for v in row)
        + "</tr>"
        for i, row in enumerate(shown.itertuples(index=False))
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _png_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">' + (
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


def _fig_div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def build_report(
    device_json: Path,
    out: Path,
    accuracy_dir: Path | None = None,
    ledger_path: Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the report folder; returns the notes and the names of the figures made."""
    rec = read_device(device_json)
    acc = read_accuracy(accuracy_dir) if accuracy_dir is not None else None
    ledger = read_ledger(ledger_path) if ledger_path is not None else None
    notes: list[str] = []
    prov = rec["provenance"]
    mach = prov["machine"]
    dev = tables.device_table(rec)
    if dev.empty:
        notes.append("no configuration of the device record was measured successfully")
    notes += tables.not_measured(rec)
    notes += tables.extrapolated_notes(rec)
    t_rows = [t for t in rec["torch_reference"]["rows"] if t.get("status") == "ok"]
    if not rec["torch_reference"]["rows"]:
        notes.append("torch reference: " + rec["torch_reference"].get("note", "not given"))
    for t in t_rows:
        if t["extrapolated"]:
            notes.append(
                f"torch reference batch {t['batch']}: {t['denoiser_calls_timed']} denoiser "
                f"steps timed, latency extrapolated to {t['sampler']['steps']} steps"
            )
    if acc is None:
        notes.append("accuracy: not given (--accuracy); no verdicts, box plots or heat map")
    if ledger is None:
        notes.append("compression ledger: not given (--ledger); no waterfall")
    else:
        notes += [
            f"compression ledger: stage {st['stage']} {st.get('status')}: "
            f"{st.get('reason') or 'no reason given'}"
            for st in ledger.stages
            if ledger.failed(st)
        ]

    div_ids: list[str] = []
    sections: list[str] = []
    md: list[str] = []
    with atomic_directory(Path(out), overwrite=overwrite) as tmp:
        figs = tmp / "figures"
        figs.mkdir()
        pngs: list[str] = []
        head = (
            f"Measured {prov['date']} on {mach['cpu_model']} ({mach['cpu_count']} cores, "
            f"{mach['ram_gib']} GiB RAM, GPUs: {', '.join(mach['gpus']) or 'none'}); "
            f"onnxruntime {rec['onnxruntime']['version']}; commit {prov['commit']}; "
            f"load average {rec['load_average']['start'][0]:.2f} -> "
            f"{rec['load_average']['end'][0]:.2f} (1 min); {rec['config']['repeats']} timed "
            f"calls per configuration after the first call and {rec['config']['warmup']} warm-up "
            "calls (untimed), medians; peak RSS per "
            "configuration in its own child process."
        )
        md += ["# HiDiff-Edge benchmark report", "", head, ""]
        md += [f"Device record: `{device_json}`; command: `{prov['command']}`", ""]
        sections.append(f"<h1>HiDiff-Edge benchmark report</h1><p>{html.escape(head)}</p>")
        top = tables.headline(rec, acc.summary if acc is not None else None)
        md += ["## Headline", "", *[f"- {line}" for line in top], ""]
        sections.append(
            '<div class="headline"><h2>Headline</h2><ul>'
            + "".join(f"<li>{html.escape(line)}</li>" for line in top)
            + "</ul></div>"
        )

        # Device
        md += ["## Speed, memory and size on this device", "", _md_table(dev), ""]
        sections.append("<h2>Speed, memory and size on this device</h2>" + _html_table(dev))
        if not dev.empty:
            for name, fig in (
                ("latency", plots.latency_figure(dev)),
                ("memory_size", plots.memory_size_figure(dev)),
            ):
                div_ids.append(f"fig-{name}")
                sections.append(_fig_div(fig, f"fig-{name}"))
            pngs.append(plots.latency_png(dev, figs / "latency.png").name)
            pngs.append(plots.memory_size_png(dev, figs / "memory_size.png").name)
            md += ["![latency](figures/latency.png)", "", "![memory](figures/memory_size.png)", ""]
        how = [f"- {k}: {v}" for k, v in rec["derivations"].items()]
        md += ["### How these numbers are measured", "", *how, ""]
        sections.append(
            "<h3>How these numbers are measured</h3><ul>"
            + "".join(
                f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                for k, v in rec["derivations"].items()
            )
            + "</ul>"
        )
        rat = tables.ratio_table(rec)
        md += ["### Ratios measured in the same run", "", _md_table(rat), ""]
        sections.append("<h3>Ratios measured in the same run</h3>" + _html_table(rat))

        # Ledger
        if ledger is not None:
            led = tables.ledger_table(ledger.stages)
            failed = frozenset(i for i, st in enumerate(ledger.stages) if ledger.failed(st))
            shown = led.copy()
            if "status" in shown.columns:  # markdown has no colour: the word says it
                shown["status"] = [
                    f"**{str(v).upper()}**" if i in failed else v
                    for i, v in enumerate(shown["status"])
                ]
            src = f"From `{ledger.path}`" + (
                f" ({ledger.provenance.get('date', '')}, commit "
                f"{ledger.provenance.get('commit', '?')})"
                if ledger.provenance
                else ""
            )
            md += ["## Compression ledger", "", src, "", _md_table(shown), ""]
            sections.append(
                f"<h2>Compression ledger</h2><p>{html.escape(src)}; failed stages in red "
                "with their reason (the pipeline continued from the stage before)</p>"
                + _html_table(led, failed)
            )
        if ledger is not None and ledger.metrics:
            div_ids.append("fig-ledger")
            sections.append(_fig_div(plots.waterfall_figure(ledger), "fig-ledger"))
            pngs.append(plots.waterfall_png(ledger, figs / "ledger_waterfall.png").name)
            md += ["![ledger](figures/ledger_waterfall.png)", ""]

        # Accuracy
        if acc is not None:
            s = acc.summary
            ver = tables.verdict_table(s)
            acc_tab = tables.accuracy_table(s)
            intro = (
                f"From {acc.root} (hidiff bench accuracy, {s['provenance']['date']}): cases "
                f"{', '.join(s['cases'])}; reference method {s['reference_method']}; "
                f"non-inferiority margin {s['noninferiority_margin_ssim']} on "
                f"{', '.join(s.get('noninferiority_metrics', ['ssim']))}. Verdicts are "
                "the harness's own (benchmarks.stats.paired_comparison), copied, not re-tested."
            )
            md += ["## Accuracy of compressed vs full", "", intro, "", _md_table(acc_tab), ""]
            md += ["### Paired comparisons and non-inferiority", "", _md_table(ver), ""]
            sections.append(
                f"<h2>Accuracy of compressed vs full</h2><p>{html.escape(intro)}</p>"
                + _html_table(acc_tab)
                + "<h3>Paired comparisons and non-inferiority</h3>"
                + _html_table(ver)
            )
            if acc.per_case_csv is not None:
                per_case = pd.read_csv(acc.per_case_csv)
                if {"method", "sequence", "ssim"} <= set(per_case.columns):
                    div_ids.append("fig-accuracy-box")
                    sections.append(
                        _fig_div(plots.accuracy_box_figure(per_case), "fig-accuracy-box")
                    )
            if not acc.figures:
                notes.append("accuracy: the harness's folder holds no figures")
            for f in acc.figures:
                kind = "worst case" if f.name.startswith("worst_") else f.stem.replace("_", " ")
                shutil.copy2(f, figs / f"accuracy_{f.name}")
                pngs.append(f"accuracy_{f.name}")
                sections.append(_png_tag(f, kind))
                md += [f"![{kind}](figures/accuracy_{f.name})", ""]
            if not any(f.name.startswith("worst_") for f in acc.figures):
                notes.append("accuracy: no worst-case images in the harness's output")

        if notes:
            md += ["## Notes (what is not in this report, and why)", ""]
            md += [f"- {n}" for n in notes] + [""]
            sections.append(
                "<h2>Notes</h2><ul>"
                + "".join(f'<li class="note">{html.escape(n)}</li>' for n in notes)
                + "</ul>"
            )
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            "<title>HiDiff-Edge benchmark report</title>"
            f"<style>{CSS}</style>"
            f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script>"
            "</head><body>" + "\n".join(sections) + "</body></html>"
        )
        atomic_write_text(tmp / "report.html", page)
        atomic_write_text(tmp / "summary.md", "\n".join(md))
    return {"notes": notes, "plotly_divs": div_ids, "pngs": pngs}

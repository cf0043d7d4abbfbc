"""Figures of the report: Plotly for the interactive HTML, matplotlib for the PNGs.

Both are drawn from the same DataFrames so the HTML and the PNGs show the same numbers.
Latency axes are logarithmic because a torch teacher and an edge package differ by orders of
magnitude.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from benchmarks.report.inputs import Ledger
from benchmarks.report.tables import EXTRAPOLATED

FAILED_RED = "#d62728"


def _label(df: pd.DataFrame) -> pd.Series:
    """model precision / runtime @ grid, marked when its latency is extrapolated."""
    mark = df["timing"].str.startswith(EXTRAPOLATED).map({True: " (extrap.)", False: ""})
    grid = " @" + df["grid"].astype(str) + "^2"
    return df["model"] + " " + df["precision"] + " / " + df["runtime"] + grid + mark


def latency_figure(dev: pd.DataFrame) -> go.Figure:
    """ms per slice (p50, bar to p95) per model and runtime, one bar group per batch."""
    fig = go.Figure()
    d = dev.assign(label=_label(dev))
    for batch, g in d.groupby("batch"):
        p95 = g["ms/slice p95"].astype(float)
        fig.add_bar(
            name=f"batch {batch}",
            x=g["label"],
            y=g["ms/slice p50"],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": (p95 - g["ms/slice p50"]).fillna(0),
                "arrayminus": [0] * len(g),
            },
            hovertemplate="%{x}<br>%{y:.1f} ms/slice (p50)<extra>batch " + str(batch) + "</extra>",
        )
    fig.update_layout(
        title="Latency per slice (median; whisker to p95)",
        yaxis={"title": "ms per slice", "type": "log"},
        barmode="group",
        height=460,
    )
    return fig


def memory_size_figure(dev: pd.DataFrame) -> go.Figure:
    """Peak RSS per configuration and package size per package."""
    d = dev.assign(label=_label(dev) + " b" + dev["batch"].astype(str))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Peak RSS (MiB)", "Package size (MiB)"))
    fig.add_bar(x=d["label"], y=d["peak RSS MiB"], name="peak RSS", row=1, col=1)
    sizes = d.dropna(subset=["size MiB"]).drop_duplicates("model")
    fig.add_bar(x=sizes["model"], y=sizes["size MiB"], name="size", row=1, col=2)
    fig.update_layout(title="Memory and size", showlegend=False, height=460)
    return fig


def _ledger_series(
    ledger: Ledger, metric: str
) -> tuple[list[dict], list[float], list[dict], list[str]]:
    """Kept stages with `metric` and their values; failed stages with it; the x order."""
    kept = [s for s in ledger.kept if isinstance(s.get(metric), int | float)]
    failed = [
        s for s in ledger.stages if ledger.failed(s) and isinstance(s.get(metric), int | float)
    ]
    drawn = {id(s) for s in kept + failed}
    order = [s["stage"] for s in ledger.stages if id(s) in drawn]
    return kept, [float(s[metric]) for s in kept], failed, order


def waterfall_figure(ledger: Ledger) -> go.Figure:
    """One waterfall per ledger metric: the first kept stage absolute, then each kept stage's
    change; a failed stage is a red cross at its own value, its reason on hover."""
    n = len(ledger.metrics)
    fig = make_subplots(rows=n, cols=1, subplot_titles=ledger.metrics, vertical_spacing=0.08)
    for i, metric in enumerate(ledger.metrics, start=1):
        kept, values, failed, order = _ledger_series(ledger, metric)
        deltas = [values[0]] + [b - a for a, b in itertools.pairwise(values)]
        fig.add_trace(
            go.Waterfall(
                x=[s["stage"] for s in kept],
                y=deltas,
                measure=["absolute"] + ["relative"] * (len(deltas) - 1),
                name=metric,
            ),
            row=i,
            col=1,
        )
        if failed:
            fig.add_trace(
                go.Scatter(
                    x=[s["stage"] for s in failed],
                    y=[float(s[metric]) for s in failed],
                    mode="markers+text",
                    marker={"color": FAILED_RED, "symbol": "x", "size": 14},
                    text=["failed"] * len(failed),
                    textposition="top center",
                    textfont={"color": FAILED_RED},
                    hovertext=[f"{s['stage']} failed: {s.get('reason') or '?'}" for s in failed],
                    hoverinfo="text",
                    name="failed stage",
                ),
                row=i,
                col=1,
            )
        fig.update_xaxes(categoryorder="array", categoryarray=order, row=i, col=1)
    fig.update_layout(title="Compression ledger", showlegend=False, height=300 * n + 100)
    return fig


def accuracy_box_figure(per_case: pd.DataFrame) -> go.Figure:
    """SSIM per case, per method and sequence (the harness's per_case.csv)."""
    fig = go.Figure()
    for method, g in per_case.groupby("method", sort=False):
        fig.add_box(x=g["sequence"], y=g["ssim"], name=str(method), boxpoints="all")
    fig.update_layout(
        title="SSIM per case (harness per_case.csv)",
        boxmode="group",
        yaxis={"title": "SSIM"},
        height=420,
    )
    return fig


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def latency_png(dev: pd.DataFrame, path: Path) -> Path:
    d = dev.assign(label=_label(dev))
    batches = sorted(d["batch"].unique())
    labels = list(dict.fromkeys(d["label"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4.5))
    width = 0.8 / len(batches)
    for j, b in enumerate(batches):
        g = d[d.batch == b].set_index("label")
        xs = [i + j * width for i, lab in enumerate(labels) if lab in g.index]
        ys = [g.loc[lab, "ms/slice p50"] for lab in labels if lab in g.index]
        ax.bar(xs, ys, width, label=f"batch {b}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))])
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms per slice (median)")
    ax.set_title("Latency per slice")
    ax.legend()
    return _save(fig, path)


def memory_size_png(dev: pd.DataFrame, path: Path) -> Path:
    d = dev.assign(label=_label(dev) + " b" + dev["batch"].astype(str))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    a1.bar(range(len(d)), d["peak RSS MiB"])
    a1.set_xticks(range(len(d)))
    a1.set_xticklabels(d["label"], rotation=30, ha="right", fontsize=7)
    a1.set_ylabel("peak RSS (MiB)")
    sizes = d.dropna(subset=["size MiB"]).drop_duplicates("model")
    a2.bar(range(len(sizes)), sizes["size MiB"])
    a2.set_xticks(range(len(sizes)))
    a2.set_xticklabels(sizes["model"], rotation=20, ha="right", fontsize=8)
    a2.set_ylabel("package size (MiB)")
    return _save(fig, path)


def waterfall_png(ledger: Ledger, path: Path) -> Path:
    n = len(ledger.metrics)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.8 * n), squeeze=False)
    for ax, metric in zip(axes[:, 0], ledger.metrics, strict=True):
        kept, values, failed, order = _ledger_series(ledger, metric)
        pos = {name: j for j, name in enumerate(order)}
        bottoms = [0.0] + [min(a, b) for a, b in itertools.pairwise(values)]
        heights = [values[0]] + [abs(b - a) for a, b in itertools.pairwise(values)]
        colours = ["tab:blue"] + [
            "tab:green" if b >= a else "tab:orange" for a, b in itertools.pairwise(values)
        ]
        ax.bar([pos[s["stage"]] for s in kept], heights, bottom=bottoms, color=colours)
        for s in failed:
            x, y = pos[s["stage"]], float(s[metric])
            ax.plot([x], [y], marker="x", color=FAILED_RED, markersize=12, mew=3)
            ax.annotate("failed", (x, y), color=FAILED_RED, ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, fontsize=8)
        for tick, name in zip(ax.get_xticklabels(), order, strict=True):
            if any(s["stage"] == name for s in failed):
                tick.set_color(FAILED_RED)
        ax.set_title(metric, fontsize=9)
    return _save(fig, path)

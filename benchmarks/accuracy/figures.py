"""The report's figures: box plots per method, the region x method error heat map, worst cases.

Matplotlib with the Agg backend (no display needed); every figure is a PNG written atomically.
The figures show what the proposal's figures show, computed our way: SSIM, the Frechet
filter-bank distance (labelled as such) and vessel continuity (clDice) per method; boundary
error in mm per anatomical region and method; and for the worst cases of each method a panel
CT | prediction | truth | |difference| with the true lesions outlined.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from edge_runtime.atomic import atomic_write_bytes

BOX_METRICS = (
    ("ssim", "SSIM (liver slices)", True),
    ("ffbd", "Frechet filter-bank distance", False),
    ("vessel_cldice", "Vessel continuity (clDice)", True),
)


def _save(fig: plt.Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def box_plots(per_case: pd.DataFrame, methods: list[str], path: Path) -> Path:
    """One panel per metric, one box per method (all cases and sequences pooled)."""
    fig, axes = plt.subplots(1, len(BOX_METRICS), figsize=(4.2 * len(BOX_METRICS), 3.8))
    for ax, (col, title, higher) in zip(axes, BOX_METRICS, strict=True):
        data = [per_case.loc[per_case.method == m, col].dropna().to_numpy() for m in methods]
        ax.boxplot(data, tick_labels=methods, showmeans=True)
        ax.set_title(
            title + (" (higher is better)" if higher else " (lower is better)"), fontsize=9
        )
        if col == "ssim" and per_case["ssim_ceiling"].notna().any():
            ceiling = float(per_case["ssim_ceiling"].mean())
            ax.axhline(ceiling, color="tab:green", ls="--", lw=1, label=f"ceiling {ceiling:.3f}")
            ax.legend(fontsize=8, loc="lower left")
        ax.tick_params(axis="x", rotation=20, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def region_heatmap(regions: pd.DataFrame, methods: list[str], path: Path) -> Path:
    """Median over cases and sequences of the boundary error (mm) per region and method."""
    table = regions.pivot_table(
        index="region", columns="method", values="hd95_mm", aggfunc="median"
    )
    table = table.reindex(columns=methods)
    order = ["liver", "vessels", "lesions", "spleen", "kidneys", "body_wall"]
    table = table.reindex([r for r in order if r in table.index])
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(methods), 0.6 + 0.55 * len(table)))
    im = ax.imshow(table.to_numpy(dtype=float), cmap="magma_r", aspect="auto")
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=20, fontsize=8)
    ax.set_yticks(range(len(table.index)), table.index, fontsize=8)
    for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="tab:cyan")
    fig.colorbar(im, ax=ax, label="boundary error HD95 (mm)")
    ax.set_title("Generation error per region (mm)", fontsize=10)
    return _save(fig, path)


def _window(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def worst_case_panel(
    ct: np.ndarray | None,
    pred: np.ndarray,
    truth: np.ndarray,
    lesions: np.ndarray,
    liver: np.ndarray,
    title: str,
    path: Path,
) -> Path:
    """CT | prediction | truth | |difference| on the liver slice with the most lesion voxels."""
    lesion_area = (lesions > 0).sum(axis=(1, 2))
    liver_area = liver.sum(axis=(1, 2))
    k = int(np.argmax(lesion_area)) if lesion_area.any() else int(np.argmax(liver_area))
    lo, hi = np.percentile(truth[k], [1, 99.5])
    panels = []
    if ct is not None:
        panels.append(("CT", _window(ct[k].astype(float), -160, 240), "gray"))
    panels += [
        ("prediction", _window(pred[k], lo, hi), "gray"),
        ("truth", _window(truth[k], lo, hi), "gray"),
        (
            "|prediction - truth|",
            np.abs(pred[k] - truth[k]) / (hi - lo if hi > lo else 1),
            "inferno",
        ),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.5))
    for ax, (name, img, cmap) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1 if name != "|prediction - truth|" else 0.5)
        if lesions[k].any():
            ax.contour(lesions[k] > 0, levels=[0.5], colors="tab:cyan", linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{title} (slice {k}, lesions outlined)", fontsize=10)
    return _save(fig, path)

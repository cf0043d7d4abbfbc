"""Per-case QA figure and markdown: checkerboard and edge overlays before/after, Jacobian map.

A reviewer should see in one picture whether the MR lies on the CT; numbers alone hide a liver
that slid by a rib's width.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from skimage import feature

from edge_runtime.atomic import atomic_write_bytes, atomic_write_text
from models.preprocess.qa import QARecord


def _unit(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, [1, 99])
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1)


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Alternate tiles of two 2D images (each scaled to [0, 1])."""
    yy, xx = np.indices(a.shape)
    ty, tx = max(a.shape[0] // tiles, 1), max(a.shape[1] // tiles, 1)
    mask = ((yy // ty) + (xx // tx)) % 2 == 0
    return np.where(mask, _unit(a), _unit(b))


def qa_figure(
    path: Path,
    ct: np.ndarray,
    mr_before: np.ndarray,
    mr_after: np.ndarray,
    jac: np.ndarray,
    y: int,
    aspect: float = 1.0,
) -> None:
    """Write the six-panel QA PNG for coronal slice `y` of (z, y, x) volumes.

    Coronal, superior up: breathing moves the liver along z, which an axial slice cannot show.
    `aspect` is the z spacing over the x spacing.
    """
    fig, ax = plt.subplots(2, 3, figsize=(12, 8))

    def cor(v: np.ndarray) -> np.ndarray:
        return v[::-1, y, :]

    c = cor(ct)
    mr_before, mr_after, jac = cor(mr_before), cor(mr_after), cor(jac)
    z = slice(None)
    for col, (mr, name) in enumerate(((mr_before[z], "before"), (mr_after[z], "after"))):
        ax[0, col].imshow(checkerboard(c, mr), cmap="gray", aspect=aspect)
        ax[0, col].set_title(f"checkerboard CT/MR {name}")
        edges = feature.canny(_unit(mr), sigma=2.0)
        ax[1, col].imshow(_unit(c), cmap="gray", aspect=aspect)
        ax[1, col].contour(edges, levels=[0.5], colors="r", linewidths=0.5)
        ax[1, col].set_title(f"MR edges on CT, {name}")
    im = ax[0, 2].imshow(jac, cmap="RdBu_r", vmin=0.5, vmax=1.5, aspect=aspect)
    ax[0, 2].set_title("Jacobian determinant")
    fig.colorbar(im, ax=ax[0, 2], fraction=0.046)
    ax[1, 2].imshow(_unit(mr_after), cmap="gray", aspect=aspect)
    ax[1, 2].set_title("registered MR")
    for a in ax.ravel():
        a.axis("off")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()


def _fmt(d: dict[str, float] | None, keys: tuple[str, ...]) -> str:
    if not d:
        return "n/a"
    return ", ".join(f"{k} {d[k]:.3f}" for k in keys if k in d)


def qa_markdown(path: Path, case_id: str, method: str, seconds: float, rec: QARecord) -> None:
    """Write the case's QA report in markdown."""
    lines = [
        f"# Registration QA: {case_id}",
        "",
        f"- method: {method} ({seconds:.1f} s)",
        f"- verdict: {'PASSED' if rec.passed else 'EXCLUDED: ' + '; '.join(rec.reasons)}",
        f"- mutual information (lower is better): {rec.metric_before:.4f} -> {rec.metric_after:.4f}",
        f"- Jacobian: {_fmt(rec.jacobian, ('min', 'max', 'folding_percent', 'sdlogj'))}",
        f"- liver Dice: {rec.dice_before if rec.dice_before is None else round(rec.dice_before, 4)}"
        f" -> {rec.dice_after if rec.dice_after is None else round(rec.dice_after, 4)}",
        f"- TRE on landmarks (mm), before: {_fmt(rec.tre_before, ('mean', 'p95', 'max', 'n'))}",
        f"- TRE on landmarks (mm), after: {_fmt(rec.tre, ('mean', 'p95', 'max', 'n'))}",
        f"- error vs true field in the liver (mm): {_fmt(rec.field_error, ('mean', 'p95', 'max'))}",
        "",
        "![QA](qa.png)",
        "",
    ]
    atomic_write_text(path, "\n".join(lines))

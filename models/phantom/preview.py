"""preview.png: every modality and the label overlays at the slice through the largest lesion."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edge_runtime.atomic import atomic_write_bytes
from models.phantom.case import PhantomCase
from models.phantom.render import LABELS


def preview_slice(case: PhantomCase) -> int:
    """The slice through the largest lesion's centre, else the slice with the most liver."""
    real = [r for r in case.lesion_table if not r["pseudo"]] or case.lesion_table
    if real:
        biggest = max(real, key=lambda r: r["diameter_mm"])
        counts = np.count_nonzero(case.lesions == biggest["id"], axis=(1, 2))
        if counts.any():
            return int(np.argmax(counts))
    return int(np.argmax(np.count_nonzero(case.labels == LABELS["liver"], axis=(1, 2))))


def _png_bytes(case: PhantomCase, k: int, dpi: int = 70) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    panels = [
        ("CT plain", case.images["ct_plain"][k], (-160, 240)),
        ("CT arterial", case.images["ct_arterial"][k], (-160, 240)),
        ("CT portal", case.images["ct_portal"][k], (-160, 240)),
        ("MR T1 (MR phase)", case.images["mr_t1"][k], None),
        ("MR T2 (MR phase)", case.images["mr_t2"][k], None),
        ("MR T1c (MR phase)", case.images["mr_t1c"][k], None),
        ("MR T2 at CT phase", case.images["mr_t2_ctphase"][k], None),
    ]
    fig, axes = plt.subplots(2, 5, figsize=(15, 7.0), dpi=dpi, layout="constrained")
    for ax, (title, img, win) in zip(axes.flat, panels, strict=False):
        if win is None:
            win = (0.0, float(np.percentile(img, 99.5)) or 1.0)
        ax.imshow(img, cmap="gray", vmin=win[0], vmax=win[1], interpolation="nearest")
        ax.set_title(title, fontsize=9)
    base = case.images["ct_portal"][k]
    cmap = ListedColormap(plt.get_cmap("tab20")(np.linspace(0, 1, 20)))
    overlays = [
        ("organ labels", np.ma.masked_equal(case.labels[k], 0), cmap, 0, 19),
        ("vessels (portal / hepatic)", np.ma.masked_equal(case.vessels[k], 0), "cool", 1, 2),
        (
            "lesions (instances)",
            np.ma.masked_equal(case.lesions[k], 0),
            "autumn",
            1,
            max(1, int(case.lesions.max())),
        ),
    ]
    for ax, (title, ov, cm, lo, hi) in zip(axes.flat[7:], overlays, strict=True):
        ax.imshow(base, cmap="gray", vmin=-160, vmax=240, interpolation="nearest")
        ax.imshow(ov, cmap=cm, vmin=lo, vmax=hi, alpha=0.55, interpolation="nearest")
        ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    z = case.grid.origin[2] + k * case.grid.spacing[2]
    types = ", ".join(f"{r['id']}:{r['type']} {r['diameter_mm']:.0f}mm" for r in case.lesion_table)
    fig.suptitle(
        f"phantom seed {case.seed}  slice {k} (z = {z:.1f} mm)  lesions: {types or 'none'}",
        fontsize=10,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def write_preview(case: PhantomCase, path: Path, dpi: int = 70) -> Path:
    """Write the montage (deterministic bytes: no timestamp in the PNG metadata)."""
    return atomic_write_bytes(Path(path), _png_bytes(case, preview_slice(case), dpi))

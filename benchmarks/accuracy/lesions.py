"""Lesions: is each true lesion still there, and did the model invent one where there is none?

The detector is fixed and knows where to look (the truth's lesion mask), as a reader comparing
a synthetic image with the real one would. For a region R it compares the mean signal in R with
a ring of liver around it (a gap of `ring_gap_mm`, then `ring_width_mm`; other lesions and
vessels left out):

- contrast c = mean(R) - mean(ring); noise s = sd(ring); CNR = c / s;
- detection statistic z = c / (s / sqrt(n_R)): the matched-filter score of a known-location
  lesion in white noise, so a one-voxel satellite needs a stronger contrast than a large mass.

A lesion counts for a sequence when the truth shows it (|z_truth| >= `detect_z`); it is
detected on the prediction when the prediction's contrast has the truth's sign and
|z_pred| >= `detect_z`. Sensitivity is reported per size bin (< 3 mm, 3-10 mm, > 10 mm).

Hallucination is judged where the truth shows normal liver: every arterio-portal shunt (a
pseudo-lesion that looks like liver on MRI) and `n_controls` spheres of normal liver placed by a
seeded rule. The prediction hallucinates there when it shows lesion-like contrast the truth does
not: |CNR_pred| >= `halluc_cnr` and |CNR_pred - CNR_truth| >= `halluc_cnr`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class LesionConfig:
    """The fixed detector and the size bins of the report."""

    bins_mm: tuple[float, float] = (3.0, 10.0)  # < 3 mm, 3-10 mm, > 10 mm diameter
    ring_gap_mm: float = 1.0  # skip the partial-volume rim around the region
    ring_width_mm: float = 6.0  # background ring: a few voxels on every grid we render
    min_ring_voxels: int = 8  # fewer and the noise estimate is meaningless
    detect_z: float = 3.0  # matched-filter detection threshold (one-sided p ~ 0.001)
    halluc_cnr: float = 1.0  # lesion-like contrast: one noise sd above what the truth shows
    n_controls: int = 6  # normal-liver control regions per case
    control_radius_mm: float = 6.0  # about a shunt's size on the phantom
    control_clearance_mm: float = 4.0  # from liver edge, vessels and lesions
    seed: int = 0  # placement of the controls


def size_bin(diameter_mm: float, cfg: LesionConfig = LesionConfig()) -> str:
    """The report's size bin for a lesion diameter."""
    lo, hi = cfg.bins_mm
    if diameter_mm < lo:
        return f"<{lo:g}mm"
    if diameter_mm <= hi:
        return f"{lo:g}-{hi:g}mm"
    return f">{hi:g}mm"


def bin_names(cfg: LesionConfig = LesionConfig()) -> list[str]:
    lo, hi = cfg.bins_mm
    return [f"<{lo:g}mm", f"{lo:g}-{hi:g}mm", f">{hi:g}mm"]


def _bbox(mask: np.ndarray, margin: tuple[int, ...]) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - np.asarray(margin), 0)
    hi = np.minimum(idx.max(axis=0) + np.asarray(margin) + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def background_ring(
    region: np.ndarray,
    allowed: np.ndarray,
    spacing: tuple[float, ...],
    cfg: LesionConfig = LesionConfig(),
) -> np.ndarray:
    """Voxels at (gap, gap + width] mm from `region`, restricted to `allowed`."""
    reach = cfg.ring_gap_mm + cfg.ring_width_mm
    margin = tuple(int(np.ceil(reach / s)) + 1 for s in spacing)
    box = _bbox(region, margin)
    dist = ndi.distance_transform_edt(~region[box], sampling=spacing)
    ring = np.zeros(region.shape, dtype=bool)
    ring[box] = (dist > cfg.ring_gap_mm) & (dist <= reach) & allowed[box]
    return ring


@dataclass(frozen=True)
class Contrast:
    """Region-vs-ring contrast of one image."""

    contrast: float
    noise: float
    cnr: float
    z: float


def region_contrast(image: np.ndarray, region: np.ndarray, ring: np.ndarray) -> Contrast:
    """Contrast, noise, CNR and matched-filter z of `region` against `ring` in `image`."""
    inside = image[region].astype(np.float64)
    around = image[ring].astype(np.float64)
    c = float(inside.mean() - around.mean())
    s = float(around.std(ddof=1))
    s = s if s > 0 else float(np.finfo(np.float64).eps)
    return Contrast(contrast=c, noise=s, cnr=c / s, z=c / (s / np.sqrt(inside.size)))


@dataclass(frozen=True)
class Probe:
    """A region the detector looks at, with its background ring (fixed by the truth)."""

    kind: str  # "lesion", "shunt" or "control"
    ident: str
    lesion_type: str
    diameter_mm: float
    region: np.ndarray
    ring: np.ndarray


def lesion_probes(
    lesions: np.ndarray,
    records: list[dict[str, Any]],
    liver: np.ndarray,
    vessels: np.ndarray,
    spacing: tuple[float, ...],
    cfg: LesionConfig = LesionConfig(),
) -> tuple[list[Probe], list[dict[str, Any]]]:
    """One probe per lesion or shunt in `records`; also the ones that cannot be evaluated.

    A lesion smaller than a voxel may not appear in the instance map at all, or its ring may be
    too small; such lesions are returned as `skipped` with the reason, never silently dropped.
    """
    probes: list[Probe] = []
    skipped: list[dict[str, Any]] = []
    any_lesion = lesions > 0
    allowed = liver & ~any_lesion & ~(vessels > 0)
    for rec in records:
        region = lesions == int(rec["id"])
        kind = "shunt" if rec.get("pseudo") else "lesion"
        base = {"id": str(rec["id"]), "type": rec["type"], "diameter_mm": rec["diameter_mm"]}
        if not region.any():
            skipped.append({**base, "kind": kind, "reason": "no voxel on this grid"})
            continue
        ring = background_ring(region, allowed, spacing, cfg)
        if ring.sum() < cfg.min_ring_voxels:
            skipped.append({**base, "kind": kind, "reason": "background ring too small"})
            continue
        probes.append(
            Probe(kind, str(rec["id"]), rec["type"], float(rec["diameter_mm"]), region, ring)
        )
    return probes, skipped


def control_probes(
    liver: np.ndarray,
    lesions: np.ndarray,
    vessels: np.ndarray,
    spacing: tuple[float, ...],
    cfg: LesionConfig = LesionConfig(),
) -> list[Probe]:
    """Spheres of normal liver, placed by a seeded rule away from edges, vessels and lesions."""
    clear = liver & ~(lesions > 0) & ~(vessels > 0)
    dist = ndi.distance_transform_edt(clear, sampling=spacing)
    need = cfg.control_radius_mm + cfg.control_clearance_mm
    candidates = np.argwhere(dist >= need)
    if candidates.size == 0:
        return []
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(candidates))
    sp = np.asarray(spacing)
    chosen: list[np.ndarray] = []
    min_sep = 2 * (cfg.control_radius_mm + cfg.ring_gap_mm + cfg.ring_width_mm)
    for i in order:
        c = candidates[i]
        if all(np.linalg.norm((c - o) * sp) >= min_sep for o in chosen):
            chosen.append(c)
        if len(chosen) == cfg.n_controls:
            break
    grid = np.indices(liver.shape, sparse=True)
    allowed = clear
    probes = []
    for k, c in enumerate(chosen):
        d2 = sum(((g - ci) * s) ** 2 for g, ci, s in zip(grid, c, sp, strict=True))
        region = d2 <= cfg.control_radius_mm**2
        ring = background_ring(region, allowed & ~region, spacing, cfg)
        if ring.sum() >= cfg.min_ring_voxels:
            probes.append(
                Probe("control", f"control-{k}", "normal", 2 * cfg.control_radius_mm, region, ring)
            )
    return probes


def judge_probe(
    probe: Probe, pred: np.ndarray, truth: np.ndarray, cfg: LesionConfig = LesionConfig()
) -> dict[str, Any]:
    """Detection (lesions) or hallucination (shunts, controls) of one probe on one sequence."""
    t = region_contrast(truth, probe.region, probe.ring)
    p = region_contrast(pred, probe.region, probe.ring)
    row: dict[str, Any] = {
        "kind": probe.kind,
        "id": probe.ident,
        "type": probe.lesion_type,
        "diameter_mm": probe.diameter_mm,
        "size_bin": size_bin(probe.diameter_mm, cfg) if probe.kind == "lesion" else "",
        "voxels": int(probe.region.sum()),
        "cnr_truth": t.cnr,
        "cnr_pred": p.cnr,
        "z_truth": t.z,
        "z_pred": p.z,
    }
    if probe.kind == "lesion":
        visible = abs(t.z) >= cfg.detect_z
        detected = (
            visible and np.sign(p.contrast) == np.sign(t.contrast) and abs(p.z) >= cfg.detect_z
        )
        row.update(visible_in_truth=bool(visible), detected=bool(detected), hallucinated=None)
    else:
        halluc = abs(p.cnr) >= cfg.halluc_cnr and abs(p.cnr - t.cnr) >= cfg.halluc_cnr
        row.update(visible_in_truth=None, detected=None, hallucinated=bool(halluc))
    return row

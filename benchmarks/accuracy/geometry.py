"""Geometric error in mm per anatomical region, from boundary distances of segmentations.

The proposal's heat map shows "generation error (mm) per anatomical region": where the synthetic
image puts an organ's boundary somewhere else than the true image does (wrong motion phase, a
shrunken lesion, a blurred vessel). Each region is segmented on prediction and truth by one
fixed, sub-voxel method and the two boundaries are compared along the anatomy's own normals:

1. For each part of a region (an organ, each lesion, each kidney) the truth fixes two levels:
   fg = median of the true image inside the part (eroded), bg = median in a shell around it.
2. Each image is smoothed (Gaussian, `smooth_mm`) and mapped to a membership
   m = clip((I - g bg) / (g fg - g bg), 0, 1) inside a band of `band_mm` around the part, where
   g is the image's median in the part's core over the truth's (so a smooth multiplicative bias
   field or an intensity scale does not move the boundary); its boundary is the m = 0.5 level.
3. From points on the true label surface (the phantom's label map, smoothed, marching cubes)
   a profile of m is sampled along the surface normal (+-`search_mm`, step `step_mm`); the
   boundary position t is the 0.5 crossing nearest the label surface (truth) or nearest the
   truth's crossing (prediction). The point's boundary distance is |t_pred - t_truth| (mm);
   no crossing on the prediction counts as `search_mm`.
4. Points where the truth itself has no clear edge (its profile does not step by at least
   `min_step` across +-`edge_mm`, e.g. liver against muscle on a sequence where both look
   alike) cannot be judged and are left out; the fraction kept is reported as coverage.
5. The region's error is the 95th percentile (HD95-like, mm) of the point distances, with the
   mean alongside.

A prediction displaced by d mm gives an error close to d: boundary points whose normal lies
along the displacement move by the full d. Regions: liver, vessels, lesions (pseudo-lesions
left out), spleen, kidneys, body wall (the body's outline against air).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import marching_cubes

REGIONS = ("liver", "vessels", "lesions", "spleen", "kidneys", "body_wall")


@dataclass(frozen=True)
class GeometryConfig:
    """The fixed segmentation and distance method of the region error table."""

    smooth_mm: float = 2.0  # Gaussian sigma before thresholding: tames noise and voxel steps
    band_mm: float = 8.0  # the part's neighbourhood in which its membership is defined
    search_mm: float = 6.0  # how far along the normal a boundary is searched (< band_mm)
    step_mm: float = 0.25  # profile sampling step: sub-voxel on every grid we render
    edge_mm: float = 3.0  # the truth must step across +-edge_mm for a point to be judged
    min_step: float = 0.5  # ... by at least half of fg - bg
    min_edge_snr: float = 6.0  # ... and by this many noise sds of the smoothed truth
    label_smooth_vox: float = 0.7  # smoothing of the label mask before its surface is taken
    max_points: int = 4000  # per part; evenly thinned beyond (speed, not accuracy)
    percentile: float = 95.0


@dataclass
class PartReference:
    """One part of a region: its levels, band and true-surface profiles (cropped to `box`)."""

    box: tuple[slice, ...]
    fg: float
    bg: float
    band: np.ndarray
    core: np.ndarray  # where each image's own fg level is read
    shell: np.ndarray  # where each image's own bg level is read
    coords: np.ndarray  # (n, k, 3) voxel coordinates of the profiles inside the box
    t_truth: np.ndarray  # (n,) truth boundary position along each profile (mm), NaN: not judged
    cos: np.ndarray  # (n,) |profile direction . truth boundary normal|: along-line -> normal mm


@dataclass
class RegionReference:
    """What the truth fixes for one region of one case and sequence."""

    name: str
    parts: list[PartReference] = field(default_factory=list)

    @property
    def points(self) -> int:
        return int(sum(p.t_truth.size for p in self.parts))

    @property
    def judged(self) -> int:
        return int(sum(np.isfinite(p.t_truth).sum() for p in self.parts))


def _box(mask: np.ndarray, spacing: tuple[float, ...], reach_mm: float) -> tuple[slice, ...]:
    margin = np.array([int(np.ceil(reach_mm / s)) + 1 for s in spacing])
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _membership(
    image: np.ndarray,
    part: PartReference,
    spacing: tuple[float, ...],
    cfg: GeometryConfig,
    clip: bool = True,
) -> np.ndarray:
    crop = np.asarray(image[part.box], dtype=np.float64)
    smooth = ndi.gaussian_filter(crop, tuple(cfg.smooth_mm / s for s in spacing), mode="nearest")
    # the truth's levels times this image's gain in the true core (median ratio): a smooth
    # multiplicative bias field or an intensity scale does not move the boundary; the shell is
    # not re-read, a displaced organ would change its median
    gain = float(np.median(crop[part.core])) / part.fg if part.fg != 0 else 1.0
    fg, bg = part.fg * gain, part.bg * gain
    if fg == bg:
        return np.zeros_like(smooth)
    m = (smooth - bg) / (fg - bg)
    return np.where(part.band, np.clip(m, 0.0, 1.0), 0.0) if clip else m


def _smoothed_noise(
    image: np.ndarray, where: np.ndarray, spacing: tuple[float, ...], cfg: GeometryConfig
) -> float:
    """Noise sd of the smoothed image: MAD of neighbour differences, times the filter's gain."""
    diff = np.diff(np.asarray(image, dtype=np.float64), axis=-1)[where[..., 1:] & where[..., :-1]]
    if diff.size < 10:
        return 0.0
    sigma_raw = 1.4826 * float(np.median(np.abs(diff - np.median(diff)))) / np.sqrt(2.0)
    gain = 1.0
    for s in spacing:
        sv = cfg.smooth_mm / s
        x = np.arange(-int(4 * sv + 1), int(4 * sv + 1) + 1)
        w = np.exp(-0.5 * (x / sv) ** 2)
        w /= w.sum()
        gain *= float(np.sqrt((w**2).sum()))
    return sigma_raw * gain


def _profiles(m: np.ndarray, coords: np.ndarray) -> np.ndarray:
    n, k, _ = coords.shape
    flat = coords.reshape(-1, 3).T
    return ndi.map_coordinates(m, flat, order=1, mode="nearest").reshape(n, k)


def _crossing(profiles: np.ndarray, t: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per profile, the 0.5 crossing (linear interpolation) nearest `target`; NaN if none."""
    s = profiles - 0.5
    a, b = s[:, :-1], s[:, 1:]
    hit = (a * b <= 0) & (a != b)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(hit, a / (a - b), np.nan)
    pos = t[:-1] + frac * (t[1] - t[0])
    dist = np.abs(pos - target[:, None])
    dist = np.where(np.isfinite(dist), dist, np.inf)
    best = np.argmin(dist, axis=1)
    out = pos[np.arange(len(pos)), best]
    return np.where(np.isfinite(dist[np.arange(len(pos)), best]), out, np.nan)


def region_reference(
    name: str,
    parts: list[np.ndarray],
    truth: np.ndarray,
    spacing: tuple[float, ...],
    cfg: GeometryConfig = GeometryConfig(),
) -> RegionReference | None:
    """Levels, bands, true-surface profiles and the truth's boundary positions of a region."""
    ref = RegionReference(name)
    sp = np.asarray(spacing, dtype=np.float64)
    t = np.arange(-cfg.search_mm, cfg.search_mm + cfg.step_mm / 2, cfg.step_mm)
    for full_part in parts:
        box = _box(full_part, spacing, cfg.band_mm + 3 * cfg.smooth_mm)
        part = full_part[box]
        out = ndi.distance_transform_edt(~part, sampling=spacing)
        inner = ndi.binary_erosion(part)
        core = inner if inner.any() else part
        shell = (out > min(spacing)) & (out <= cfg.band_mm / 2)
        if not shell.any():
            continue
        crop = truth[box]
        fg, bg = float(np.median(crop[core])), float(np.median(crop[shell]))
        if fg == bg:
            continue
        # the true label surface, its normals (in mm) and profiles along them
        soft = ndi.gaussian_filter(part.astype(np.float64), cfg.label_smooth_vox)
        if soft.max() <= 0.5:
            continue
        verts, _, _, _ = marching_cubes(np.pad(soft, 1), 0.5, spacing=tuple(spacing))
        verts = verts - sp
        # caps where the part is cut by the volume's edge are not anatomy
        inside = np.all((verts >= 0.5 * sp) & (verts <= (np.asarray(part.shape) - 1.5) * sp), 1)
        inside |= np.asarray(
            [b.start > 0 and b.stop < n for b, n in zip(box, full_part.shape, strict=True)]
        ).all()
        verts = verts[inside]
        if len(verts) == 0:
            continue
        if len(verts) > cfg.max_points:
            verts = verts[:: int(np.ceil(len(verts) / cfg.max_points))]
        grads = np.stack(np.gradient(soft, *spacing))
        vox = (verts / sp).T
        g = np.stack([ndi.map_coordinates(gc, vox, order=1, mode="nearest") for gc in grads], 1)
        norm = np.linalg.norm(g, axis=1)
        keep = norm > 0
        verts, normals = verts[keep], g[keep] / norm[keep, None]
        coords = (verts[:, None, :] + t[None, :, None] * normals[:, None, :]) / sp
        pr = PartReference(
            box, fg, bg, out <= cfg.band_mm, core, shell, coords, np.empty(0), np.empty(0)
        )
        m = _membership(truth, pr, spacing, cfg)
        prof = _profiles(m, coords)
        t_truth = _crossing(prof, t, np.zeros(len(prof)))
        i_lo = int(np.argmin(np.abs(t + cfg.edge_mm)))
        i_hi = int(np.argmin(np.abs(t - cfg.edge_mm)))
        raw = _profiles(_membership(truth, pr, spacing, cfg, clip=False), coords[:, [i_lo, i_hi]])
        noise = _smoothed_noise(crop, core | shell, spacing, cfg)
        step = np.abs(raw[:, 1] - raw[:, 0]) * abs(fg - bg)
        # judged: the part's own contrast and the local edge both stand out of the noise
        clear = (
            (np.abs(prof[:, i_hi] - prof[:, i_lo]) >= cfg.min_step)
            & (step >= cfg.min_edge_snr * noise)
            & (abs(fg - bg) >= cfg.min_edge_snr * noise)
        )
        pr.t_truth = np.where(clear, t_truth, np.nan)
        # the truth boundary's own normal at its crossing: distances along the profile are
        # projected on it, so a coarse label normal does not inflate them
        u = _membership(truth, pr, spacing, cfg, clip=False)
        at = (verts + np.nan_to_num(t_truth)[:, None] * normals) / sp
        gu = np.stack(
            [
                ndi.map_coordinates(gc, at.T, order=1, mode="nearest")
                for gc in np.gradient(u, *spacing)
            ],
            1,
        )
        gn = np.linalg.norm(gu, axis=1)
        pr.cos = np.where(gn > 0, np.abs((gu * normals).sum(1)) / np.where(gn > 0, gn, 1), 1.0)
        ref.parts.append(pr)
    return ref if ref.parts else None


def boundary_error(
    ref: RegionReference,
    pred: np.ndarray,
    spacing: tuple[float, ...],
    cfg: GeometryConfig = GeometryConfig(),
) -> dict[str, float]:
    """Boundary error (mm) of the region on `pred`: 95th percentile and mean, and coverage."""
    t = np.arange(-cfg.search_mm, cfg.search_mm + cfg.step_mm / 2, cfg.step_mm)
    dists = []
    for part in ref.parts:
        judged = np.isfinite(part.t_truth)
        if not judged.any():
            continue
        m = _membership(pred, part, spacing, cfg)
        prof = _profiles(m, part.coords[judged])
        t_pred = _crossing(prof, t, part.t_truth[judged])
        d = np.abs(t_pred - part.t_truth[judged]) * part.cos[judged]
        dists.append(np.where(np.isfinite(d), d, cfg.search_mm))
    coverage = ref.judged / ref.points if ref.points else 0.0
    if not dists:
        return {"hd95_mm": float("nan"), "assd_mm": float("nan"), "coverage": coverage}
    d = np.concatenate(dists)
    return {
        "hd95_mm": float(np.percentile(d, cfg.percentile)),
        "assd_mm": float(d.mean()),
        "coverage": coverage,
    }


def region_parts(
    labels: np.ndarray,
    label_table: dict[str, int],
    vessels: np.ndarray,
    lesions: np.ndarray,
    pseudo_ids: set[int],
) -> dict[str, list[np.ndarray]]:
    """Masks of each region's parts on the truth (CT phase); regions absent are left out."""

    def ids(pred: Any) -> list[int]:
        return [int(v) for k, v in label_table.items() if pred(k.lower())]

    parts: dict[str, list[np.ndarray]] = {}
    liver = np.isin(labels, ids(lambda k: k == "liver" or k.startswith("liver")))
    if liver.any():
        parts["liver"] = [liver]
    if (vessels > 0).any():
        parts["vessels"] = [vessels > 0]
    lesion_ids = [int(i) for i in np.unique(lesions) if i and int(i) not in pseudo_ids]
    if lesion_ids:
        parts["lesions"] = [lesions == i for i in lesion_ids]
    spleen = np.isin(labels, ids(lambda k: "spleen" in k))
    if spleen.any():
        parts["spleen"] = [spleen]
    kidneys = np.isin(labels, ids(lambda k: "kidney" in k))
    if kidneys.any():
        lab, n = ndi.label(kidneys)
        parts["kidneys"] = [lab == i for i in range(1, n + 1)]
    body = ndi.binary_fill_holes(labels > 0)
    if body.any():
        parts["body_wall"] = [np.asarray(body, dtype=bool)]
    return parts

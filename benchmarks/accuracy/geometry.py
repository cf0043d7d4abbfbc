"""Geometric error in mm per anatomical region, from boundary distances of segmentations.

The proposal's heat map shows "generation error (mm) per anatomical region": where the synthetic
image puts an organ's boundary somewhere else than the true image does (wrong motion phase, a
shrunken lesion, a blurred vessel). We segment each region on prediction and truth by one
fixed, sub-voxel method and measure the distance between the two boundaries:

1. For each part of a region (an organ, each lesion, each kidney) the truth fixes two levels:
   fg = median of the true image inside the part (eroded), bg = median in a shell around it.
2. Each image is smoothed (Gaussian, `smooth_mm`) and mapped to a membership
   m = clip((I - bg) / (fg - bg), 0, 1) inside a band of `band_mm` around the true part (zero
   outside); parts of a region are merged by maximum.
3. The boundary is the m = 0.5 iso-surface (marching cubes, in mm). Surface points further than
   `eval_mm` from the true region's boundary are left out: they are other tissue of similar
   signal inside the band, or the band's own edge, the same on both images.
4. Boundary distances are nearest-point distances between the two surfaces in both directions
   (the target surface densely sampled, so distances are sub-voxel); the reported error is their
   95th percentile (HD95, mm), with the mean (ASSD) alongside.

A prediction displaced by d mm gives an HD95 close to d: the boundary points whose normal is
along the displacement move by the full d. Regions: liver, vessels, lesions (pseudo-lesions
left out), spleen, kidneys, body wall (the body's outline against air).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

REGIONS = ("liver", "vessels", "lesions", "spleen", "kidneys", "body_wall")


@dataclass(frozen=True)
class GeometryConfig:
    """The fixed segmentation and distance method of the region error table."""

    smooth_mm: float = 1.0  # Gaussian sigma before the iso-surface: tames noise, keeps edges
    band_mm: float = 8.0  # how far from the true region a boundary is searched
    eval_mm: float = 5.0  # surface points further from the true boundary are not the region's
    subdivide: int = 4  # target triangles sampled on a 4-step barycentric grid (sub-voxel)
    percentile: float = 95.0


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


@dataclass
class RegionReference:
    """What the truth fixes for one region of one case and sequence."""

    name: str
    levels: list[tuple[float, float]]  # (fg, bg) per part
    bands: list[np.ndarray]  # where each part's membership may be non-zero
    near_boundary: np.ndarray  # voxels within eval_mm of the true region's boundary
    truth_points: np.ndarray | None = None  # truth surface points, filled by `prepare`
    truth_dense: cKDTree | None = None


def _sigma_vox(spacing: tuple[float, ...], mm: float) -> tuple[float, ...]:
    return tuple(mm / s for s in spacing)


def region_reference(
    name: str,
    parts: list[np.ndarray],
    truth: np.ndarray,
    spacing: tuple[float, ...],
    cfg: GeometryConfig = GeometryConfig(),
) -> RegionReference | None:
    """Levels and bands for a region, fixed by the truth; None if it has no contrast at all."""
    levels, bands = [], []
    union = np.zeros(truth.shape, dtype=bool)
    for part in parts:
        out = ndi.distance_transform_edt(~part, sampling=spacing)
        inner = ndi.binary_erosion(part)
        core = inner if inner.any() else part
        shell = (out > min(spacing)) & (out <= cfg.band_mm / 2)
        if not shell.any():
            continue
        fg = float(np.median(truth[core]))
        bg = float(np.median(truth[shell]))
        if fg == bg:
            continue
        levels.append((fg, bg))
        bands.append(out <= cfg.band_mm)
        union |= part
    if not levels:
        return None
    d_in = ndi.distance_transform_edt(union, sampling=spacing)
    d_out = ndi.distance_transform_edt(~union, sampling=spacing)
    near = np.where(union, d_in, d_out) <= cfg.eval_mm
    return RegionReference(name=name, levels=levels, bands=bands, near_boundary=near)


def _membership(
    image: np.ndarray, ref: RegionReference, spacing: tuple[float, ...], cfg: GeometryConfig
) -> np.ndarray:
    smooth = ndi.gaussian_filter(
        np.asarray(image, dtype=np.float64), _sigma_vox(spacing, cfg.smooth_mm), mode="nearest"
    )
    m = np.zeros(smooth.shape)
    for (fg, bg), band in zip(ref.levels, ref.bands, strict=True):
        part = np.clip((smooth - bg) / (fg - bg), 0.0, 1.0)
        m = np.maximum(m, np.where(band, part, 0.0))
    return m


def _surface(
    m: np.ndarray, spacing: tuple[float, ...], cfg: GeometryConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """Vertices (mm) of the m = 0.5 surface and densely sampled points on its triangles."""
    if m.max() <= 0.5 or m.min() >= 0.5:
        return None
    padded = np.pad(m, 1)  # close surfaces that touch the volume's edge
    verts, faces, _, _ = marching_cubes(padded, 0.5, spacing=spacing)
    verts -= np.asarray(spacing)
    k = cfg.subdivide
    tri = verts[faces]  # (n, 3, 3)
    weights = np.array([(i / k, j / k) for i in range(k + 1) for j in range(k + 1 - i)])
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    dense = (
        a[:, None, :]
        + weights[None, :, 0, None] * (b - a)[:, None, :]
        + weights[None, :, 1, None] * (c - a)[:, None, :]
    ).reshape(-1, 3)
    return verts, dense


def _near(points: np.ndarray, near: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    idx = np.rint(points / np.asarray(spacing)).astype(int)
    idx = np.clip(idx, 0, np.asarray(near.shape) - 1)
    return near[idx[:, 0], idx[:, 1], idx[:, 2]]


def prepare(
    ref: RegionReference,
    truth: np.ndarray,
    spacing: tuple[float, ...],
    cfg: GeometryConfig = GeometryConfig(),
) -> RegionReference:
    """Segment the truth once; every prediction of this case is compared with it."""
    surf = _surface(_membership(truth, ref, spacing, cfg), spacing, cfg)
    if surf is not None:
        verts, dense = surf
        ref.truth_points = verts[_near(verts, ref.near_boundary, spacing)]
        ref.truth_dense = cKDTree(dense)
    return ref


def boundary_error(
    ref: RegionReference,
    pred: np.ndarray,
    spacing: tuple[float, ...],
    cfg: GeometryConfig = GeometryConfig(),
) -> dict[str, float]:
    """HD95 and mean symmetric boundary distance (mm) of the region on `pred` vs the truth."""
    nan = {"hd95_mm": float("nan"), "assd_mm": float("nan")}
    if ref.truth_dense is None or ref.truth_points is None or len(ref.truth_points) == 0:
        return nan
    surf = _surface(_membership(pred, ref, spacing, cfg), spacing, cfg)
    if surf is None:  # the region vanished on the prediction: as far off as we can measure
        return {"hd95_mm": cfg.band_mm, "assd_mm": cfg.band_mm}
    verts, dense = surf
    pts = verts[_near(verts, ref.near_boundary, spacing)]
    if len(pts) == 0:
        return {"hd95_mm": cfg.band_mm, "assd_mm": cfg.band_mm}
    d_pt = ref.truth_dense.query(pts)[0]
    d_tp = cKDTree(dense).query(ref.truth_points)[0]
    d = np.concatenate([d_pt, d_tp])
    return {"hd95_mm": float(np.percentile(d, cfg.percentile)), "assd_mm": float(d.mean())}

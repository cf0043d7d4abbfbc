"""What the app computes on volumes: display slices, overlays, metrics, surfaces.

No Streamlit here, so the numbers the pages show are plain functions the tests call too. The
metrics are the project's own (edge_runtime.metrics, benchmarks.accuracy), computed the way
docs/accuracy.md defines them, so the app and the accuracy harness agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from apps.scan import Scan
from benchmarks.accuracy.lesions import lesion_probes, region_contrast
from benchmarks.accuracy.vessels import cldice, segment_vessels, vessel_reference
from edge_runtime import metrics


@dataclass(frozen=True)
class Window:
    """A CT display window: width and level in HU."""

    width: float
    level: float


# Common radiology presets: soft-tissue abdomen, and a narrow liver window that separates
# enhancing parenchyma from hypodense lesions.
CT_WINDOWS: dict[str, Window] = {"abdomen": Window(400, 50), "liver": Window(150, 70)}
OVERLAY_COLOURS = {"lesions": (255, 60, 60), "vessels": (40, 200, 255), "liver": (255, 210, 0)}
BODY_HU = -500.0  # above this is the patient, below is air (as the runtime's CT check)


def window_ct(slice_hu: np.ndarray, window: Window) -> np.ndarray:
    lo = window.level - window.width / 2
    return _to_uint8((slice_hu - lo) / window.width)


def mr_range(volume: np.ndarray) -> tuple[float, float]:
    """Display range of an MR volume: 0.5-99.5th percentiles (MR has no absolute units)."""
    lo, hi = np.percentile(volume, [0.5, 99.5])
    return float(lo), float(max(hi, lo + 1e-6))


def window_mr(slice_mr: np.ndarray, rng: tuple[float, float]) -> np.ndarray:
    return _to_uint8((slice_mr - rng[0]) / (rng[1] - rng[0]))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def with_outlines(gray: np.ndarray, masks: dict[str, np.ndarray]) -> np.ndarray:
    """RGB image of `gray` with each mask's outline drawn in its colour."""
    rgb = np.repeat(gray[..., None], 3, axis=2)
    for name, mask in masks.items():
        m = np.asarray(mask, dtype=bool)
        edge = m & ~ndi.binary_erosion(m)
        rgb[edge] = OVERLAY_COLOURS[name]
    return rgb


def upscale(img: np.ndarray, spacing_yx: tuple[float, float], min_size: int = 320) -> np.ndarray:
    """Nearest-neighbour enlargement to square pixels and at least `min_size` pixels tall."""
    sy, sx = spacing_yx
    fy = max(1, math.ceil(min_size / img.shape[0]))
    fx = max(1, round(fy * sx / sy))
    return np.repeat(np.repeat(img, fy, axis=0), fx, axis=1)


def best_slice(scan: Scan) -> int:
    """The slice to show first: most lesion, else most liver, else the middle one."""
    for mask in (scan.lesions, scan.liver):
        if mask is not None and np.any(mask):
            return int(np.argmax((np.asarray(mask) > 0).sum(axis=(1, 2))))
    return scan.ct.voxels.shape[0] // 2


def body_mask(scan: Scan) -> np.ndarray:
    return scan.ct.voxels > BODY_HU


@dataclass(frozen=True)
class Metric:
    name: str
    value: float | None
    note: str = ""

    def text(self) -> str:
        if self.value is None:
            return f"n/a ({self.note})"
        if math.isinf(self.value):
            return "inf (identical)"
        return f"{self.value:.4f}" if abs(self.value) < 100 else f"{self.value:.1f}"


def compare_volumes(pred: np.ndarray, ref: np.ndarray, scan: Scan) -> list[Metric]:
    """SSIM, PSNR, vessel clDice and lesion CNR of `pred` judged against `ref`.

    Data range: `ref`'s range inside the body; SSIM is the mean 2-D SSIM over slices holding
    liver (all body slices without labels), as the accuracy harness defines it.
    """
    body = body_mask(scan)
    if not body.any():
        body = np.ones_like(body)
    data_range = float(np.ptp(ref[body])) or 1.0
    liver = scan.liver
    slices = liver.any(axis=(1, 2)) if liver is not None else body.any(axis=(1, 2))
    out = [
        Metric("SSIM", float(np.mean(metrics.slice_ssim(pred, ref, data_range, slices)))),
        Metric("PSNR (dB)", metrics.psnr(pred, ref, data_range, body)),
    ]
    if not scan.has_labels:
        out.append(Metric("vessel clDice", None, "needs liver and vessel labels"))
        out.append(Metric("lesion |CNR|, image", None, "needs lesion labels"))
        return out
    out.append(_vessel_cldice(pred, ref, scan))
    out.extend(_lesion_cnr(pred, ref, scan))
    return out


def _vessel_cldice(pred: np.ndarray, ref: np.ndarray, scan: Scan) -> Metric:
    vref = vessel_reference(ref, scan.liver, scan.vessels)
    truth = segment_vessels(None, vref)
    seen = segment_vessels(pred, vref)
    if not truth.any():
        return Metric("vessel clDice", None, "no vessel found on the reference")
    return Metric("vessel clDice", float(cldice(seen, truth)))


def _lesion_cnr(pred: np.ndarray, ref: np.ndarray, scan: Scan) -> list[Metric]:
    """Mean |CNR| over the true lesions (not shunts), on `pred` and on `ref`."""
    records = [r for r in scan.lesion_records if not r.get("pseudo")]
    probes, _ = lesion_probes(scan.lesions, records, scan.liver, scan.vessels, scan.spacing_zyx)
    if not probes:
        return [Metric("lesion |CNR|, image", None, "no lesion large enough on this grid")]
    cnr_pred = [abs(region_contrast(pred, p.region, p.ring).cnr) for p in probes]
    cnr_ref = [abs(region_contrast(ref, p.region, p.ring).cnr) for p in probes]
    return [
        Metric("lesion |CNR|, image", float(np.mean(cnr_pred)), f"{len(probes)} lesions"),
        Metric("lesion |CNR|, reference", float(np.mean(cnr_ref)), f"{len(probes)} lesions"),
    ]


@dataclass(frozen=True)
class Surface:
    name: str
    vertices: np.ndarray  # (n, 3) in mm, x y z
    faces: np.ndarray  # (m, 3)
    colour: tuple[int, int, int]


def surfaces(scan: Scan, max_faces: int = 40_000) -> list[Surface]:
    """Marching-cubes surfaces of liver, vessels and lesions (mm), coarsened to stay light."""
    from skimage.measure import marching_cubes

    out = []
    parts = {"liver": scan.liver, "vessels": scan.vessels, "lesions": scan.lesions}
    for name, mask in parts.items():
        if mask is None or not np.any(mask):
            continue
        m = (np.asarray(mask) > 0).astype(np.float32)
        step = 1
        while True:
            verts, faces, _, _ = marching_cubes(np.pad(m, 1), 0.5, step_size=step)
            if len(faces) <= max_faces or step >= 4:
                break
            step += 1
        z, y, x = (verts - 1).T
        sz, sy, sx = scan.spacing_zyx
        xyz = np.stack([x * sx, y * sy, z * sz], axis=1)
        out.append(Surface(name, xyz, faces, OVERLAY_COLOURS[name]))
    return out

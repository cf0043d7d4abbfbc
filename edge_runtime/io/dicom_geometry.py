"""From per-slice positions to one safe 3-D grid, or an error that says why there is none.

Slices are ordered by ImagePositionPatient projected on the slice normal (row x column
cosines), never by file name or InstanceNumber, which exporters routinely scramble. Everything
a naive stacker gets silently wrong is checked here: differing rows/columns or pixel spacing,
mixed orientations, non-orthonormal cosines, duplicate positions, gantry tilt, missing slices
and irregular spacing. Small spacing jitter is the one defect we repair (by linear resampling
along the normal, with a warning); every other one is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.errors import InputError
from edge_runtime.io.config import ReadConfig


@dataclass
class SliceRecord:
    """One 2-D image of a series: where it is and how to turn its stored values into units."""

    path: Path
    frame: int | None  # frame index in a multi-frame file, None for a single-frame file
    position: np.ndarray  # ImagePositionPatient (3,)
    orientation: np.ndarray  # ImageOrientationPatient (6,): row cosines, column cosines
    pixel_spacing: tuple[float, float]  # (between rows, between columns) as DICOM orders it
    rows: int
    columns: int
    slope: float = 1.0
    intercept: float = 0.0
    thickness: float = 0.0  # SliceThickness; only used as the z spacing of a lone slice

    def where(self) -> str:
        return self.path.name if self.frame is None else f"{self.path.name} frame {self.frame + 1}"


@dataclass
class SeriesGeometry:
    """The checked grid: slices in order, and the spacing to resample to when jittered."""

    slices: list[SliceRecord]  # sorted along the normal
    origin: np.ndarray
    spacing: tuple[float, float, float]  # x, y, z
    direction: np.ndarray  # 3x3, columns row/col/normal
    positions_mm: np.ndarray  # projections on the normal, ascending
    resample: bool  # True when the slices must be interpolated onto a uniform grid
    warnings: list[str]


def _check_orientation(where: str, series_name: str, iop: np.ndarray, cfg: ReadConfig) -> None:
    row, col = iop[:3], iop[3:]
    tol = cfg.orthonormal_tolerance
    if (
        abs(np.linalg.norm(row) - 1) > tol
        or abs(np.linalg.norm(col) - 1) > tol
        or abs(float(row @ col)) > tol
    ):
        raise InputError(
            f"{series_name}: non-orthonormal direction: ImageOrientationPatient of {where} is "
            f"{np.round(iop, 4).tolist()} (row and column cosines must be unit and orthogonal)"
        )


def check_series(records: list[SliceRecord], name: str, cfg: ReadConfig) -> SeriesGeometry:
    """Validate and order the slices of one series; `name` (file or folder) opens every error."""
    if not records:
        raise InputError(f"{name}: no image slices")
    first = records[0]
    for rec in records[1:]:
        if (rec.rows, rec.columns) != (first.rows, first.columns):
            raise InputError(
                f"{name}: rows/columns differ between slices: {first.rows}x{first.columns} in "
                f"{first.where()}, {rec.rows}x{rec.columns} in {rec.where()}"
            )
    for rec in records:
        if min(rec.pixel_spacing) <= 0:
            raise InputError(
                f"{name}: zero or negative pixel spacing {list(rec.pixel_spacing)} in {rec.where()}"
            )
        _check_orientation(rec.where(), name, rec.orientation, cfg)
    for rec in records[1:]:
        if np.max(np.abs(rec.orientation - first.orientation)) > cfg.orientation_tolerance:
            raise InputError(
                f"{name}: mixed orientations: {first.where()} has ImageOrientationPatient "
                f"{np.round(first.orientation, 4).tolist()}, {rec.where()} has "
                f"{np.round(rec.orientation, 4).tolist()}"
            )
        if not np.allclose(rec.pixel_spacing, first.pixel_spacing, rtol=1e-4, atol=1e-5):
            raise InputError(
                f"{name}: pixel spacing differs between slices: {list(first.pixel_spacing)} in "
                f"{first.where()}, {list(rec.pixel_spacing)} in {rec.where()}"
            )
    if len(records) < cfg.min_slices:
        raise InputError(
            f"{name}: a single slice where a volume is needed ({len(records)} image(s), at least "
            f"{cfg.min_slices} slices required; give the folder that holds the whole series)"
        )

    row = first.orientation[:3] / np.linalg.norm(first.orientation[:3])
    col = first.orientation[3:] / np.linalg.norm(first.orientation[3:])
    normal = np.cross(row, col)
    direction = np.stack([row, col, normal], axis=1)
    proj = np.array([float(r.position @ normal) for r in records])
    order = np.argsort(proj, kind="stable")
    slices = [records[i] for i in order]
    d = proj[order]
    row_spacing, col_spacing = first.pixel_spacing
    warnings: list[str] = []

    if len(slices) == 1:
        thickness = slices[0].thickness if slices[0].thickness > 0 else 1.0
        return SeriesGeometry(
            slices, slices[0].position.copy(), (col_spacing, row_spacing, thickness),
            direction, d, False, warnings,
        )  # fmt: skip

    gaps = np.diff(d)
    for i, gap in enumerate(gaps):
        if gap < cfg.duplicate_position_mm:
            raise InputError(
                f"{name}: duplicate slice positions: {slices[i].where()} and "
                f"{slices[i + 1].where()} both lie at {d[i]:.3f} mm along the slice normal"
            )

    # Gantry tilt (or any drift of the stack off its normal): in-plane offset per mm of depth.
    offsets = np.array([r.position - slices[0].position for r in slices])
    depth = offsets @ normal
    in_plane = offsets - np.outer(depth, normal)
    angles = np.degrees(np.arctan2(np.linalg.norm(in_plane[1:], axis=1), np.abs(depth[1:])))
    if float(angles.max()) > cfg.tilt_tolerance_deg:
        raise InputError(
            f"{name}: gantry tilt: slice positions drift {float(angles.max()):.2f} degrees off "
            "the slice normal; reconstruct without tilt or correct it before use"
        )

    median = float(np.median(gaps))
    rel = np.abs(gaps - median) / median
    resample = False
    if float(rel.max()) > cfg.spacing_exact_rel:
        ratio = gaps / median
        k = np.rint(ratio)
        missing = np.nonzero((k >= 2) & (np.abs(ratio - k) <= cfg.missing_slice_rel))[0]
        if missing.size:
            i = int(missing[0])
            raise InputError(
                f"{name}: missing slice: gap of {gaps[i]:.2f} mm between {slices[i].where()} and "
                f"{slices[i + 1].where()} where the spacing is {median:.2f} mm (about "
                f"{int(k[i]) - 1} slice(s) missing)"
            )
        if float(rel.max()) > cfg.spacing_resample_rel:
            raise InputError(
                f"{name}: non-uniform slice spacing from {gaps.min():.3f} to {gaps.max():.3f} mm "
                f"(more than {cfg.spacing_resample_rel:.0%} irregular); not safe to resample"
            )
        resample = True
    spacing_z = float((d[-1] - d[0]) / (len(d) - 1))
    if resample:
        warnings.append(
            f"slice spacing varied from {gaps.min():.3f} to {gaps.max():.3f} mm (up to "
            f"{float(rel.max()):.1%}); resampled {len(d)} slices onto a uniform {spacing_z:.3f} "
            "mm grid along the slice normal by linear interpolation"
        )
    return SeriesGeometry(
        slices=slices,
        origin=slices[0].position.astype(np.float64),
        spacing=(float(col_spacing), float(row_spacing), spacing_z),
        direction=direction,
        positions_mm=d,
        resample=resample,
        warnings=warnings,
    )


def resample_uniform(volume: np.ndarray, positions_mm: np.ndarray) -> np.ndarray:
    """Linear interpolation of (z, y, x) slices at `positions_mm` onto an even grid, same ends."""
    n = len(positions_mm)
    target = np.linspace(positions_mm[0], positions_mm[-1], n)
    upper = np.clip(np.searchsorted(positions_mm, target, side="right"), 1, n - 1)
    lower = upper - 1
    span = positions_mm[upper] - positions_mm[lower]
    w = ((target - positions_mm[lower]) / span).astype(np.float32)[:, None, None]
    return (1 - w) * volume[lower] + w * volume[upper]

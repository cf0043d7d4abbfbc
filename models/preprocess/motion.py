"""Respiratory motion from 4D-CT: breathing signal, PCA motion model, phase estimate, compensation.

Input: the displacement fields u_k (z, y, x, 3; mm) from a reference CT to each of the ten 4D-CT
phases (the phantom's `motion_ct4d_phaseKK`, or the result of registering each phase to the
reference). Breathing moves tissue along nearly one direction in field space, so a PCA of the
fields is a compact motion model: u(s) = mean + sum_i s_i c_i. Its first score over the phases
is the breathing signal. The phase of a new scan is estimated from the image alone by finding
the score whose field best maps the scan onto the reference; the scan is then compensated to the
reference phase by warping it with that field.

Fields are kept as cubic B-splines on a coarse control grid (`BSplineField`), fitted by least
squares, so a field can be evaluated at any physical point and stored compactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import optimize

from edge_runtime.errors import InputError
from models.preprocess.fields import field_from_array, warp


# ---- cubic B-spline representation -------------------------------------------------------------
def _bspline3(t: np.ndarray) -> np.ndarray:
    """Uniform cubic B-spline kernel beta3(t)."""
    t = np.abs(t)
    out = np.zeros_like(t)
    a = t < 1
    b = (t >= 1) & (t < 2)
    out[a] = 2 / 3 - t[a] ** 2 + t[a] ** 3 / 2
    out[b] = (2 - t[b]) ** 3 / 6
    return out


def _basis(coords: np.ndarray, n_ctrl: int) -> np.ndarray:
    """Matrix B (len(coords), n_ctrl) with B[i, j] = beta3(coords[i] - j), coords in control units."""
    return _bspline3(coords[:, None] - np.arange(n_ctrl)[None, :])


@dataclass
class BSplineField:
    """A displacement field as cubic B-spline coefficients on a regular control grid.

    `origin` (x, y, z mm) is control point (0, 0, 0); `spacing` is the control spacing per axis;
    `coef` is (nz, ny, nx, 3). The image grid is assumed axis-aligned (identity direction), as
    the phantom's and the model's grids are.
    """

    coef: np.ndarray
    origin: np.ndarray
    spacing: np.ndarray

    @classmethod
    def fit(
        cls, field: np.ndarray, reference: sitk.Image, spacing_mm: float = 10.0
    ) -> BSplineField:
        """Least-squares fit to a dense (z, y, x, 3) field on `reference`'s grid.

        The tensor-product basis is separable, so the least-squares solution is the dense field
        multiplied along each axis by that axis's pseudo-inverse.
        """
        if not np.allclose(np.asarray(reference.GetDirection()), np.eye(3).ravel()):
            raise InputError("BSplineField needs an axis-aligned (identity direction) grid")
        size = np.array(reference.GetSize())  # x, y, z
        sp = np.array(reference.GetSpacing())
        org = np.array(reference.GetOrigin())
        ctrl_sp = np.minimum(np.full(3, spacing_mm), sp * np.maximum(size - 1, 1) / 3)
        n_ctrl = np.ceil((size - 1) * sp / ctrl_sp).astype(int) + 3
        ctrl_org = org - ctrl_sp
        coef = np.asarray(field, dtype=np.float64)
        # axes of `coef`: 0 = z, 1 = y, 2 = x; geometry index 2, 1, 0
        for axis, g in ((0, 2), (1, 1), (2, 0)):
            coords = (org[g] + sp[g] * np.arange(size[g]) - ctrl_org[g]) / ctrl_sp[g]
            pinv = np.linalg.pinv(_basis(coords, n_ctrl[g]))
            coef = np.moveaxis(np.tensordot(pinv, np.moveaxis(coef, axis, 0), axes=1), 0, axis)
        return cls(coef=coef, origin=ctrl_org, spacing=ctrl_sp)

    def evaluate(self, points_mm: np.ndarray) -> np.ndarray:
        """Displacements (N, 3) at physical points (N, 3) in x, y, z mm."""
        p = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        u = (p - self.origin) / self.spacing  # control units, x y z
        base = np.floor(u).astype(int) - 1
        out = np.zeros((len(p), 3))
        nz, ny, nx = self.coef.shape[:3]
        for dz in range(4):
            kz = base[:, 2] + dz
            wz = _bspline3(u[:, 2] - kz)
            for dy in range(4):
                ky = base[:, 1] + dy
                wy = _bspline3(u[:, 1] - ky)
                for dx in range(4):
                    kx = base[:, 0] + dx
                    w = wz * wy * _bspline3(u[:, 0] - kx)
                    ok = (kz >= 0) & (kz < nz) & (ky >= 0) & (ky < ny) & (kx >= 0) & (kx < nx)
                    out[ok] += w[ok, None] * self.coef[kz[ok], ky[ok], kx[ok]]
        return out

    def dense(self, reference: sitk.Image) -> np.ndarray:
        """The field on `reference`'s voxel grid, (z, y, x, 3)."""
        size = np.array(reference.GetSize())
        sp, org = np.array(reference.GetSpacing()), np.array(reference.GetOrigin())
        coef = self.coef
        for axis, g in ((0, 2), (1, 1), (2, 0)):
            coords = (org[g] + sp[g] * np.arange(size[g]) - self.origin[g]) / self.spacing[g]
            b = _basis(coords, coef.shape[axis])
            coef = np.moveaxis(np.tensordot(b, np.moveaxis(coef, axis, 0), axes=1), 0, axis)
        return coef


# ---- PCA motion model ---------------------------------------------------------------------------
@dataclass
class MotionModel:
    """u(s) = mean + sum_i s_i components[i], fitted to 4D-CT fields on one grid."""

    mean: np.ndarray  # (z, y, x, 3)
    components: np.ndarray  # (r, z, y, x, 3), orthonormal
    scores: np.ndarray  # (K, r): the training phases' scores
    explained: np.ndarray  # (r,) share of variance

    @classmethod
    def fit(cls, fields: list[np.ndarray], n_components: int = 2) -> MotionModel:
        if len(fields) < 3:
            raise InputError(f"a motion model needs at least 3 phases, got {len(fields)}")
        x = np.stack([np.asarray(f, dtype=np.float64) for f in fields])
        shape = x.shape[1:]
        flat = x.reshape(len(fields), -1)
        mean = flat.mean(axis=0)
        _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
        r = min(n_components, len(fields) - 1)
        comps = vt[:r]
        # orient PC1 so that a positive score moves tissue inferiorly (inspiration, LPS z < 0)
        if comps[0].reshape(shape)[..., 2].sum() > 0:
            comps[0] *= -1
        scores = (flat - mean) @ comps.T
        var = s**2
        return cls(
            mean=mean.reshape(shape),
            components=comps.reshape((r, *shape)),
            scores=scores,
            explained=var[:r] / max(var.sum(), 1e-12),
        )

    def field(self, scores: np.ndarray | float) -> np.ndarray:
        s = np.atleast_1d(np.asarray(scores, dtype=np.float64))
        return self.mean + np.tensordot(s, self.components[: len(s)], axes=1)

    def project(self, field: np.ndarray) -> np.ndarray:
        """Scores of a known field (least squares; components are orthonormal)."""
        d = (np.asarray(field, dtype=np.float64) - self.mean).ravel()
        return self.components.reshape(len(self.components), -1) @ d

    def signal(self) -> np.ndarray:
        """The breathing signal: PC1 score of each training phase (positive = inspiration)."""
        return self.scores[:, 0]


def si_amplitude(
    model: MotionModel, scores: np.ndarray | float, mask: np.ndarray | None = None
) -> float:
    """SI displacement (mm) of the most-moving voxel (the dome) under the model at `scores`.

    The per-voxel location is fixed by the model (largest |PC1| z component inside `mask`), so
    this is a phase measure in millimetres comparable with a breathing trace's SI position.
    """
    pc1z = np.abs(model.components[0][..., 2])
    if mask is not None:
        pc1z = np.where(mask, pc1z, -1.0)
    idx = np.unravel_index(int(np.argmax(pc1z)), pc1z.shape)
    return float(model.field(scores)[idx][2])


def estimate_scores(
    model: MotionModel,
    scan: sitk.Image,
    reference: sitk.Image,
    mask: np.ndarray | None = None,
    margin: float = 0.25,
    metric: str = "mse",
    n_grid: int = 15,
) -> np.ndarray:
    """PC1 score of `scan`, from the images alone.

    For a trial score s the scan is resampled at p + u(s)(p), i.e. brought to the reference
    phase; the score minimising the mean squared difference to the reference (`metric="mse"`,
    same modality) or the negated mutual information (`metric="mi"`, e.g. an MR against the
    CT) inside `mask` is the scan's phase. One bounded scalar search over the training range
    plus a margin: a one-parameter motion model cannot overfit the way a free-form one can.
    """
    if metric not in ("mse", "mi"):
        raise InputError(f"metric must be 'mse' or 'mi', got {metric!r}")
    ref = sitk.GetArrayFromImage(sitk.Cast(reference, sitk.sitkFloat32))
    m = np.ones(ref.shape, bool) if mask is None else np.asarray(mask, bool)
    if not m.any():
        raise InputError("the phase-estimation mask is empty")
    lo, hi = model.scores[:, 0].min(), model.scores[:, 0].max()
    span = hi - lo

    mask_img = None
    if metric == "mi":
        from models.preprocess.registration import mutual_information

        mask_img = sitk.GetImageFromArray(m.astype(np.uint8))
        mask_img.CopyInformation(reference)

    # edge-replicated padding: points pushed past the z ends of the field of view must not read
    # the resampler's default 0 (0 HU is not what lies beyond a CT; it dominated the cost at 128^2)
    from models.preprocess.registration import pad_moving

    padded = pad_moving(sitk.Cast(scan, sitk.sitkFloat32), 40.0)

    def cost(s: float) -> float:
        w = warp(padded, field_from_array(model.field(s), reference), reference=reference)
        if metric == "mi":
            return mutual_information(reference, w, mask_img)
        return float(np.mean((sitk.GetArrayFromImage(w)[m] - ref[m]) ** 2))

    # coarse scan first: at fine grids the cost has local minima a bracketing search falls into
    grid = np.linspace(lo - margin * span, hi + margin * span, n_grid)
    costs = [cost(float(g)) for g in grid]
    best = int(np.argmin(costs))
    step = grid[1] - grid[0]
    res = optimize.minimize_scalar(
        cost,
        bounds=(grid[best] - step, grid[best] + step),
        method="bounded",
        options={"xatol": 1e-3 * span},
    )
    return np.array([res.x])


def compensate(
    scan: sitk.Image,
    model: MotionModel,
    scores: np.ndarray,
    reference: sitk.Image,
    label: bool = False,
) -> sitk.Image:
    """The scan warped to the reference phase with the model's field at `scores`."""
    return warp(
        scan,
        field_from_array(model.field(scores), reference),
        interpolator="nearest" if label else "linear",
    )

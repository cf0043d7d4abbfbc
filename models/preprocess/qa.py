"""Registration quality: Jacobian determinant, SDlogJ, TRE, field error, Dice, failure flags.

A registration that folds tissue, lowers the liver overlap or fails to improve the similarity
must not reach training silently: `assess` turns the measurements into a record whose `reasons`
say why a case is excluded. Conventions follow Learn2Reg: folding is J <= 0, SDlogJ is the
standard deviation of log(J) with J clipped at 1e-9.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from edge_runtime.errors import InputError
from models.preprocess.fields import as_displacement_field, field_to_array, sample_field


@dataclass
class QAThresholds:
    """When a registration counts as failed (each check adds one reason)."""

    max_folding_percent: float = 0.0  # any voxel with J <= 0 is folding: tissue cannot invert
    max_dice_drop: float = 0.01  # liver Dice may not fall below its value before registration
    min_dice: float = 0.85  # below this the MR liver does not lie on the CT liver
    require_metric_improvement: bool = True  # MI after must beat MI before
    max_tre_mean_mm: float = 2.0  # with known landmarks: beyond this the pair is not aligned


@dataclass
class QARecord:
    """Measurements of one registration plus the verdict; JSON-ready via `to_dict`."""

    metric_before: float
    metric_after: float
    jacobian: dict[str, float]
    dice_before: float | None = None
    dice_after: float | None = None
    tre: dict[str, float] | None = None
    tre_before: dict[str, float] | None = None
    field_error: dict[str, float] | None = None
    # Each landmark's TRE (mm), in landmark order: a cohort's pooled percentiles need them.
    tre_landmarks_mm: list[float] | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


def jacobian_determinant(disp: sitk.Image) -> np.ndarray:
    """det(I + grad u) per voxel (z, y, x), with physical spacing and direction."""
    jac = sitk.DisplacementFieldJacobianDeterminant(as_displacement_field(disp))
    return sitk.GetArrayFromImage(jac).astype(np.float64)


def _mask_array(mask: sitk.Image | np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    arr = sitk.GetArrayFromImage(mask) if isinstance(mask, sitk.Image) else np.asarray(mask)
    arr = arr > 0
    if arr.shape != shape:
        raise InputError(f"mask shape {arr.shape} does not match the field grid {shape}")
    if not arr.any():
        raise InputError("the QA mask is empty: no voxel is set")
    return arr


def jacobian_stats(
    disp: sitk.Image, mask: sitk.Image | np.ndarray | None = None
) -> dict[str, float]:
    """min, max, % folding (J <= 0) and SDlogJ of the Jacobian determinant inside `mask`."""
    jac = jacobian_determinant(disp)
    j = jac[_mask_array(mask, jac.shape)]
    return {
        "min": float(j.min()),
        "max": float(j.max()),
        "folding_percent": float(100.0 * np.mean(j <= 0.0)),
        "sdlogj": float(np.std(np.log(np.clip(j, 1e-9, None)))),
    }


def distance_stats(d: np.ndarray) -> dict[str, float]:
    """mean, median, 95th percentile and max of distances (mm)."""
    d = np.asarray(d, dtype=np.float64).ravel()
    if d.size == 0:
        raise InputError("no distances to summarise (no landmarks or an empty mask)")
    return {
        "mean": float(d.mean()),
        "median": float(np.median(d)),
        "p95": float(np.percentile(d, 95)),
        "max": float(d.max()),
        "n": int(d.size),
    }


def target_registration_error(
    disp: sitk.Image, fixed_points: np.ndarray, moving_points: np.ndarray
) -> np.ndarray:
    """|p + u(p) - q| for landmark pairs (p in the fixed image, q the same point in the moving)."""
    p = np.asarray(fixed_points, dtype=np.float64).reshape(-1, 3)
    q = np.asarray(moving_points, dtype=np.float64).reshape(-1, 3)
    if p.shape != q.shape:
        raise InputError(f"{len(p)} fixed landmarks but {len(q)} moving landmarks")
    return np.linalg.norm(p + sample_field(disp, p) - q, axis=1)


def field_error(
    estimated: sitk.Image, true: sitk.Image, mask: sitk.Image | np.ndarray | None = None
) -> dict[str, float]:
    """Voxel-wise |u_est - u_true| (mm) inside `mask`: the registration error everywhere."""
    a, b = field_to_array(estimated), field_to_array(true)
    if a.shape != b.shape:
        raise InputError(f"field shapes differ: {a.shape} vs {b.shape}")
    err = np.linalg.norm(a - b, axis=-1)
    return distance_stats(err[_mask_array(mask, err.shape)])


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks; 1.0 when both are empty is refused as meaningless."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    total = a.sum() + b.sum()
    if total == 0:
        raise InputError("Dice of two empty masks is undefined")
    return float(2.0 * np.logical_and(a, b).sum() / total)


def assess(record: QARecord, thresholds: QAThresholds | None = None) -> QARecord:
    """Fill `record.reasons` with every failed check (empty means the case may be used)."""
    t = thresholds or QAThresholds()
    reasons = []
    if record.jacobian["folding_percent"] > t.max_folding_percent or record.jacobian["min"] <= 0:
        reasons.append(
            f"folding: {record.jacobian['folding_percent']:.3f}% of voxels with J <= 0 "
            f"(min J {record.jacobian['min']:.3f})"
        )
    if t.require_metric_improvement and not record.metric_after < record.metric_before:
        reasons.append(
            f"metric did not improve: MI {record.metric_before:.4f} -> {record.metric_after:.4f}"
        )
    if record.dice_after is not None:
        if (
            record.dice_before is not None
            and record.dice_after < record.dice_before - t.max_dice_drop
        ):
            reasons.append(
                f"liver Dice dropped: {record.dice_before:.3f} -> {record.dice_after:.3f}"
            )
        if record.dice_after < t.min_dice:
            reasons.append(f"liver Dice {record.dice_after:.3f} below {t.min_dice}")
    if record.tre is not None:
        if record.tre_before is not None and record.tre["mean"] > record.tre_before["mean"]:
            reasons.append(
                f"landmarks moved apart: TRE {record.tre_before['mean']:.2f} -> "
                f"{record.tre['mean']:.2f} mm"
            )
        if record.tre["mean"] > t.max_tre_mean_mm:
            reasons.append(f"mean TRE {record.tre['mean']:.2f} mm above {t.max_tre_mean_mm} mm")
    record.reasons = reasons
    return record


def icc_a1(truth: np.ndarray, estimate: np.ndarray) -> float:
    """ICC(A,1) (McGraw & Wong): two-way, absolute agreement, single measurement.

    Absolute agreement, not consistency: an estimate offset from the truth is penalised.
    """
    y = np.column_stack([np.asarray(truth, float), np.asarray(estimate, float)])
    n, k = y.shape
    if n < 3:
        raise InputError("ICC needs at least 3 subjects")
    grand = y.mean()
    msr = k * np.sum((y.mean(axis=1) - grand) ** 2) / (n - 1)
    msc = n * np.sum((y.mean(axis=0) - grand) ** 2) / (k - 1)
    sse = np.sum((y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand) ** 2)
    mse = sse / ((n - 1) * (k - 1))
    return float((msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n))

"""Breathing: CT and MR at different phases; the true field aligns them."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from models.phantom.io import to_image
from models.phantom.render import LABELS


def _warp_mr_to_ct(case, mask_mr: np.ndarray) -> np.ndarray:
    """Resample an MR-phase mask at p + u(p) (contract semantics), linear, threshold 0.5."""
    field = to_image(case.motion_ct_to_mr.astype(np.float64), case)
    transform = sitk.DisplacementFieldTransform(field)
    moving = to_image(mask_mr.astype(np.float32), case)
    reference = to_image(np.zeros(case.labels.shape, np.float32), case)
    out = sitk.Resample(moving, reference, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out) >= 0.5


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def mean_surface_distance(a: np.ndarray, b: np.ndarray, spacing_zyx) -> float:
    def surface(m):
        return m & ~ndimage.binary_erosion(m)

    sa, sb = surface(a), surface(b)
    da = ndimage.distance_transform_edt(~sb, sampling=spacing_zyx)[sa]
    db = ndimage.distance_transform_edt(~sa, sampling=spacing_zyx)[sb]
    return float(np.concatenate([da, db]).mean())


def test_ct_and_mr_are_at_different_phases(case256) -> None:
    ct, mr = case256.meta["ct_phase"], case256.meta["mr_phase"]
    assert ct["phase"] != mr["phase"]
    assert abs(ct["si_mm"] - mr["si_mm"]) >= min(
        case256.config.motion.min_phase_gap_mm, 0.9 * case256.meta["breathing"]["amplitude_si_mm"]
    )
    assert not np.array_equal(case256.labels, case256.mr_labels)


def test_true_field_aligns_mr_labels_with_ct(case256) -> None:
    c = case256
    spacing_zyx = c.grid.spacing[::-1]
    liver_ct = c.labels == LABELS["liver"]
    liver_mr = c.mr_labels == LABELS["liver"]
    before = dice(liver_ct, liver_mr)
    warped = _warp_mr_to_ct(c, liver_mr)
    after = dice(liver_ct, warped)
    msd = mean_surface_distance(liver_ct, warped, spacing_zyx)
    assert after >= 0.98, (before, after)
    assert after > before + 0.01
    assert msd < min(c.grid.spacing), msd
    assert mean_surface_distance(liver_ct, liver_mr, spacing_zyx) > msd


def test_field_is_largest_at_the_dome_and_zero_at_the_spine(case256) -> None:
    c = case256
    u = c.motion_ct_to_mr
    mag = np.linalg.norm(u, axis=-1)
    liver = c.labels == LABELS["liver"]
    z_liver = np.nonzero(liver.any(axis=(1, 2)))[0]
    third = len(z_liver) // 3
    upper, lower = liver.copy(), liver.copy()
    upper[: z_liver[-third]] = False
    lower[z_liver[third] :] = False
    assert np.percentile(mag[upper], 90) > np.percentile(mag[lower], 90) + 2.0
    spine = c.labels == LABELS["vertebra"]
    assert np.percentile(mag[spine], 95) < 0.5
    assert mag[c.labels == LABELS["spinal_canal"]].max() < 0.5
    assert mag[liver].mean() > 3.0
    # smooth: neighbouring voxels differ by a small fraction of a voxel
    assert np.abs(np.diff(u, axis=2)).max() < 0.5 * c.grid.spacing[0]


def test_4dct_phases_and_fields() -> None:
    from models.phantom import render_case

    c = render_case(3, grid=64, slices=12, ssim=False, four_dct=True)
    n = c.config.motion.four_dct_phases
    assert sorted(k for k in c.four_dct if k.startswith("ct4d")) == [
        f"ct4d_phase{k:02d}" for k in range(n)
    ]
    mags = [np.abs(c.four_dct[f"motion_ct4d_phase{k:02d}"]).max() for k in range(n)]
    assert max(mags) > 3.0
    assert len({round(float(m), 3) for m in mags}) > 3
    assert c.four_dct["ct4d_phase00"].dtype == np.int16

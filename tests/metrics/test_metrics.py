"""edge_runtime.metrics against independent references (scikit-image, scipy, hand-computed)."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import fftconvolve
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.util import crop

from edge_runtime import metrics as M
from edge_runtime.errors import InputError


def _sk_ssim(a, b, data_range, full=False):
    return structural_similarity(
        np.asarray(a, np.float64),
        np.asarray(b, np.float64),
        data_range=data_range,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=full,
    )


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(1234)


def _smooth_pair(rng, shape):
    """A textured image and a noisy, slightly blurred copy: SSIM well inside (0, 1)."""
    a = ndimage.gaussian_filter(rng.normal(size=shape), 2.0) * 40 + 100
    b = ndimage.gaussian_filter(a, 0.7) + rng.normal(scale=3.0, size=shape)
    return a, b


def test_gaussian_and_box_filters_equal_scipy(rng) -> None:
    x = rng.normal(size=(13, 17, 9))
    np.testing.assert_allclose(
        M.gaussian_filter(x, 1.5, 3.5),
        ndimage.gaussian_filter(x, 1.5, truncate=3.5, mode="reflect"),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        M.box_filter(x, 7), ndimage.uniform_filter(x, 7, mode="reflect"), atol=1e-12
    )


@pytest.mark.parametrize("shape", [(64, 48), (11, 11), (20, 40, 33)])
def test_ssim_equals_skimage_on_random_images(rng, shape) -> None:
    a = rng.uniform(0, 1, size=shape)
    b = np.clip(a + rng.normal(scale=0.2, size=shape), 0, 1)
    for x, y in ((a, b), _smooth_pair(rng, shape)):
        r = float(y.max() - y.min())
        ours = M.ssim(x, y, r)
        ref = _sk_ssim(x, y, r)
        assert 0.0 < ref < 1.0
        assert abs(ours - ref) < 1e-6, (ours, ref)


def test_ssim_map_equals_skimage_full_map(rng) -> None:
    a, b = _smooth_pair(rng, (40, 36))
    _, ref_map = _sk_ssim(a, b, 200.0, full=True)
    np.testing.assert_allclose(M.ssim_map(a, b, 200.0), ref_map, atol=1e-10)


def test_identical_images_score_one(rng) -> None:
    a = rng.normal(size=(30, 30, 20))
    assert M.ssim(a, a, 5.0) == pytest.approx(1.0, abs=1e-12)
    assert M.psnr(a, a, 5.0) == float("inf")
    assert M.mae(a, a) == 0.0
    full, inside = M.ms_ssim_3d(a, a, (-3.0, 3.0), a > 0)
    assert full == pytest.approx(1.0, abs=1e-12) and inside == pytest.approx(1.0, abs=1e-12)


def test_mae_and_psnr_exact() -> None:
    truth = np.array([[0.0, 1.0], [2.0, 3.0]])
    pred = np.array([[0.5, 1.0], [2.0, 5.0]])
    mask = np.array([[1, 1], [0, 1]])
    assert M.mae(pred, truth) == 2.5 / 4
    assert M.mae(pred, truth, mask) == 2.5 / 3
    mse = (0.25 + 0 + 0 + 4) / 4
    assert M.psnr(pred, truth, 10.0) == pytest.approx(10 * np.log10(100 / mse), rel=0, abs=1e-12)
    assert M.psnr(pred, truth, 10.0) == pytest.approx(
        peak_signal_noise_ratio(truth, pred, data_range=10.0), abs=1e-12
    )
    mse_m = (0.25 + 0 + 4) / 3
    assert M.psnr(pred, truth, 4.0, mask) == pytest.approx(10 * np.log10(16 / mse_m), abs=1e-12)


def test_masked_and_roi_ssim(rng) -> None:
    a, b = _smooth_pair(rng, (48, 48))
    roi = np.zeros(a.shape, bool)
    roi[10:30, 12:40] = True
    _, smap = _sk_ssim(a, b, 150.0, full=True)
    assert M.roi_ssim(a, b, roi, 150.0) == pytest.approx(smap[roi].mean(), abs=1e-10)
    fill = b.min()
    _, smap2 = _sk_ssim(np.where(roi, a, fill), np.where(roi, b, fill), 150.0, full=True)
    ref = crop(smap2, 5)[crop(roi, 5)].mean()
    assert M.masked_ssim(a, b, roi, 150.0) == pytest.approx(ref, abs=1e-10)
    # a region where the images agree scores higher than one where they do not
    c = a.copy()
    c[:, 24:] = b[:, 24:]
    left = np.zeros(a.shape, bool)
    left[:, 6:18] = True
    right = np.zeros(a.shape, bool)
    right[:, 30:42] = True
    assert M.roi_ssim(c, a, left, 150.0) > 0.999 > M.roi_ssim(c, a, right, 150.0)


def test_slice_ssim_is_per_slice_skimage(rng) -> None:
    a, b = _smooth_pair(rng, (5, 32, 32))
    keep = np.array([True, False, True, True, False])
    vals = M.slice_ssim(a, b, 100.0, keep)
    ref = [_sk_ssim(a[k], b[k], 100.0) for k in (0, 2, 3)]
    np.testing.assert_allclose(vals, ref, atol=1e-6)


def _sk_masked_slices(a, b, roi, data_range: float) -> list[np.ndarray]:
    """scikit-image's 2D SSIM map of each slice, outside `roi` blanked to b's minimum, at the
    ROI's voxels away from the 5-voxel border: the reference of the masked slice readings."""
    fill = b.min()
    maps = [
        _sk_ssim(np.where(r, x, fill), np.where(r, y, fill), data_range, full=True)[1]
        for x, y, r in zip(a, b, roi, strict=True)
    ]
    return [crop(m, 5)[crop(r, 5)] for m, r in zip(maps, roi, strict=True)]


def test_thin_slab_is_scored_slice_by_slice_in_2d(rng) -> None:
    """4 slices at 25 mm hold no 11-voxel window along z: the SSIM is the slices' 2D SSIM."""
    a, b = _smooth_pair(rng, (4, 32, 32))
    per_slice = [_sk_ssim(a[k], b[k], 100.0, full=True)[1] for k in range(4)]
    assert M.ssim(a, b, 100.0) == pytest.approx(np.mean([crop(m, 5) for m in per_slice]))
    roi = np.zeros(a.shape, bool)
    roi[1:3, 8:24, 8:24] = True
    inside = np.concatenate(_sk_masked_slices(a, b, roi, 100.0))
    assert M.masked_ssim(a, b, roi, 100.0) == pytest.approx(inside.mean(), abs=1e-10)
    assert M.masked_slice_ssim(a, b, roi, 100.0) == pytest.approx(inside.mean(), abs=1e-10)
    with pytest.raises(InputError, match="smaller than the 11-voxel SSIM window"):
        M.ssim(a[:, :10], b[:, :10], 100.0)
    with pytest.raises(InputError, match="smaller than the 11-voxel SSIM window"):
        M.ssim(a[0, :10], b[0, :10], 100.0)


def test_masked_slice_ssim_windows_each_slice_of_a_thick_stack_in_2d(rng) -> None:
    """16 slices hold the window along z, so masked_ssim is 3D there; the slice reading pools
    each slice's 2D masked SSIM map over the mask, and a slice that differs only between other
    slices' windows changes the 3D score but not the other slices' 2D ones."""
    a, b = _smooth_pair(rng, (16, 32, 32))
    roi = np.zeros(a.shape, bool)
    roi[2:14, 8:24, 6:26] = True
    per_slice = _sk_masked_slices(a, b, roi, 100.0)
    pooled = np.concatenate(per_slice).mean()
    assert M.masked_slice_ssim(a, b, roi, 100.0) == pytest.approx(pooled, abs=1e-10)
    assert abs(M.masked_ssim(a, b, roi, 100.0) - pooled) > 1e-3
    c = a.copy()
    c[7] = b[7]  # one slice perfect: its own 2D map is 1, its neighbours' are untouched
    per_slice[7] = np.ones_like(per_slice[7])
    expected = np.concatenate(per_slice).mean()
    assert M.masked_slice_ssim(c, b, roi, 100.0) == pytest.approx(expected, abs=1e-10)
    with pytest.raises(InputError, match="needs \\(z, y, x\\) volumes"):
        M.masked_slice_ssim(a[0], b[0], roi[0], 100.0)
    with pytest.raises(InputError, match="no voxels away from the image border"):
        M.masked_slice_ssim(a, b, np.zeros(a.shape, bool), 100.0)


def test_gaussian_filter_per_axis_width_equals_scipy(rng) -> None:
    x = rng.normal(size=(4, 17, 9))
    np.testing.assert_allclose(
        M.gaussian_filter(x, (0.0, 1.5, 1.5), 3.5),
        ndimage.gaussian_filter(x, (0.0, 1.5, 1.5), truncate=3.5, mode="reflect"),
        atol=1e-12,
    )


def _reference_ms_ssim(gt, pred, mask, lo, hi):
    """SynthRAD2025's MS-SSIM procedure written with scipy and scikit-image primitives."""
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    gt = np.clip(gt, lo, hi)
    pred = np.clip(pred, lo, hi)
    mask = np.where(mask > 0, 1.0, 0.0)
    gt = np.where(mask == 0, lo, gt) - lo
    pred = np.where(mask == 0, lo, pred) - lo
    rng_ = hi - lo
    pads = [(max(97 - d, 0) // 2, max(97 - d, 0) - max(97 - d, 0) // 2) for d in gt.shape]
    gt, pred, mask = (np.pad(v, pads, mode="edge") for v in (gt, pred, mask))
    full_vals, mask_vals = [], []
    for w in weights:
        f = lambda v: ndimage.uniform_filter(v, size=7)  # noqa: E731
        ux, uy = f(gt), f(pred)
        cn = 343 / 342
        vx = cn * (f(gt * gt) - ux * ux)
        vy = cn * (f(pred * pred) - uy * uy)
        vxy = cn * (f(gt * pred) - ux * uy)
        sx, sy = np.clip(vx, 0, None) ** 0.5, np.clip(vy, 0, None) ** 0.5
        c1, c2 = (0.01 * rng_) ** 2, (0.03 * rng_) ** 2
        c3 = c2 / 2
        lum = np.clip((2 * ux * uy + c1) / (ux**2 + uy**2 + c1), 0, None)
        con = np.clip((2 * sx * sy + c2) / (vx + vy + c2), 0, None)
        st = np.clip((vxy + c3) / (sx * sy + c3), 0, None)
        smap = lum**w * con**w * st**w
        full_vals.append(crop(smap, 3).mean())
        sel = crop(mask, 3).astype(bool)
        # where the mask misses the cropped scale, the whole-volume mean stands in (documented)
        mask_vals.append(crop(smap, 3)[sel].mean() if sel.any() else full_vals[-1])
        box = np.ones((2, 2, 2)) / 8
        gt, pred = (fftconvolve(v, box, mode="same") for v in (gt, pred))
        gt, pred, mask = (v[::2, ::2, ::2] for v in (gt, pred, mask))
    return (
        float(np.prod(np.clip(full_vals, 0, 1))),
        float(np.prod(np.clip(mask_vals, 0, 1))),
    )


@pytest.mark.parametrize("shape", [(24, 64, 64), (100, 40, 98)])
def test_ms_ssim_equals_independent_reference(rng, shape) -> None:
    truth = ndimage.gaussian_filter(rng.normal(size=shape), 2.0) * 300 + 200
    pred = ndimage.gaussian_filter(truth, 1.0) + rng.normal(scale=40, size=shape)
    mask = ndimage.gaussian_filter(rng.normal(size=shape), 4.0) > -0.02
    lo, hi = float(truth.min()), float(truth.max())
    ours = M.ms_ssim_3d(pred, truth, (lo, hi), mask)
    ref = _reference_ms_ssim(truth, pred, mask, lo, hi)
    assert 0.0 < ref[1] < 0.999
    assert abs(ours[0] - ref[0]) < 1e-4 and abs(ours[1] - ref[1]) < 1e-4, (ours, ref)
    # worse predictions score lower
    worse = M.ms_ssim_3d(pred + rng.normal(scale=100, size=shape), truth, (lo, hi), mask)
    assert worse[1] < ours[1]


def test_bad_inputs_are_input_errors(rng) -> None:
    a = rng.normal(size=(16, 16))
    with pytest.raises(InputError, match="shape"):
        M.ssim(a, a[:-1], 1.0)
    bad = a.copy()
    bad[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        M.mae(bad, a)
    with pytest.raises(InputError, match="data_range"):
        M.psnr(a, a, 0.0)
    with pytest.raises(InputError, match="window"):
        M.ssim(a[:8], a[:8], 1.0)
    with pytest.raises(InputError, match="empty"):
        M.mae(a, a, np.zeros_like(a))

"""Image similarity metrics on plain numpy arrays, so a device can check its own output.

Every number the project reports about image fidelity is computed here, one way: masked MAE,
PSNR with an explicit data range, SSIM with a Gaussian window (numerically the same as
scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``), masked and ROI SSIM, slice-wise SSIM (the phantom's SSIM
ceiling is defined that way), and the 3D MS-SSIM of the SynthRAD2025 challenge.

Only numpy is imported: the runtime a clinic installs has no scipy, and a device that runs a
package must be able to measure its own result against the reference the package shipped
with. Filters are separable correlations written with numpy slicing; their border handling is
scipy.ndimage's ``mode="reflect"`` (half-sample symmetric), which is what scikit-image and the
SynthRAD code use, so the numbers agree with those references to rounding error.
docs/accuracy.md states every choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_runtime.errors import InputError

__all__ = [
    "MSSSIMConfig",
    "SSIMConfig",
    "box_filter",
    "gaussian_filter",
    "gaussian_kernel1d",
    "mae",
    "masked_slice_ssim",
    "masked_ssim",
    "ms_ssim_3d",
    "psnr",
    "roi_ssim",
    "slice_ssim",
    "ssim",
    "ssim_map",
]


@dataclass(frozen=True)
class SSIMConfig:
    """SSIM as Wang et al. (2004) define it and scikit-image reproduces it."""

    sigma: float = 1.5  # Gaussian window width of Wang et al.
    truncate: float = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: the 11-tap window of the paper
    k1: float = 0.01  # luminance stabiliser C1 = (k1 R)^2
    k2: float = 0.03  # contrast stabiliser C2 = (k2 R)^2

    @property
    def radius(self) -> int:
        """Window radius in voxels, rounded as scipy.ndimage rounds it."""
        return int(self.truncate * self.sigma + 0.5)


@dataclass(frozen=True)
class MSSSIMConfig:
    """3D MS-SSIM as the SynthRAD2025 evaluation code computes it (see docs/accuracy.md)."""

    # Exponents per scale from Wang, Simoncelli & Bovik (2003), Eq. 7; SynthRAD2025 applies each
    # scale's exponent to luminance, contrast and structure alike.
    weights: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    window: int = 7  # uniform (box) window per scale, as scikit-image's default
    sample_covariance: bool = True  # N-1 normalisation, scikit-image's default, kept by SynthRAD
    k1: float = 0.01
    k2: float = 0.03
    min_size: int = 97  # smaller volumes are edge-padded (centred) to this size per axis
    crop: int = 3  # border strip left out of each scale's mean: the window's radius


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _as_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"images differ in shape: {a.shape} vs {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("an image contains NaN or infinite values")
    return a, b


def _as_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask) > 0
    if mask.shape != shape:
        raise InputError(f"mask shape {mask.shape} differs from image shape {shape}")
    return mask


def _check_range(data_range: float) -> float:
    data_range = float(data_range)
    if not np.isfinite(data_range) or data_range <= 0:
        raise InputError(f"data_range must be a positive number, got {data_range}")
    return data_range


# --------------------------------------------------------------------------------------------
# Separable filters (scipy.ndimage mode="reflect" borders)
# --------------------------------------------------------------------------------------------


def gaussian_kernel1d(sigma: float, radius: int) -> np.ndarray:
    """Normalised 1D Gaussian taps at integer offsets -radius..radius (scipy's kernel)."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x * x)
    return phi / phi.sum()


def _correlate1d(x: np.ndarray, taps: np.ndarray, axis: int, origin_left: int) -> np.ndarray:
    """Correlate along one axis; `origin_left` taps lie before the centre voxel."""
    n = x.shape[axis]
    right = len(taps) - 1 - origin_left
    pad = [(0, 0)] * x.ndim
    pad[axis] = (origin_left, right)
    # numpy's "symmetric" is scipy.ndimage's "reflect": d c b a | a b c d | d c b a
    xp = np.pad(x, pad, mode="symmetric")
    out = np.zeros_like(x, dtype=np.float64)
    index: list[slice] = [slice(None)] * x.ndim
    for k, w in enumerate(taps):
        index[axis] = slice(k, k + n)
        out += w * xp[tuple(index)]
    return out


def gaussian_filter(
    x: np.ndarray, sigma: float | tuple[float, ...], truncate: float = 3.5
) -> np.ndarray:
    """Gaussian smoothing, equal to scipy.ndimage.gaussian_filter(reflect).

    `sigma` is one width for every axis or one per axis; an axis of width 0 is left as it is.
    """
    sigmas = (sigma,) * np.ndim(x) if np.isscalar(sigma) else tuple(sigma)
    out = np.asarray(x, dtype=np.float64)
    for axis, s in enumerate(sigmas):
        if s > 0:
            radius = int(truncate * s + 0.5)
            out = _correlate1d(out, gaussian_kernel1d(s, radius), axis, radius)
    return out


def box_filter(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over a size^ndim box, equal to scipy.ndimage.uniform_filter(size, mode=reflect)."""
    taps = np.full(size, 1.0 / size)
    out = np.asarray(x, dtype=np.float64)
    for axis in range(out.ndim):
        out = _correlate1d(out, taps, axis, size // 2)
    return out


def _crop(x: np.ndarray, pad: int | tuple[int, ...]) -> np.ndarray:
    pads = (pad,) * x.ndim if isinstance(pad, int) else pad
    return x[tuple(slice(p, s - p) for p, s in zip(pads, x.shape, strict=True))]


# --------------------------------------------------------------------------------------------
# Voxel-wise errors
# --------------------------------------------------------------------------------------------


def mae(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error over the voxels where `mask` is non-zero (all voxels without one)."""
    a, b = _as_pair(pred, truth)
    m = _as_mask(mask, a.shape)
    if not m.any():
        raise InputError("MAE mask is empty")
    return float(np.abs(a[m] - b[m]).mean())


def psnr(
    pred: np.ndarray, truth: np.ndarray, data_range: float, mask: np.ndarray | None = None
) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(R^2 / MSE), over the mask's voxels.

    The data range R is explicit: a range guessed from each image would make two methods'
    PSNR incomparable. Identical images give +inf.
    """
    a, b = _as_pair(pred, truth)
    r = _check_range(data_range)
    m = _as_mask(mask, a.shape)
    if not m.any():
        raise InputError("PSNR mask is empty")
    mse = float(np.mean((a[m] - b[m]) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(r * r / mse))


# --------------------------------------------------------------------------------------------
# SSIM (Gaussian window)
# --------------------------------------------------------------------------------------------


def ssim_map(
    a: np.ndarray, b: np.ndarray, data_range: float, config: SSIMConfig = SSIMConfig()
) -> np.ndarray:
    """The local SSIM at every voxel (2D or 3D), with population (co)variances."""
    x, y = _as_pair(a, b)
    r = _check_range(data_range)
    sigmas = _window_sigmas(x.shape, config)

    def f(v: np.ndarray) -> np.ndarray:
        return gaussian_filter(v, sigmas, truncate=config.truncate)

    ux, uy = f(x), f(y)
    vx = f(x * x) - ux * ux
    vy = f(y * y) - uy * uy
    vxy = f(x * y) - ux * uy
    c1 = (config.k1 * r) ** 2
    c2 = (config.k2 * r) ** 2
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return num / den


def _window_sigmas(shape: tuple[int, ...], config: SSIMConfig) -> tuple[float, ...]:
    """The Gaussian window's width along each axis of an SSIM map.

    A (z, y, x) volume with fewer slices than the window (a thin slab: 4 slices at 25 mm) is
    not windowed along z, so its SSIM is that of its axial slices in 2D; a plane smaller than
    the window has no SSIM at all.
    """
    window = 2 * config.radius + 1
    thin_slab = len(shape) == 3 and shape[0] < window
    plane = shape[1:] if thin_slab else shape
    if min(plane) < window:
        raise InputError(
            f"image of shape {shape} is smaller than the {window}-voxel SSIM window along some axis"
        )
    return ((0.0,) if thin_slab else ()) + (config.sigma,) * len(plane)


def _border(shape: tuple[int, ...], config: SSIMConfig) -> tuple[int, ...]:
    """The strip left out at each border: the window's radius along the windowed axes."""
    return tuple(config.radius if s else 0 for s in _window_sigmas(shape, config))


def ssim(
    a: np.ndarray, b: np.ndarray, data_range: float, config: SSIMConfig = SSIMConfig()
) -> float:
    """Mean SSIM, leaving out the window's radius at every border (scikit-image's convention)."""
    smap = ssim_map(a, b, data_range, config)
    return float(_crop(smap, _border(smap.shape, config)).mean(dtype=np.float64))


def masked_ssim(
    pred: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray,
    data_range: float,
    config: SSIMConfig = SSIMConfig(),
) -> float:
    """SSIM inside a mask, with everything outside it blanked (the SynthRAD convention).

    Voxels outside the mask are set to the truth's minimum in both images, so structure outside
    the body (or outside the organ) cannot raise or lower the score; the SSIM map is then
    averaged over the mask's voxels that lie away from the border strip.
    """
    x, y = _as_pair(pred, truth)
    m = _as_mask(mask, x.shape)
    fill = float(y.min())
    smap = ssim_map(np.where(m, x, fill), np.where(m, y, fill), data_range, config)
    return _mean_in(smap, m, _border(smap.shape, config), "masked SSIM")


def masked_slice_ssim(
    pred: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray,
    data_range: float,
    config: SSIMConfig = SSIMConfig(),
) -> float:
    """`masked_ssim` read slice by slice: a 2D window in each axial slice of a (z, y, x) volume.

    The 3D masked SSIM of a stack of thick slices windows along z too (11 slices: 69 mm at
    6.25 mm) and averages only the slices at least the window's radius from the stack's ends,
    so it rewards consistency between slices and sees few of them. A reader, and a slice-wise
    model, sees each slice alone: this blanks outside the mask in the same way, takes each
    slice's 2D SSIM map and averages it over every mask voxel away from the in-plane border.
    For a thin slab (fewer slices than the window) it equals `masked_ssim`.
    """
    x, y = _as_pair(pred, truth)
    if x.ndim != 3:
        raise InputError(f"masked slice SSIM needs (z, y, x) volumes, got shape {x.shape}")
    m = _as_mask(mask, x.shape)
    fill = float(y.min())
    xb, yb = np.where(m, x, fill), np.where(m, y, fill)
    r = config.radius
    inside = [
        _crop(ssim_map(xb[k], yb[k], data_range, config), r)[_crop(m[k], r)]
        for k in np.flatnonzero(m.any(axis=(1, 2)))
    ]
    values = np.concatenate(inside) if inside else np.empty(0)
    if not values.size:
        raise InputError("masked slice SSIM: the mask has no voxels away from the image border")
    return float(values.mean(dtype=np.float64))


def roi_ssim(
    pred: np.ndarray,
    truth: np.ndarray,
    roi: np.ndarray,
    data_range: float,
    config: SSIMConfig = SSIMConfig(),
) -> float:
    """SSIM of a region of interest (a tumour, the background liver) seen in its context.

    Unlike `masked_ssim`, nothing is blanked: the local statistics around an ROI voxel include
    its surroundings, exactly as a reader sees the lesion in the image. The SSIM map is averaged
    over the ROI's voxels.
    """
    smap = ssim_map(pred, truth, data_range, config)
    return _mean_in(smap, _as_mask(roi, smap.shape), 0, "ROI SSIM")


def _mean_in(smap: np.ndarray, mask: np.ndarray, pad: int | tuple[int, ...], what: str) -> float:
    sel = _crop(mask, pad) if pad else mask
    if not sel.any():
        raise InputError(f"{what}: the mask has no voxels away from the image border")
    values = (_crop(smap, pad) if pad else smap)[sel]
    return float(values.mean(dtype=np.float64))


def slice_ssim(
    pred: np.ndarray,
    truth: np.ndarray,
    data_range: float,
    slices: np.ndarray | None = None,
    config: SSIMConfig = SSIMConfig(),
) -> np.ndarray:
    """2D SSIM of each axial slice (axis 0) of two (z, y, x) volumes.

    `slices` is a boolean per slice (e.g. "contains liver"); only those are computed. This is
    how the phantom defines its SSIM ceiling, and what slice-based models are judged by.
    """
    x, y = _as_pair(pred, truth)
    if x.ndim != 3:
        raise InputError(f"slice SSIM needs (z, y, x) volumes, got shape {x.shape}")
    keep = np.ones(x.shape[0], dtype=bool) if slices is None else np.asarray(slices, dtype=bool)
    if keep.shape != (x.shape[0],):
        raise InputError(f"slice selection has {keep.shape} entries for {x.shape[0]} slices")
    return np.array([ssim(x[k], y[k], data_range, config) for k in np.flatnonzero(keep)])


# --------------------------------------------------------------------------------------------
# 3D MS-SSIM (SynthRAD2025)
# --------------------------------------------------------------------------------------------


def _downsample2(x: np.ndarray) -> np.ndarray:
    """Average 2x2x2 neighbours and keep every other voxel, aligned as SynthRAD2025 does.

    Their code convolves with a 2^3 box (scipy fftconvolve, mode="same") and then takes
    ``[::2, ::2, ::2]``; with an even kernel "same" keeps voxel i = mean(x[i-1], x[i]) along
    each axis with x[-1] = 0, so the first plane of every axis is halved. We reproduce that.
    """
    out = np.asarray(x, dtype=np.float64)
    for axis in range(out.ndim):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (1, 0)
        xp = np.pad(out, pad, mode="constant")
        n = out.shape[axis]
        lo = [slice(None)] * out.ndim
        hi = [slice(None)] * out.ndim
        lo[axis] = slice(0, n)
        hi[axis] = slice(1, n + 1)
        out = 0.5 * (xp[tuple(lo)] + xp[tuple(hi)])
    return out[tuple(slice(None, None, 2) for _ in range(out.ndim))]


def _scale_ssim_map(
    x: np.ndarray, y: np.ndarray, r: float, w: float, cfg: MSSSIMConfig
) -> np.ndarray:
    """L^w C^w S^w per voxel, each factor clipped at 0, box window (SynthRAD2025's scale SSIM)."""
    n = cfg.window**x.ndim
    cov_norm = n / (n - 1) if cfg.sample_covariance else 1.0
    ux, uy = box_filter(x, cfg.window), box_filter(y, cfg.window)
    vx = cov_norm * (box_filter(x * x, cfg.window) - ux * ux)
    vy = cov_norm * (box_filter(y * y, cfg.window) - uy * uy)
    vxy = cov_norm * (box_filter(x * y, cfg.window) - ux * uy)
    sx = np.sqrt(np.clip(vx, 0, None))
    sy = np.sqrt(np.clip(vy, 0, None))
    c1 = (cfg.k1 * r) ** 2
    c2 = (cfg.k2 * r) ** 2
    c3 = c2 / 2
    lum = np.clip((2 * ux * uy + c1) / (ux * ux + uy * uy + c1), 0, None)
    con = np.clip((2 * sx * sy + c2) / (vx + vy + c2), 0, None)
    st = np.clip((vxy + c3) / (sx * sy + c3), 0, None)
    return lum**w * con**w * st**w


def ms_ssim_3d(
    pred: np.ndarray,
    truth: np.ndarray,
    value_range: tuple[float, float],
    mask: np.ndarray | None = None,
    config: MSSSIMConfig = MSSSIMConfig(),
) -> tuple[float, float]:
    """3D multi-scale SSIM as SynthRAD2025 scores it; returns (whole volume, inside mask).

    `value_range` = (lo, hi) is fixed by the caller (SynthRAD uses [-1024, 3000] HU for CT; for
    MRI the project passes the truth's range). Both volumes are clipped to it, voxels outside
    the mask are set to lo, and lo is subtracted. Each axis shorter than `config.min_size` is
    edge-padded (centred), so five scales of halving fit. Per scale the SSIM map uses a box
    window; its mean over the cropped volume and over the cropped mask are kept; the results
    are clipped to [0, 1] and multiplied over scales.
    """
    x, y = _as_pair(pred, truth)
    if x.ndim != 3:
        raise InputError(f"MS-SSIM 3D needs (z, y, x) volumes, got shape {x.shape}")
    lo, hi = (float(v) for v in value_range)
    r = _check_range(hi - lo)
    m = _as_mask(mask, x.shape)
    if not m.any():
        raise InputError("MS-SSIM mask is empty")
    x = np.where(m, np.clip(x, lo, hi), lo) - lo
    y = np.where(m, np.clip(y, lo, hi), lo) - lo
    short = [max(config.min_size - s, 0) for s in x.shape]
    pads = [(k // 2, k - k // 2) for k in short]
    x = np.pad(x, pads, mode="edge")
    y = np.pad(y, pads, mode="edge")
    mf = np.pad(m.astype(np.float64), pads, mode="edge")

    whole, inside = [], []
    for level, w in enumerate(config.weights):
        smap = _scale_ssim_map(x, y, r, w, config)
        whole.append(float(_crop(smap, config.crop).mean(dtype=np.float64)))
        sel = _crop(mf, config.crop).astype(bool)
        # At the coarsest scale a 97-voxel axis leaves 1 voxel after cropping; where the mask
        # misses it SynthRAD's mean is NaN. We take that scale's whole-volume mean instead.
        inside.append(
            float(_crop(smap, config.crop)[sel].mean(dtype=np.float64)) if sel.any() else whole[-1]
        )
        if level + 1 < len(config.weights):
            x, y = _downsample2(x), _downsample2(y)
            mf = mf[::2, ::2, ::2]
    return (
        float(np.prod(np.clip(whole, 0.0, 1.0))),
        float(np.prod(np.clip(inside, 0.0, 1.0))),
    )

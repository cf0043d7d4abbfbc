"""Distribution distance: Frechet distance in a fixed filter-bank feature space.

The literature's FID measures how far the distribution of generated images is from real ones in
the feature space of an ImageNet Inception network. Those weights cannot be downloaded here and
say little about MRI texture anyway, so the project fixes its own deterministic encoder and names
the result for what it is, the *Frechet filter-bank distance* (FFBD), never "FID":

- Each image is first put on a common scale fixed by the truth of the same case and sequence:
  (I - p1) / (p99 - p1) of the true volume inside the body, so an intensity bias of the
  prediction counts as a difference.
- On every axial slice that contains liver, a fixed bank of 2D filters is applied: Gaussian
  smoothing (sigma 1, 2, 4 px), gradient magnitude (sigma 1, 2) and Laplacian of Gaussian
  (sigma 1, 2, 4), plus the image itself.
- The slice is cut into non-overlapping `patch` x `patch` tiles; a tile that lies at least
  `min_body` inside the body is one sample, its feature vector the mean and standard deviation
  of every filter response over the tile (18 numbers).
- Gaussians are fitted to the predicted and the true samples and the Frechet distance
  |mu_p - mu_t|^2 + tr(S_p + S_t - 2 (S_t^1/2 S_p S_t^1/2)^1/2) is taken.

The encoder has no learned weights, so every run and every machine computes the same features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class FeatureConfig:
    """The fixed filter bank and tiling of the Frechet filter-bank distance."""

    smooth_sigmas: tuple[float, ...] = (1.0, 2.0, 4.0)
    gradient_sigmas: tuple[float, ...] = (1.0, 2.0)
    log_sigmas: tuple[float, ...] = (1.0, 2.0, 4.0)
    patch: int = 16  # px; 22-45 mm at the grids we render: a texture sample, not an organ
    min_body: float = 0.75  # fraction of a tile inside the body for it to count


def intensity_scale(truth: np.ndarray, body: np.ndarray) -> tuple[float, float]:
    """(p1, p99) of the true volume in the body: the common scale of truth and predictions."""
    lo, hi = np.percentile(truth[body], [1.0, 99.0])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def slice_features(
    image2d: np.ndarray, body2d: np.ndarray, cfg: FeatureConfig = FeatureConfig()
) -> np.ndarray:
    """Feature vectors (n_tiles, n_features) of one normalised axial slice."""
    x = np.asarray(image2d, dtype=np.float64)
    responses = [x]
    responses += [ndi.gaussian_filter(x, s, mode="reflect") for s in cfg.smooth_sigmas]
    responses += [
        ndi.gaussian_gradient_magnitude(x, s, mode="reflect") for s in cfg.gradient_sigmas
    ]
    responses += [ndi.gaussian_laplace(x, s, mode="reflect") for s in cfg.log_sigmas]
    p = cfg.patch
    ny, nx = (x.shape[0] // p) * p, (x.shape[1] // p) * p

    def tiles(a: np.ndarray) -> np.ndarray:
        return a[:ny, :nx].reshape(ny // p, p, nx // p, p).swapaxes(1, 2).reshape(-1, p * p)

    keep = tiles(body2d.astype(np.float64)).mean(axis=1) >= cfg.min_body
    feats = []
    for r in responses:
        t = tiles(r)[keep]
        feats += [t.mean(axis=1), t.std(axis=1)]
    return np.stack(feats, axis=1) if feats and keep.any() else np.zeros((0, 2 * len(responses)))


def volume_features(
    image: np.ndarray,
    body: np.ndarray,
    liver: np.ndarray,
    scale: tuple[float, float],
    cfg: FeatureConfig = FeatureConfig(),
) -> np.ndarray:
    """Features of every liver-containing slice of a (z, y, x) volume on the truth's scale."""
    lo, hi = scale
    norm = (np.asarray(image, dtype=np.float64) - lo) / (hi - lo)
    rows = [slice_features(norm[k], body[k], cfg) for k in np.flatnonzero(liver.any(axis=(1, 2)))]
    return np.concatenate(rows) if rows else np.zeros((0, 18))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to samples `a` and `b` (rows are samples)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[0] < 2 or b.shape[0] < 2:
        return float("nan")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a = np.atleast_2d(np.cov(a, rowvar=False))
    s_b = np.atleast_2d(np.cov(b, rowvar=False))
    # tr((S_a S_b)^1/2) through the symmetric form S_b^1/2 S_a S_b^1/2 (eigh: stable, real)
    w, v = np.linalg.eigh(s_b)
    root_b = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_b @ s_a @ root_b)
    tr_cross = float(np.sqrt(np.clip(inner, 0, None)).sum())
    d = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_cross)
    return max(d, 0.0)

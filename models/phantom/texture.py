"""Band-limited random fields: the shared anatomical texture and per-acquisition imperfections.

The shared texture belongs to the patient (it moves with the tissue, so it is sampled at
reference coordinates); micro-texture, bias field and noise belong to one acquisition and are
drawn on the image grid from the realisation's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.phantom.grid import Grid


@dataclass
class SharedTexture:
    """Unit-variance band-limited field on a reference-space grid (mm)."""

    values: np.ndarray  # (nz, ny, nx) float32
    origin: np.ndarray  # xyz of values[0, 0, 0]
    step: float

    @classmethod
    def draw(
        cls, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, step: float, scale: float
    ) -> SharedTexture:
        n = np.ceil((hi - lo) / step).astype(int) + 2
        white = rng.standard_normal((n[2], n[1], n[0])).astype(np.float32)
        field = ndimage.gaussian_filter(white, sigma=scale / step, mode="wrap")
        field -= field.mean()
        field /= field.std() + 1e-12
        return cls(field.astype(np.float32), np.asarray(lo, dtype=float), step)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        idx = np.stack(
            [
                (z - self.origin[2]) / self.step,
                (y - self.origin[1]) / self.step,
                (x - self.origin[0]) / self.step,
            ]
        ).astype(np.float32)
        return ndimage.map_coordinates(self.values, idx, order=1, mode="nearest")


def correlated_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma_px: float
) -> np.ndarray:
    """Unit-variance Gaussian noise correlated in-plane by a Gaussian kernel of `sigma_px`.

    The variance is restored exactly from the discrete kernel's weights, so the per-voxel
    standard deviation stays 1 whatever the correlation.
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    if sigma_px <= 0:
        return white
    radius = int(np.ceil(4 * sigma_px))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_px) ** 2)
    k /= k.sum()
    out = ndimage.correlate1d(white, k.astype(np.float32), axis=-1, mode="wrap")
    out = ndimage.correlate1d(out, k.astype(np.float32), axis=-2, mode="wrap")
    out *= np.float32(1.0 / np.sum(k**2))  # (sum k^2)^2 for two axes, square-rooted
    return out


def micro_texture(rng: np.random.Generator, grid: Grid, scale_mm: float) -> np.ndarray:
    """Unit-variance per-acquisition texture on the image grid (correlation ~ scale_mm)."""
    white = rng.standard_normal(grid.shape, dtype=np.float32)
    dx, dy, dz = grid.spacing
    field = ndimage.gaussian_filter(white, sigma=(scale_mm / dz, scale_mm / dy, scale_mm / dx))
    field -= field.mean()
    field /= field.std() + 1e-12
    return field


def bias_field(
    rng: np.random.Generator, grid: Grid, amplitude: float, wavelength: float
) -> np.ndarray:
    """Smooth multiplicative field in [1 - amplitude, 1 + amplitude] (two slow plane waves)."""
    x, y, z = grid.coarse_points(10.0)
    f = np.zeros_like(x)
    for _ in range(2):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        k = 2 * np.pi / (wavelength * rng.uniform(0.8, 1.3))
        f += np.cos(k * (d[0] * x + d[1] * y + d[2] * z) + rng.uniform(0, 2 * np.pi))
    return (1.0 + amplitude * grid.upsample(f / 2.0)).astype(np.float32)

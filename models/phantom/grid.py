"""The image grid: voxel centres in LPS millimetres, and a coarse in-plane grid for smooth fields.

Arrays are (z, y, x) like SimpleITK's numpy views; direction is identity, so index i along x
runs to the patient's left, j along y posterior, k along z superior. The field of view is
centred on (0, 0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Grid:
    """n x n pixels over `fov` mm in-plane, `slices` slices over `fov_z` mm."""

    n: int
    slices: int
    fov: float
    fov_z: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.slices, self.n, self.n)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(dx, dy, dz) in mm."""
        return (self.fov / self.n, self.fov / self.n, self.fov_z / self.slices)

    @property
    def origin(self) -> tuple[float, float, float]:
        """Physical position (x, y, z) of voxel (0, 0, 0)'s centre."""
        dx, dy, dz = self.spacing
        return (-self.fov / 2 + dx / 2, -self.fov / 2 + dy / 2, -self.fov_z / 2 + dz / 2)

    @property
    def voxel_volume(self) -> float:
        dx, dy, dz = self.spacing
        return dx * dy * dz

    def axis(self, i: int) -> np.ndarray:
        """Voxel-centre coordinates along x (0), y (1) or z (2)."""
        count = (self.n, self.n, self.slices)[i]
        return (self.origin[i] + self.spacing[i] * np.arange(count)).astype(np.float64)

    def physical_min(self) -> tuple[float, float, float]:
        return self.origin

    def physical_max(self) -> tuple[float, float, float]:
        return tuple(float(self.axis(i)[-1]) for i in range(3))  # type: ignore[return-value]

    def index_range(
        self, lo: np.ndarray, hi: np.ndarray, margin: float = 0.0
    ) -> tuple[slice, ...] | None:
        """(z, y, x) slices of the voxels whose centres lie in [lo - margin, hi + margin]."""
        out = []
        for ax in (2, 1, 0):
            o, s = self.origin[ax], self.spacing[ax]
            count = (self.n, self.n, self.slices)[ax]
            a = int(np.floor((lo[ax] - margin - o) / s)) + 1
            b = int(np.floor((hi[ax] + margin - o) / s)) + 1
            a, b = max(a, 0), min(b, count)
            if a >= b:
                return None
            out.append(slice(a, b))
        return tuple(out)

    # -- coarse grid for smooth fields (motion, bias) ---------------------------------------
    def coarse_axis(self, i: int, step_mm: float) -> np.ndarray:
        full = self.axis(i)
        m = max(int(np.ceil((full[-1] - full[0]) / step_mm)) + 1, 2)
        return np.linspace(full[0], full[-1], m)

    def coarse_points(self, step_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, z) arrays of shape (slices, my, mx): coarse in-plane, every slice in z."""
        key = round(step_mm, 6)
        cx, cy = self.coarse_axis(0, key), self.coarse_axis(1, key)
        z, y, x = np.meshgrid(self.axis(2), cy, cx, indexing="ij")
        return x, y, z

    @cached_property
    def _interp_cache(self) -> dict:
        return {}

    def _matrix(self, i: int, coarse: np.ndarray) -> np.ndarray:
        key = (i, len(coarse))
        if key not in self._interp_cache:
            full = self.axis(i)
            pos = (full - coarse[0]) / (coarse[1] - coarse[0])
            j = np.clip(np.floor(pos).astype(int), 0, len(coarse) - 2)
            f = pos - j
            m = np.zeros((len(full), len(coarse)))
            m[np.arange(len(full)), j] = 1.0 - f
            m[np.arange(len(full)), j + 1] = f
            self._interp_cache[key] = m
        return self._interp_cache[key]

    def upsample(self, coarse: np.ndarray) -> np.ndarray:
        """Bilinear in-plane interpolation of a (slices, my, mx) coarse field to the grid."""
        mx = self._matrix(0, np.linspace(self.axis(0)[0], self.axis(0)[-1], coarse.shape[2]))
        my = self._matrix(1, np.linspace(self.axis(1)[0], self.axis(1)[-1], coarse.shape[1]))
        nz, cy, cx = coarse.shape
        tmp = (coarse.reshape(nz * cy, cx) @ mx.T).reshape(nz, cy, self.n)  # (slices, my, n)
        out = my @ tmp.transpose(1, 0, 2).reshape(cy, nz * self.n)  # one GEMM: (n, slices*n)
        return np.ascontiguousarray(out.reshape(self.n, nz, self.n).transpose(1, 0, 2), np.float32)

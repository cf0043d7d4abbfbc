"""Continuous shapes as approximate signed distances, evaluated on arrays of points.

Every shape answers `sdf(x, y, z) -> (sd, nx, ny, nz)`: the signed distance in mm (negative
inside) and the unit normal, at reference-space points (the respiratory warp is applied to the
points before they get here). The painter turns (sd, normal) into a voxel's covered fraction,
which is how partial volume is rendered without supersampling. `bbox()` bounds the shape in
reference space so it is only evaluated where it can be.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Arr = np.ndarray
SDF = tuple[Arr, Arr, Arr, Arr]
BIG = 1.0e4


def rotation(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> Arr:
    """Rotation matrix (columns: the local axes in world coordinates) from three angles (rad)."""
    cz, sz = np.cos(yaw), np.sin(yaw)
    cy, sy = np.cos(pitch), np.sin(pitch)
    cx, sx = np.cos(roll), np.sin(roll)
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    return rz @ ry @ rx


def fibonacci_sphere(n: int = 4000) -> Arr:
    """Nearly uniform unit vectors (n, 3): a quadrature for means over the sphere."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1.0 - 2.0 * i / n)
    theta = np.pi * (1.0 + 5.0**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


@dataclass
class RadialBumps:
    """A smooth radial perturbation of a star-shaped solid: r(dir) = 1 + amp * f(dir).

    f is a sum of a few cosines of the direction projected on random axes, scaled to unit
    standard deviation over the sphere, so `amp` is the relative boundary irregularity.
    """

    axes: Arr  # (K, 3) unit vectors
    freq: Arr  # (K,) angular frequencies (multiples of pi)
    phase: Arr  # (K,)
    amp: float
    norm: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator, amp: float, k: int = 5) -> RadialBumps:
        axes = rng.normal(size=(k, 3))
        axes /= np.linalg.norm(axes, axis=1, keepdims=True)
        bumps = cls(
            axes, rng.integers(1, 4, size=k).astype(float), rng.uniform(0, 2 * np.pi, k), amp
        )
        raw = bumps._raw(fibonacci_sphere(2000))
        bumps.norm = float(raw.std()) or 1.0
        return bumps

    def _raw(self, dirs: Arr) -> Arr:
        proj = dirs @ self.axes.T  # (n, K)
        return np.cos(np.pi * self.freq * proj + self.phase).sum(axis=1)

    def __call__(self, dx: Arr, dy: Arr, dz: Arr) -> Arr:
        """Radius factor at unit directions given as three arrays."""
        out = np.zeros_like(dx)
        for (ax, ay, az), f, p in zip(self.axes, self.freq, self.phase, strict=True):
            out += np.cos(np.pi * f * (ax * dx + ay * dy + az * dz) + p)
        return 1.0 + (self.amp / self.norm) * out

    def mean_cube(self) -> float:
        """Mean of r^3 over the sphere: the volume factor of the perturbed solid."""
        d = fibonacci_sphere(4000)
        r = 1.0 + (self.amp / self.norm) * self._raw(d)
        return float(np.mean(np.clip(r, 0.05, None) ** 3))


@dataclass
class Ellipsoid:
    """Rotated ellipsoid, optionally with a radial boundary perturbation (lesions)."""

    center: Arr
    axes: Arr
    rot: Arr = field(default_factory=lambda: np.eye(3))
    bumps: RadialBumps | None = None

    def bbox(self) -> tuple[Arr, Arr]:
        grow = 1.0 + (3.5 * self.bumps.amp if self.bumps is not None else 0.0)
        half = np.sqrt(((self.rot * self.axes[None, :]) ** 2).sum(axis=1)) * grow
        return self.center - half, self.center + half

    def volume(self) -> float:
        factor = self.bumps.mean_cube() if self.bumps is not None else 1.0
        return float(4.0 / 3.0 * np.pi * np.prod(self.axes) * factor)

    def local(self, x: Arr, y: Arr, z: Arr) -> tuple[Arr, Arr, Arr]:
        px, py, pz = x - self.center[0], y - self.center[1], z - self.center[2]
        r = self.rot
        u = (px * r[0, 0] + py * r[1, 0] + pz * r[2, 0]) / self.axes[0]
        v = (px * r[0, 1] + py * r[1, 1] + pz * r[2, 1]) / self.axes[1]
        w = (px * r[0, 2] + py * r[1, 2] + pz * r[2, 2]) / self.axes[2]
        return u, v, w

    def sdf(self, x: Arr, y: Arr, z: Arr, scale: Arr | None = None) -> SDF:
        """`scale` (array) multiplies the radius locally (low-frequency organ surface noise)."""
        u, v, w = self.local(x, y, z)
        q = np.sqrt(u * u + v * v + w * w) + 1e-6
        rho = 1.0
        if self.bumps is not None:
            rho = self.bumps(u / q, v / q, w / q)
        if scale is not None:
            rho = rho * scale
        # gradient of q in local coordinates: (u/a, v/b, w/c) / q
        gu, gv, gw = u / self.axes[0], v / self.axes[1], w / self.axes[2]
        r = self.rot
        nx = r[0, 0] * gu + r[0, 1] * gv + r[0, 2] * gw
        ny = r[1, 0] * gu + r[1, 1] * gv + r[1, 2] * gw
        nz = r[2, 0] * gu + r[2, 1] * gv + r[2, 2] * gw
        gnorm = np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-9
        sd = (q - rho) * q / gnorm
        return sd, nx / gnorm, ny / gnorm, nz / gnorm


@dataclass
class EllipticCylinder:
    """An ellipse in the axial plane extruded between zmin and zmax (body, spine, aorta)."""

    cx: float
    cy: float
    ax: float
    ay: float
    zmin: float = -BIG
    zmax: float = BIG

    def bbox(self) -> tuple[Arr, Arr]:
        return (
            np.array([self.cx - self.ax, self.cy - self.ay, self.zmin]),
            np.array([self.cx + self.ax, self.cy + self.ay, self.zmax]),
        )

    def sdf(self, x: Arr, y: Arr, z: Arr) -> SDF:
        u, v = (x - self.cx) / self.ax, (y - self.cy) / self.ay
        q = np.sqrt(u * u + v * v) + 1e-6
        gx, gy = u / self.ax, v / self.ay
        gnorm = np.sqrt(gx * gx + gy * gy) + 1e-9
        sd = (q - 1.0) * q / gnorm
        nx, ny, nz = gx / gnorm, gy / gnorm, np.zeros_like(sd)
        if self.zmin > -BIG or self.zmax < BIG:
            sz = np.maximum(self.zmin - z, z - self.zmax)
            top = sz > sd
            sd = np.where(top, sz, sd)
            nx, ny, nz = np.where(top, 0, nx), np.where(top, 0, ny), np.where(top, 1, nz)
        return sd, nx, ny, nz


@dataclass
class Capsule:
    """A tube of radius r around the segment p0-p1 (vessels, thrombus)."""

    p0: Arr
    p1: Arr
    radius: float

    def bbox(self) -> tuple[Arr, Arr]:
        return np.minimum(self.p0, self.p1) - self.radius, np.maximum(
            self.p0, self.p1
        ) + self.radius

    def volume(self) -> float:
        length = float(np.linalg.norm(self.p1 - self.p0))
        return float(np.pi * self.radius**2 * length + 4.0 / 3.0 * np.pi * self.radius**3)

    def sdf(self, x: Arr, y: Arr, z: Arr) -> SDF:
        d = self.p1 - self.p0
        dd = float(d @ d) or 1e-9
        px, py, pz = x - self.p0[0], y - self.p0[1], z - self.p0[2]
        t = np.clip((px * d[0] + py * d[1] + pz * d[2]) / dd, 0.0, 1.0)
        ex, ey, ez = px - t * d[0], py - t * d[1], pz - t * d[2]
        dist = np.sqrt(ex * ex + ey * ey + ez * ez) + 1e-6
        return dist - self.radius, ex / dist, ey / dist, ez / dist


@dataclass
class Cone:
    """A solid cone (apex, unit axis, height, half-angle): the wedge of an AP shunt."""

    apex: Arr
    axis: Arr
    height: float
    half_angle: float

    def bbox(self) -> tuple[Arr, Arr]:
        base = self.apex + self.axis * self.height
        r = self.height * np.tan(self.half_angle)
        return np.minimum(self.apex, base) - r, np.maximum(self.apex, base) + r

    def volume(self) -> float:
        return float(np.pi * (self.height * np.tan(self.half_angle)) ** 2 * self.height / 3.0)

    def sdf(self, x: Arr, y: Arr, z: Arr) -> SDF:
        a = self.axis
        px, py, pz = x - self.apex[0], y - self.apex[1], z - self.apex[2]
        s = px * a[0] + py * a[1] + pz * a[2]
        rx, ry, rz = px - s * a[0], py - s * a[1], pz - s * a[2]
        rho = np.sqrt(rx * rx + ry * ry + rz * rz) + 1e-6
        ca, sa = np.cos(self.half_angle), np.sin(self.half_angle)
        side = rho * ca - s * sa
        cap = s - self.height
        sd = np.maximum(side, cap)
        # lateral normal: ca * radial - sa * axis; cap normal: axis
        use_cap = cap >= side
        nx = np.where(use_cap, a[0], ca * rx / rho - sa * a[0])
        ny = np.where(use_cap, a[1], ca * ry / rho - sa * a[1])
        nz = np.where(use_cap, a[2], ca * rz / rho - sa * a[2])
        return sd, nx, ny, nz


def intersect(first: SDF, second: SDF) -> SDF:
    """Intersection of two evaluated shapes (max of distances, normal of the active one)."""
    take = second[0] > first[0]
    return tuple(np.where(take, b, a) for a, b in zip(first, second, strict=True))  # type: ignore[return-value]


def subtract(first: SDF, second: SDF, gap: float = 0.0) -> SDF:
    """`first` minus `second` (grown by `gap` mm)."""
    neg = (-(second[0] + gap), -second[1], -second[2], -second[3])
    return intersect(first, neg)


def union(first: SDF, second: SDF) -> SDF:
    """Union of two evaluated shapes (min of distances)."""
    take = second[0] < first[0]
    return tuple(np.where(take, b, a) for a, b in zip(first, second, strict=True))  # type: ignore[return-value]

"""Respiratory motion: the Lujan breathing trace and a smooth B-spline displacement field.

The anatomy is defined at end-exhale (the reference). At breathing phase t in [0, 1) the
tissue at reference point X sits at X + a(t) g(X), with

  a(t) = cos^(2n)(pi t - phi)           (Lujan et al. 2003: z(t) = z0 - b cos^(2n)(...))
  g(X) = (0, -b_ap w(X), -b w(X))        (inferior and anterior on inspiration, LPS)

and w a cubic B-spline on a coarse control grid whose coefficients are 1 at the dome, decay
caudally and fall to 0 over the spine and the posterior body wall (the sliding interface).
Rendering at a phase needs the inverse map p -> X, solved by fixed-point iteration on a coarse
grid and interpolated linearly to the image grid; the true CT->MR field is evaluated from the
same maps, so it is exact for what was rendered up to that interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.phantom.anatomy import Body, Liver
from models.phantom.config import MotionConfig
from models.phantom.grid import Grid


@dataclass
class Breathing:
    """Lujan trace parameters of one patient."""

    amplitude_mm: float  # b, superior-inferior
    ap_mm: float  # anterior-posterior amplitude
    exponent: int  # n
    period_s: float
    phase0: float  # phi

    def weight(self, t: float) -> float:
        """a(t) in [0, 1]: 0 at end-exhale, 1 at end-inhale."""
        return float(np.cos(np.pi * t - self.phase0) ** (2 * self.exponent))

    def si_mm(self, t: float) -> float:
        """Superior-inferior displacement of the dome at phase t (negative = inferior)."""
        return -self.amplitude_mm * self.weight(t)


@dataclass
class MotionField:
    """The B-spline weight w (control-grid coefficients) plus the breathing amplitudes.

    For speed, w is evaluated once from its cubic B-spline on a dense sampling grid and
    interpolated trilinearly from there; forward map, inverse map and true fields all use that
    same function, so they stay consistent with each other.
    """

    coef: np.ndarray  # (nz, ny, nx) B-spline coefficients of w
    origin: np.ndarray  # xyz of control point (0, 0, 0)
    spacing: float
    breathing: Breathing
    sample_mm: float = 6.0

    def __post_init__(self) -> None:
        lo = self.origin
        hi = self.origin + self.spacing * (np.array(self.coef.shape[::-1]) - 1)
        n = np.floor((hi - lo) / self.sample_mm).astype(int) + 1
        axes = [lo[i] + self.sample_mm * np.arange(n[i]) for i in range(3)]
        z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
        idx = np.stack(
            [(z - lo[2]) / self.spacing, (y - lo[1]) / self.spacing, (x - lo[0]) / self.spacing]
        )
        self.dense = ndimage.map_coordinates(
            self.coef, idx, order=3, prefilter=False, mode="nearest"
        ).astype(np.float32)

    def weight_at(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        h = self.sample_mm
        idx = np.stack(
            [(z - self.origin[2]) / h, (y - self.origin[1]) / h, (x - self.origin[0]) / h]
        )
        return ndimage.map_coordinates(self.dense, idx, order=1, mode="nearest")

    def forward(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, a: float):
        """Phase position of reference points at breathing weight a."""
        if a == 0.0:
            return x, y, z
        w = self.weight_at(x, y, z)
        b = self.breathing
        return x, y - a * b.ap_mm * w, z - a * b.amplitude_mm * w

    def inverse(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, a: float, iterations: int):
        """Reference points of phase points (fixed-point iteration X = p - a g(X))."""
        if a == 0.0:
            return x, y, z
        b = self.breathing
        rx, ry, rz = x, y, z
        for _ in range(iterations):
            w = self.weight_at(rx, ry, rz)
            ry, rz = y + a * b.ap_mm * w, z + a * b.amplitude_mm * w
        return rx, ry, rz


def draw_breathing(rng: np.random.Generator, cfg: MotionConfig) -> Breathing:
    b = float(rng.uniform(*cfg.amplitude_si_mm))
    return Breathing(
        amplitude_mm=b,
        ap_mm=b * cfg.ap_ratio,
        exponent=int(rng.integers(cfg.exponent_n[0], cfg.exponent_n[1] + 1)),
        period_s=float(rng.uniform(*cfg.period_s)),
        phase0=float(rng.uniform(0.0, np.pi)),
    )


def draw_phases(rng: np.random.Generator, br: Breathing, cfg: MotionConfig) -> tuple[float, float]:
    """CT and MR breathing phases whose SI positions differ by at least `min_phase_gap_mm`."""
    gap = min(cfg.min_phase_gap_mm, 0.9 * br.amplitude_mm)
    for _ in range(10000):
        t_ct, t_mr = (float(v) for v in rng.uniform(0.0, 1.0, 2))
        if abs(br.si_mm(t_ct) - br.si_mm(t_mr)) >= gap:
            return t_ct, t_mr
    raise RuntimeError("could not draw two distinct breathing phases")  # pragma: no cover


def build_field(
    body: Body, liver: Liver, grid: Grid, br: Breathing, cfg: MotionConfig
) -> MotionField:
    """B-spline coefficients of w: 1 at the dome, `caudal_decay` at the liver tip, 0 outside
    the abdominal cavity and behind the front of the spine."""
    h = cfg.control_spacing_mm
    half = np.array([grid.fov / 2, grid.fov / 2, grid.fov_z / 2])  # grid-independent
    lo, hi = -half - 2 * h, half + 2 * h
    n = np.ceil((hi - lo) / h).astype(int) + 1
    xs, ys, zs = (lo[i] + h * np.arange(n[i]) for i in range(3))
    z, y, x = np.meshgrid(zs, ys, xs, indexing="ij")
    lo_l = liver.bbox()[0]
    z_top, z_tip = liver.diaphragm.right[2], lo_l[2]
    s = np.clip((z - z_tip) / max(z_top - z_tip, 1.0), 0.0, 1.0)
    wz = cfg.caudal_decay + (1.0 - cfg.caudal_decay) * (3 * s**2 - 2 * s**3)
    cav = body.cavity
    q = np.sqrt(((x - cav.cx) / cav.ax) ** 2 + ((y - cav.cy) / cav.ay) ** 2)
    # The B-spline spreads a coefficient over +-2 control spacings, so the ramps start inside:
    # the spine and the posterior body wall stay (nearly) still while the liver in front of
    # them moves (the sliding interface, smoothed). The anterior wall may rise with the liver.
    depth = (1.0 - q) * min(cav.ax, cav.ay) - 0.5 * h  # ~ mm inside the cavity wall
    posterior = np.clip(y / 40.0, 0.0, 1.0)
    w_cav = 1.0 - posterior * (1.0 - np.clip(depth / cfg.sliding_width_mm, 0.0, 1.0))
    # distance outside the vertebral body block and the paravertebral block behind it
    vert = np.maximum(np.abs(x) - body.vertebra_cortex.ax, body.spine_front - y)
    para = np.maximum(np.abs(x) - body.spine_half_width, body.vertebra_cortex.cy - y)
    outside = np.minimum(vert, para)
    w_post = np.clip((outside - 0.75 * h) / cfg.sliding_width_mm, 0.0, 1.0)
    coef = (wz * w_cav * w_post).astype(np.float64)
    return MotionField(coef=coef, origin=lo, spacing=h, breathing=br)


def phase_maps(field: MotionField, grid: Grid, a: float, cfg: MotionConfig):
    """Reference coordinates (x, y, z arrays on the image grid) of each voxel at weight a,
    and the coarse-grid pieces needed to evaluate true fields."""
    cx, cy, cz = grid.coarse_points(cfg.coarse_mm)
    rx, ry, rz = field.inverse(cx, cy, cz, a, cfg.inverse_iterations)
    return (rx, ry, rz), (cx, cy, cz)


def true_field(
    field: MotionField,
    grid: Grid,
    coarse_ref: tuple[np.ndarray, np.ndarray, np.ndarray],
    coarse_pts: tuple[np.ndarray, np.ndarray, np.ndarray],
    a_to: float,
) -> np.ndarray:
    """Displacement u (z, y, x, 3) in mm (x, y, z components, LPS) on the image grid: the tissue
    at image point p of the source phase is at p + u(p) at weight a_to."""
    rx, ry, rz = coarse_ref
    fx, fy, fz = field.forward(rx, ry, rz, a_to)
    px, py, pz = coarse_pts
    comps = [grid.upsample(fx - px), grid.upsample(fy - py), grid.upsample(fz - pz)]
    return np.stack(comps, axis=-1).astype(np.float32)

"""One synthetic patient drawn from a seed: body, organs, liver, as continuous shapes.

Coordinates are LPS millimetres (x to the patient's left, y posterior, z superior), centred on
the field of view, in the *reference* respiratory state (end-exhale). Vessels and lesions are
added by `vessels.py` and `lesions.py`; the whole patient is `Patient`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.phantom.config import PhantomConfig
from models.phantom.shapes import (
    SDF,
    Arr,
    Capsule,
    Ellipsoid,
    EllipticCylinder,
    intersect,
    rotation,
    subtract,
)


@dataclass
class Diaphragm:
    """Two domes (right higher): the surface z_d(x, y) under which the liver sits."""

    right: tuple[float, float, float]  # apex x, y, z
    left: tuple[float, float, float]
    curvature: float  # 1 / (2 R) in 1/mm

    def height(self, x: Arr, y: Arr) -> Arr:
        xr, yr, zr = self.right
        xl, yl, zl = self.left
        k = self.curvature
        return np.maximum(
            zr - k * ((x - xr) ** 2 + (y - yr) ** 2), zl - k * ((x - xl) ** 2 + (y - yl) ** 2)
        )

    def above(self, x: Arr, y: Arr, z: Arr, offset: float = 0.0) -> SDF:
        """Region above the surface lowered by `offset` (negative sd inside)."""
        sd = self.height(x, y) - offset - z
        zero = np.zeros_like(sd)
        return sd, zero, zero, zero + 1.0


@dataclass
class SurfaceNoise:
    """Low-frequency noise of position (random plane waves), for the liver surface."""

    k: Arr  # (K, 3) wave vectors (rad/mm)
    phase: Arr
    amp: float

    @classmethod
    def draw(cls, rng: np.random.Generator, amp: float, wavelength: float, n: int = 6):
        dirs = rng.normal(size=(n, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        lengths = wavelength * rng.uniform(0.7, 1.4, n)
        return cls(dirs * (2 * np.pi / lengths[:, None]), rng.uniform(0, 2 * np.pi, n), amp)

    def __call__(self, x: Arr, y: Arr, z: Arr) -> Arr:
        out = np.zeros_like(x)
        for (kx, ky, kz), p in zip(self.k, self.phase, strict=True):
            out += np.sin(kx * x + ky * y + kz * z + p)
        return 1.0 + self.amp * np.sqrt(2.0 / len(self.phase)) * out


@dataclass
class Liver:
    """Union of ellipsoids (right lobe, left lobe, caudate) with low-frequency surface noise,
    under the diaphragm, inside the abdominal cavity, minus its neighbours."""

    lobes: list[Ellipsoid]
    noise: SurfaceNoise
    diaphragm: Diaphragm
    diaphragm_mm: float
    cavity: EllipticCylinder
    exclude: list[Ellipsoid | EllipticCylinder] = field(default_factory=list)
    gap_mm: float = 2.0

    def bbox(self) -> tuple[Arr, Arr]:
        los, his = zip(*(lobe.bbox() for lobe in self.lobes), strict=True)
        grow = 1.0 + 3.0 * self.noise.amp
        lo, hi = np.min(los, axis=0), np.max(his, axis=0)
        c = (lo + hi) / 2
        return c - (c - lo) * grow, c + (hi - c) * grow

    def sdf(self, x: Arr, y: Arr, z: Arr) -> SDF:
        scale = self.noise(x, y, z)
        out = None
        for lobe in self.lobes:
            s = lobe.sdf(x, y, z, scale=scale)
            out = s if out is None else _union(out, s)
        out = subtract(out, self.diaphragm.above(x, y, z, self.diaphragm_mm))
        cav = self.cavity.sdf(x, y, z)
        out = intersect(out, (cav[0] + 3.0, cav[1], cav[2], cav[3]))
        out = [np.asarray(o) for o in out]
        for other in self.exclude:
            # only points near the other organ's box and not far outside the liver can change
            lo, hi = other.bbox()
            reach = self.gap_mm + 2.0
            m = out[0] < 6.0
            for axis, c in enumerate((x, y, z)):
                m &= (c >= lo[axis] - reach) & (c <= hi[axis] + reach)
            idx = np.nonzero(m)
            if len(idx[0]) == 0:
                continue
            sub = subtract(
                tuple(o[idx] for o in out), other.sdf(x[idx], y[idx], z[idx]), self.gap_mm
            )
            for o, v in zip(out, sub, strict=True):
                o[idx] = v
        return tuple(out)  # type: ignore[return-value]


def _union(a: SDF, b: SDF) -> SDF:
    take = b[0] < a[0]
    return tuple(np.where(take, bb, aa) for aa, bb in zip(a, b, strict=True))  # type: ignore[return-value]


@dataclass
class Body:
    """Everything except liver internals: the painter's list is built from these."""

    outer: EllipticCylinder
    muscle: EllipticCylinder
    cavity: EllipticCylinder
    vertebra_cortex: EllipticCylinder
    vertebra_core: EllipticCylinder
    canal: EllipticCylinder
    spinous: EllipticCylinder
    paravertebral: list[EllipticCylinder]
    aorta: EllipticCylinder
    ivc: EllipticCylinder
    spleen: Ellipsoid
    kidneys: list[tuple[Ellipsoid, Ellipsoid]]  # (whole, medulla) right then left
    stomach: Ellipsoid
    stomach_lumen: Ellipsoid
    stomach_air_level: float  # y below which (anterior) the lumen holds air
    gallbladder: Ellipsoid
    bowel: list[tuple[Capsule, Capsule, bool]]  # (wall, lumen, holds air)
    diaphragm: Diaphragm
    spine_front: float  # y of the vertebral body's anterior surface
    spine_half_width: float  # |x| reach of vertebra and paravertebral muscles


def uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def draw_body_and_liver(rng: np.random.Generator, cfg: PhantomConfig) -> tuple[Body, Liver]:
    """Draw the trunk, the organs and a liver scaled to its drawn target volume."""
    b, o = cfg.body, cfg.organs
    jit = o.organ_scale_jitter

    def j() -> float:
        return float(1.0 + rng.uniform(-jit, jit))

    ax, ay = uniform(rng, b.width_mm) / 2, uniform(rng, b.depth_mm) / 2
    fat, wall = uniform(rng, b.fat_mm), uniform(rng, b.muscle_wall_mm)
    outer = EllipticCylinder(0.0, 0.0, ax, ay)
    muscle = EllipticCylinder(0.0, 0.0, ax - fat, ay - fat)
    cav = EllipticCylinder(0.0, 0.0, ax - fat - wall, ay - fat - wall)
    rv = uniform(rng, b.vertebra_radius_mm)
    yv = ay - fat - 72.0
    vertebra_cortex = EllipticCylinder(0.0, yv, rv * 1.1, rv)
    vertebra_core = EllipticCylinder(0.0, yv, rv * 1.1 - b.cortical_mm, rv - b.cortical_mm)
    canal = EllipticCylinder(
        0.0, yv + rv + b.canal_radius_mm + 3.0, b.canal_radius_mm, b.canal_radius_mm
    )
    spinous = EllipticCylinder(0.0, canal.cy + b.canal_radius_mm + 16.0, 6.0, 16.0)
    pa, pb = b.paravertebral_mm
    para = [EllipticCylinder(s * (pa + 9.0), yv + rv + pb + 4.0, pa, pb) for s in (-1.0, 1.0)]
    ra = uniform(rng, o.aorta_radius_mm)
    aorta = EllipticCylinder(rv * 0.6, yv - rv - ra - 3.0, ra, ra)
    ri = uniform(rng, o.ivc_radius_mm)
    ivc = EllipticCylinder(-rv * 1.3 - ri * 0.6, yv - rv - ri * 0.7 - 6.0, ri * 1.25, ri * 0.8)

    # liver geometry (before volume scaling): right lobe, left lobe, caudate
    z_top = cfg.grid.fov_z_mm / 2.0 - 30.0
    cax = cav.ax
    right_axes = np.array([0.52 * cax, 78.0 * j(), 74.0 * j()])
    right_c = np.array([-0.40 * cax, -4.0, z_top - right_axes[2] + 8.0])
    left_axes = np.array([62.0 * j(), 36.0 * j(), 38.0 * j()])
    left_c = np.array([right_c[0] + 0.52 * cax + 20.0, -42.0, z_top - 46.0])
    caud_axes = np.array([22.0, 20.0, 34.0])
    caud_c = np.array([ivc.cx + 4.0, ivc.cy - 2.0, z_top - 55.0])
    lobe_rot = [rotation(rng.uniform(-0.15, 0.15), rng.uniform(-0.12, 0.12)) for _ in range(3)]

    diaphragm = Diaphragm(
        right=(right_c[0], right_c[1], z_top + b.diaphragm_mm),
        left=(left_c[0] + 40.0, left_c[1] + 30.0, z_top + b.diaphragm_mm - 18.0),
        curvature=1.0 / (2.0 * 130.0),
    )

    # neighbours (fixed, not scaled with the liver)
    sp_axes = np.array(o.spleen_axes_mm) * j()
    spleen = Ellipsoid(
        np.array([cav.ax - sp_axes[0] - 4.0, yv - 8.0, z_top - 40.0]),
        sp_axes,
        rotation(-0.5 + rng.uniform(-0.15, 0.15)),
    )
    kid = []
    for side, dz in ((-1.0, -112.0), (1.0, -100.0)):
        axes = np.array(o.kidney_axes_mm) * j()
        centre = np.array([side * (rv + 48.0 + axes[0]), yv + 8.0, z_top + dz])
        rot = rotation(side * 0.35, side * 0.12)
        whole = Ellipsoid(centre, axes, rot)
        med = Ellipsoid(centre, np.maximum(axes - o.kidney_cortex_mm, 3.0), rot)
        kid.append((whole, med))
    st_axes = np.array(o.stomach_axes_mm) * j()
    stomach = Ellipsoid(
        np.array([rv + 20.0 + st_axes[0], -5.0, z_top - 58.0]), st_axes, rotation(0.3, 0.25)
    )
    lumen = Ellipsoid(stomach.center, np.maximum(st_axes - o.stomach_wall_mm, 4.0), stomach.rot)
    air_frac = uniform(rng, o.stomach_air_fraction)
    air_level = stomach.center[1] - st_axes[1] + 2.0 * st_axes[1] * air_frac

    liver = Liver(
        lobes=[],
        noise=SurfaceNoise.draw(rng, o.liver_perturbation, o.liver_perturbation_wavelength_mm),
        diaphragm=diaphragm,
        diaphragm_mm=b.diaphragm_mm,
        cavity=cav,
        exclude=[kid[0][0], spleen, stomach, ivc, vertebra_cortex, para[0]],
    )
    target = uniform(rng, o.liver_volume_l) * 1e6
    gb_axes = np.array(o.gallbladder_axes_mm) * j()
    gb_rot = rotation(0.3, -0.35)

    def build(scale: float) -> None:
        liver.lobes = [
            Ellipsoid(right_c, right_axes * scale, lobe_rot[0]),
            Ellipsoid(right_c + (left_c - right_c) * scale, left_axes * scale, lobe_rot[1]),
            Ellipsoid(caud_c, caud_axes * scale, lobe_rot[2]),
        ]
        gb_c = right_c + scale * np.array(
            [0.55 * right_axes[0], -0.62 * right_axes[1], -0.50 * right_axes[2]]
        )
        liver.exclude = [*liver.exclude[:6], Ellipsoid(gb_c, gb_axes, gb_rot)]

    scale = 1.0
    for _ in range(4):
        build(scale)
        vol = shape_volume(liver, 4.0)
        scale *= (target / vol) ** (1.0 / 3.0)
    build(scale)
    gallbladder = liver.exclude[6]
    bowel = []
    lo_l = liver.bbox()[0]
    for _ in range(int(rng.integers(o.bowel_loops[0], o.bowel_loops[1] + 1))):
        r = uniform(rng, o.bowel_radius_mm)
        length = uniform(rng, o.bowel_length_mm)
        centre = np.array(
            [
                rng.uniform(-0.65, 0.65) * cav.ax,
                rng.uniform(-0.85 * cav.ay + r, yv - rv - r - 8.0),
                rng.uniform(-cfg.grid.fov_z_mm / 2 + 10.0, max(lo_l[2] + 60.0, -40.0)),
            ]
        )
        d = rng.normal(size=3) * np.array([1.0, 0.6, 0.4])
        d /= np.linalg.norm(d)
        p0, p1 = centre - d * length / 2, centre + d * length / 2
        lumen_r = max(r - o.bowel_wall_mm, 2.0)
        bowel.append(
            (
                Capsule(p0, p1, r),
                Capsule(p0, p1, lumen_r),
                bool(rng.uniform() < o.bowel_air_probability),
            )
        )
    body = Body(
        outer=outer,
        muscle=muscle,
        cavity=cav,
        vertebra_cortex=vertebra_cortex,
        vertebra_core=vertebra_core,
        canal=canal,
        spinous=spinous,
        paravertebral=para,
        aorta=aorta,
        ivc=ivc,
        spleen=spleen,
        kidneys=kid,
        stomach=stomach,
        stomach_lumen=lumen,
        stomach_air_level=float(air_level),
        gallbladder=gallbladder,  # type: ignore[arg-type]
        bowel=bowel,
        diaphragm=diaphragm,
        spine_front=yv - rv,
        spine_half_width=float(para[1].cx + para[1].ax),
    )
    return body, liver


def shape_volume(shape, step: float) -> float:
    """Volume (mm^3) of a shape by counting points of a regular grid inside it."""
    lo, hi = shape.bbox()
    axes = [np.arange(lo[i] + step / 2, hi[i], step, dtype=np.float64) for i in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    sd = shape.sdf(x, y, z)[0]
    return float(np.count_nonzero(sd < 0) * step**3)

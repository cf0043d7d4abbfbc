"""Lesions inside the liver: HCC (with satellites), hemangioma, metastasis, cyst, portal vein
tumour thrombus (PVTT) and arterio-portal shunts (pseudo-lesions).

Each lesion is a continuous shape whose volume is known in closed form (or by quadrature of its
radial perturbation), so `diameter_mm` in lesions.json is the exact equivalent-sphere diameter
of the shape that is rendered, independent of the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.phantom.anatomy import Liver
from models.phantom.config import LesionConfig
from models.phantom.shapes import Capsule, Cone, Ellipsoid, RadialBumps, fibonacci_sphere, rotation
from models.phantom.vessels import PORTAL, Segment


@dataclass
class Lesion:
    """One lesion: its shape in reference space, and what lesions.json says about it."""

    id: int
    type: str
    shape: Ellipsoid | Capsule | Cone
    parent: int | None = None
    core: Ellipsoid | None = None  # inner part of rim-enhancing lesions (metastasis, hemangioma)
    nodules: RadialBumps | None = None  # hemangioma's peripheral nodular pattern

    @property
    def pseudo(self) -> bool:
        return self.type == "ap_shunt"

    def volume(self) -> float:
        return self.shape.volume()

    def diameter(self) -> float:
        return float((6.0 * self.volume() / np.pi) ** (1.0 / 3.0))

    def centroid(self) -> np.ndarray:
        s = self.shape
        if isinstance(s, Ellipsoid):
            d = fibonacci_sphere(4000)
            rho = s.bumps(d[:, 0], d[:, 1], d[:, 2]) if s.bumps is not None else np.ones(len(d))
            rho = np.clip(rho, 0.05, None)
            local = 0.75 * (rho[:, None] ** 4 * d).mean(axis=0) / (rho**3).mean()
            return s.center + s.rot @ (local * s.axes)
        if isinstance(s, Capsule):
            return (s.p0 + s.p1) / 2.0
        return s.apex + s.axis * 0.75 * s.height  # cone: 3/4 of the height from the apex

    def bounding_radius(self) -> float:
        lo, hi = self.shape.bbox()
        return float(np.linalg.norm(hi - lo) / 2.0)


def _blob(
    rng: np.random.Generator, centre: np.ndarray, diameter: float, irregularity: float
) -> Ellipsoid:
    """An irregular ellipsoid whose equivalent-sphere diameter is exactly `diameter`."""
    aspect = rng.uniform(0.8, 1.2, 3)
    bumps = RadialBumps.draw(rng, irregularity)
    shape = Ellipsoid(centre, aspect, rotation(*rng.uniform(0, np.pi, 3)), bumps)
    target = np.pi / 6.0 * diameter**3
    shape.axes = aspect * (target / shape.volume()) ** (1.0 / 3.0)
    return shape


def _inside(liver: Liver, pts: np.ndarray, margin: float) -> bool:
    sd = liver.sdf(pts[:, 0], pts[:, 1], pts[:, 2])[0]
    return bool(np.all(sd < -margin))


def _fits(lesions: list[Lesion], centre: np.ndarray, radius: float, margin: float) -> bool:
    for other in lesions:
        if np.linalg.norm(other.centroid() - centre) < other.bounding_radius() + radius + margin:
            return False
    return True


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_lesions(
    rng: np.random.Generator, liver: Liver, segments: list[Segment], cfg: LesionConfig
) -> list[Lesion]:
    """Primary lesions, then satellites, PVTT and shunts; ids are 1..N in that order."""
    lesions: list[Lesion] = []
    lo, hi = liver.bbox()
    types = sorted(cfg.type_weights)
    weights = np.array([cfg.type_weights[t] for t in types], dtype=float)
    n = int(rng.integers(cfg.count[0], cfg.count[1] + 1))
    if n and weights.sum() > 0:
        weights /= weights.sum()
    else:
        n = 0
    for _ in range(n):
        kind = types[int(rng.choice(len(types), p=weights))]
        for _attempt in range(60):
            d = _log_uniform(rng, *cfg.diameter_mm)
            centre = rng.uniform(lo, hi)
            shape = _blob(rng, centre, d, cfg.irregularity)
            radius = float(np.max(shape.axes)) * (1.0 + 3.5 * cfg.irregularity)
            if not _inside(liver, centre[None], radius + cfg.margin_mm):
                continue
            if not _fits(lesions, centre, radius, cfg.margin_mm):
                continue
            lesion = Lesion(len(lesions) + 1, kind, shape)
            if kind in ("metastasis", "hemangioma"):
                lesion.core = Ellipsoid(
                    shape.center, shape.axes * (1.0 - cfg.rim_fraction), shape.rot, shape.bumps
                )
            if kind == "hemangioma":
                lesion.nodules = RadialBumps.draw(rng, 1.0, k=4)
            lesions.append(lesion)
            break
    # satellites around some HCCs
    for parent in [les for les in lesions if les.type == "hcc"]:
        if rng.uniform() >= cfg.satellite_probability:
            continue
        for _ in range(int(rng.integers(cfg.satellites_per_hcc[0], cfg.satellites_per_hcc[1] + 1))):
            for _attempt in range(40):
                d = float(rng.uniform(*cfg.satellite_diameter_mm))
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                gap = rng.uniform(*cfg.satellite_distance_mm)
                centre = parent.centroid() + direction * (parent.bounding_radius() + gap + d / 2)
                shape = _blob(rng, centre, d, cfg.irregularity * 0.5)
                radius = float(np.max(shape.axes)) * (1.0 + 1.75 * cfg.irregularity)
                if not _inside(liver, centre[None], radius + 1.0):
                    continue
                if not _fits(lesions, centre, radius, 1.0):
                    continue
                lesions.append(Lesion(len(lesions) + 1, "satellite", shape, parent=parent.id))
                break
    # portal vein tumour thrombus in some HCC patients
    if any(les.type == "hcc" for les in lesions) and rng.uniform() < cfg.pvtt_probability:
        candidates = [
            s for s in segments if s.tree == PORTAL and s.generation in (1, 2) and s.radius >= 2.5
        ]
        for _attempt in range(20):
            if not candidates:
                break
            seg = candidates[int(rng.integers(len(candidates)))]
            seg_len = float(np.linalg.norm(seg.p1 - seg.p0))
            length = min(float(rng.uniform(*cfg.pvtt_length_mm)), 0.8 * seg_len)
            t0 = rng.uniform(0.0, max(seg_len - length, 0.0) / seg_len)
            d = (seg.p1 - seg.p0) / seg_len
            p0 = seg.p0 + d * (t0 * seg_len + seg.radius)
            p1 = p0 + d * max(length - 2 * seg.radius, 1.0)
            shape = Capsule(p0, p1, 0.95 * seg.radius)
            centre = (p0 + p1) / 2
            if _fits(
                lesions, centre, float(np.linalg.norm(p1 - p0)) / 2 + seg.radius, cfg.margin_mm
            ):
                lesions.append(Lesion(len(lesions) + 1, "pvtt", shape))
                break
    # arterio-portal shunt: a subcapsular wedge, enhancing on arterial CT only
    if rng.uniform() < cfg.ap_shunt_probability:
        shunt = _draw_shunt(rng, liver, lesions, cfg)
        if shunt is not None:
            lesions.append(Lesion(len(lesions) + 1, "ap_shunt", shunt))
    return lesions


def _draw_shunt(
    rng: np.random.Generator, liver: Liver, lesions: list[Lesion], cfg: LesionConfig
) -> Cone | None:
    lo, hi = liver.bbox()
    unit = np.array([[0, 0, 0]] + [list(p) for p in fibonacci_sphere(60)], dtype=float)
    for _attempt in range(400):
        base = rng.uniform(lo, hi)
        sd, nx, ny, nz = (a[0] for a in liver.sdf(base[None, 0], base[None, 1], base[None, 2]))
        if not (-12.0 < sd < -3.0):
            continue
        axis = np.array([nx, ny, nz])
        axis /= np.linalg.norm(axis) + 1e-12
        height = float(rng.uniform(*cfg.ap_shunt_length_mm))
        angle = float(np.deg2rad(rng.uniform(*cfg.ap_shunt_half_angle_deg)))
        apex = base - axis * height
        cone = Cone(apex, axis, height, angle)
        # sample the cone: along the axis and over its base disc
        t = np.linspace(0.1, 1.0, 6)
        perp = unit - (unit @ axis)[:, None] * axis[None, :]
        pts = np.concatenate(
            [apex + axis * (h * height) + perp * (h * height * np.tan(angle)) for h in t]
        )
        if not _inside(liver, pts, 1.5):
            continue
        centre = apex + axis * 0.6 * height
        if _fits(lesions, centre, height * 0.6 + height * np.tan(angle), cfg.margin_mm):
            return cone
    return None

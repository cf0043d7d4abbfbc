"""Portal and hepatic vein trees grown by recursive branching under Murray's law.

Every bifurcation splits a parent of radius r0 into children r1, r2 with r0^3 = r1^3 + r2^3
exactly: the minor child takes a fraction alpha of r0^3 (alpha drawn so the finest branches
reach `min_radius_mm` after the drawn number of generations), the major child the rest.
Segment length is proportional to radius; directions are random and re-drawn until the branch
stays inside the liver (the trees are clipped to it when rasterised too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.phantom.anatomy import Liver
from models.phantom.config import VesselConfig

PORTAL, HEPATIC = 1, 2


@dataclass
class Segment:
    """One straight piece of vessel; `parent` is the index of the segment it branches from."""

    tree: int  # PORTAL or HEPATIC
    p0: np.ndarray
    p1: np.ndarray
    radius: float
    generation: int
    parent: int | None
    clip_to_liver: bool = True

    def to_json(self, index: int) -> dict:
        return {
            "id": index,
            "tree": "portal" if self.tree == PORTAL else "hepatic",
            "p0_mm": [round(float(v), 4) for v in self.p0],
            "p1_mm": [round(float(v), 4) for v in self.p1],
            "radius_mm": float(self.radius),
            "generation": self.generation,
            "parent": self.parent,
        }


def _perpendicular(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    v -= (v @ d) * d
    return v / (np.linalg.norm(v) + 1e-12)


def _rotate(d: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of unit vector d about a unit axis perpendicular to it."""
    return d * np.cos(angle) + np.cross(axis, d) * np.sin(angle)


def _inside(liver: Liver, pts: np.ndarray, margin: float) -> bool:
    sd = liver.sdf(pts[:, 0], pts[:, 1], pts[:, 2])[0]
    return bool(np.all(sd < -margin))


def grow_tree(
    rng: np.random.Generator,
    liver: Liver,
    cfg: VesselConfig,
    tree: int,
    root: Segment,
    generations: int,
    segments: list[Segment],
) -> None:
    """Append `root` and its descendants (down to `generations` bifurcations) to `segments`."""
    r_min = cfg.min_radius_mm
    factor = (r_min / root.radius) ** (1.0 / max(generations, 1))
    alpha_target = float(np.clip(factor**3, 0.04, 0.5))
    stack = [(root, None)]
    while stack:
        seg, parent = stack.pop()
        seg.parent = parent
        segments.append(seg)
        index = len(segments) - 1
        if seg.generation >= generations:
            continue
        children = _branch(rng, liver, cfg, tree, seg, alpha_target)
        if children is None:
            continue
        for child in reversed(children):
            stack.append((child, index))


def _branch(
    rng: np.random.Generator,
    liver: Liver,
    cfg: VesselConfig,
    tree: int,
    seg: Segment,
    alpha_target: float,
) -> list[Segment] | None:
    jitter = rng.uniform(-cfg.split_jitter, cfg.split_jitter)
    alpha = float(np.clip(alpha_target * (1.0 + jitter), 0.03, 0.5))
    r0 = seg.radius
    radii = (r0 * (1.0 - alpha) ** (1.0 / 3.0), r0 * alpha ** (1.0 / 3.0))  # Murray exactly
    d = seg.p1 - seg.p0
    d = d / (np.linalg.norm(d) + 1e-12)
    lo, hi = np.deg2rad(cfg.branch_angle_deg)
    for shrink in (1.0, 0.6, 0.35):
        tries = []
        for _ in range(cfg.direction_tries):
            axis = _perpendicular(d, rng)
            minor_angle = rng.uniform(lo, hi)
            major_angle = minor_angle * (alpha / (1.0 - alpha)) ** 0.5 + rng.uniform(0.05, 0.2)
            dirs = (_rotate(d, axis, -major_angle), _rotate(d, axis, minor_angle))
            kids = []
            for r, nd in zip(radii, dirs, strict=True):
                length = r * rng.uniform(*cfg.length_per_radius) * shrink
                kids.append(
                    Segment(tree, seg.p1.copy(), seg.p1 + nd * length, r, seg.generation + 1, None)
                )
            tries.append(kids)
        # one vectorised inside-test for all tries: midpoints and ends of both children
        pts = np.array(
            [k.p0 + (k.p1 - k.p0) * t for kids in tries for k in kids for t in (0.5, 1.0)]
        )
        sd = liver.sdf(pts[:, 0], pts[:, 1], pts[:, 2])[0].reshape(len(tries), 4)
        ok = np.all(sd < -(1.0 + 0.5 * radii[0]), axis=1)
        if ok.any():
            return tries[int(np.argmax(ok))]
    return None


def draw_trees(
    rng: np.random.Generator, liver: Liver, ivc_centre: tuple[float, float], cfg: VesselConfig
) -> list[Segment]:
    """The portal tree (entering at the hilum) and the hepatic trees (draining to the IVC)."""
    segments: list[Segment] = []
    right, left = liver.lobes[0], liver.lobes[1]
    gens = int(rng.integers(cfg.generations[0], cfg.generations[1] + 1))
    # Portal vein: from below-medial of the hilum (outside the liver) into the hilum.
    hilum = right.center + np.array([0.55, 0.05, -0.25]) * right.axes
    hilum = _pull_inside(liver, hilum, toward=right.center, margin=10.0)
    # the trunk comes from outside the liver, medial-posterior-caudal of the hilum (it runs up
    # from behind the pancreas): the first point that direction at least 10 mm outside
    way = np.array([0.5, 0.35, -0.8])
    way /= np.linalg.norm(way)
    dist = np.arange(20.0, 160.0, 5.0)
    pts = hilum[None, :] + dist[:, None] * way[None, :]
    far = liver.sdf(pts[:, 0], pts[:, 1], pts[:, 2])[0] > 10.0
    start = pts[int(np.argmax(far))] if far.any() else pts[-1]
    r_root = float(rng.uniform(*cfg.root_radius_mm))
    trunk = Segment(PORTAL, start, hilum, r_root, 0, None, clip_to_liver=False)
    grow_tree(rng, liver, cfg, PORTAL, trunk, gens, segments)
    # Hepatic veins: three trunks from the IVC confluence under the dome.
    top = liver.diaphragm.right[2] - liver.diaphragm_mm
    conf = np.array([ivc_centre[0], ivc_centre[1], top - 25.0])
    targets = (
        right.center + np.array([-0.3, -0.2, -0.1]) * right.axes,
        (right.center + left.center) / 2 + np.array([0.0, -15.0, -10.0]),
        left.center + np.array([0.2, 0.0, 0.0]) * left.axes,
    )
    for radius, target in zip(cfg.hepatic_trunk_radii_mm, targets, strict=True):
        d = target - conf
        d /= np.linalg.norm(d)
        p0 = conf + d * 6.0
        length = radius * rng.uniform(*cfg.length_per_radius)
        p1 = _pull_inside(liver, p0 + d * length, toward=target, margin=radius + 2.0)
        g = int(rng.integers(cfg.generations[0], cfg.generations[1] + 1))
        trunk = Segment(HEPATIC, p0, p1, float(radius), 0, None, clip_to_liver=True)
        grow_tree(rng, liver, cfg, HEPATIC, trunk, g, segments)
    return segments


def _pull_inside(liver: Liver, p: np.ndarray, toward: np.ndarray, margin: float) -> np.ndarray:
    """Move p along the line to `toward` until it is `margin` mm inside the liver."""
    for t in np.linspace(0.0, 1.0, 41):
        q = p + (toward - p) * t
        if _inside(liver, q[None, :], margin):
            return q
    return toward.copy()


def murray_errors(segments: list[Segment]) -> list[float]:
    """|r0^3 - (r1^3 + r2^3)| / r0^3 at every bifurcation (for tests and reports)."""
    children: dict[int, list[int]] = {}
    for i, s in enumerate(segments):
        if s.parent is not None:
            children.setdefault(s.parent, []).append(i)
    errs = []
    for parent, kids in children.items():
        r0 = segments[parent].radius
        errs.append(abs(r0**3 - sum(segments[k].radius ** 3 for k in kids)) / r0**3)
    return errs

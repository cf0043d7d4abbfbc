"""Render a patient: paint tissue parameters at a respiratory state, then apply CT and MR physics.

A `Scene` is one breathing state on one grid. Shapes are painted in order (later ones cover
earlier ones) into six parameter channels: plain HU, iodine uptake in the arterial and portal
phase (mg/mL), R1 and R2 (1/ms) and proton density. A voxel's covered fraction comes from the
shape's signed distance and the voxel size along its normal, so partial volume is analytic.
CT images are HU + k * uptake; MR images come from the signal equations, with the same uptake
(as [Gd]) shortening T1 on the post-contrast sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.phantom.anatomy import Body, Liver, draw_body_and_liver
from models.phantom.config import PhantomConfig
from models.phantom.grid import Grid
from models.phantom.lesions import Lesion, draw_lesions
from models.phantom.motion import (
    Breathing,
    MotionField,
    build_field,
    draw_breathing,
    draw_phases,
    phase_maps,
    true_field,
)
from models.phantom.shapes import SDF, Capsule, intersect
from models.phantom.texture import SharedTexture
from models.phantom.vessels import HEPATIC, PORTAL, Segment, draw_trees

LABELS: dict[str, int] = {
    "background": 0,
    "subcutaneous_fat": 1,
    "muscle": 2,
    "visceral_fat": 3,
    "lung": 4,
    "liver": 5,
    "spleen": 6,
    "kidney_right": 7,
    "kidney_left": 8,
    "stomach": 9,
    "gallbladder": 10,
    "aorta": 11,
    "ivc": 12,
    "vertebra": 13,
    "spinal_canal": 14,
    "portal_vein": 15,
    "bowel": 16,
}
"""Organ label map ids (labels.nii.gz, mr_labels.nii.gz). Intrahepatic vessels and lesions are
part of the liver here; they have their own maps (vessels, lesions)."""

VESSEL_LABELS = {"background": 0, "portal": PORTAL, "hepatic": HEPATIC}
CHANNELS = ("hu", "up_art", "up_port", "r1", "r2", "pd")
TEXTURED = ("liver", "spleen", "ap_shunt", "kidney_cortex", "kidney_medulla")


@dataclass
class Patient:
    """Everything drawn from the seed: anatomy, vessels, lesions, breathing, dose and SNR."""

    seed: int
    body: Body
    liver: Liver
    segments: list[Segment]
    lesions: list[Lesion]
    breathing: Breathing
    field: MotionField
    t_ct: float
    t_mr: float
    ct_sigma: float
    mr_snr: float
    bias_amplitude: float
    texture: SharedTexture


def patient_rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream)]))


def draw_patient(seed: int, cfg: PhantomConfig, grid: Grid) -> Patient:
    """Draw one patient. Only the FOV (not the grid's size) enters, so every grid renders the
    same anatomy."""
    body, liver = draw_body_and_liver(patient_rng(seed, 0), cfg)
    segments = draw_trees(patient_rng(seed, 1), liver, (body.ivc.cx, body.ivc.cy), cfg.vessels)
    lesions = draw_lesions(patient_rng(seed, 2), liver, segments, cfg.lesions)
    rng = patient_rng(seed, 3)
    br = draw_breathing(rng, cfg.motion)
    t_ct, t_mr = draw_phases(rng, br, cfg.motion)
    ct_sigma = float(rng.uniform(*cfg.ct.noise_sigma_hu))
    snr = float(rng.uniform(*cfg.mr.snr))
    bias = float(rng.uniform(*cfg.mr.bias_amplitude))
    fov_grid = Grid(8, 8, cfg.grid.fov_mm, cfg.grid.fov_z_mm)
    motion = build_field(body, liver, fov_grid, br, cfg.motion)
    lo = np.minimum(liver.bbox()[0], body.spleen.bbox()[0]) - 10.0
    hi = np.maximum(liver.bbox()[1], body.spleen.bbox()[1]) + 10.0
    lo = np.minimum(lo, np.minimum(body.kidneys[0][0].bbox()[0], body.kidneys[1][0].bbox()[0]))
    hi = np.maximum(hi, np.maximum(body.kidneys[0][0].bbox()[1], body.kidneys[1][0].bbox()[1]))
    texture = SharedTexture.draw(
        patient_rng(seed, 4), lo, hi, cfg.texture.grid_mm, cfg.texture.scale_mm
    )
    return Patient(
        seed, body, liver, segments, lesions, br, motion, t_ct, t_mr, ct_sigma, snr, bias, texture
    )


def tissue_index(cfg: PhantomConfig, tissue: str) -> int:
    """Index of a tissue in the (sorted) tissue table; 0 is air."""
    names = tissue_names(cfg)
    return names.index(tissue)


def tissue_names(cfg: PhantomConfig) -> list[str]:
    """Tissue names in index order: air first, then the CT table's names sorted."""
    return ["air", *sorted(t for t in cfg.ct.hu if t != "air")]


def tissue_values(cfg: PhantomConfig, tissue: str) -> dict[str, float]:
    """Channel values of a tissue from the CT and MR tables."""
    plain, art, port = cfg.ct.hu[tissue]
    t1, t2, pd = cfg.mr.t1_t2_pd[tissue]
    k = cfg.ct.hu_per_mg_iodine
    return {
        "hu": plain,
        "up_art": (art - plain) / k,
        "up_port": (port - plain) / k,
        "r1": 1.0 / t1,
        "r2": 1.0 / t2,
        "pd": pd,
    }


@dataclass
class Scene:
    """One breathing state (weight a) of a patient on a grid, painted into parameter channels."""

    grid: Grid
    patient: Patient
    cfg: PhantomConfig
    a: float
    channels: tuple[str, ...] = CHANNELS
    labels_wanted: bool = True
    ch: dict[str, np.ndarray] = field(default_factory=dict)
    labels: np.ndarray | None = None
    vessels: np.ndarray | None = None
    lesions: np.ndarray | None = None
    liver_occ: np.ndarray | None = None
    tissue: np.ndarray | None = None  # index into TISSUES of the tissue covering most of a voxel

    def __post_init__(self) -> None:
        (rx, ry, rz), pts = phase_maps(self.patient.field, self.grid, self.a, self.cfg.motion)
        self.coarse_ref, self.coarse_pts = (rx, ry, rz), pts
        g = self.grid
        zz, yy, xx = np.meshgrid(g.axis(2), g.axis(1), g.axis(0), indexing="ij", sparse=True)
        self.x = (xx + g.upsample(rx - pts[0])).astype(np.float32)
        self.y = (yy + g.upsample(ry - pts[1])).astype(np.float32)
        self.z = (zz + g.upsample(rz - pts[2])).astype(np.float32)
        air = tissue_values(self.cfg, "air")
        self.ch = {c: np.full(g.shape, air[c], dtype=np.float32) for c in self.channels}
        self.liver_occ = np.zeros(g.shape, dtype=np.float32)
        if self.labels_wanted:
            self.labels = np.zeros(g.shape, dtype=np.uint8)
            self.vessels = np.zeros(g.shape, dtype=np.uint8)
            self.lesions = np.zeros(g.shape, dtype=np.uint16)
            self.tissue = np.zeros(g.shape, dtype=np.uint8)
        self._paint_all()

    # -- geometry -------------------------------------------------------------------------
    def region(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, ...] | None:
        """Image-index box holding the reference box [lo, hi] at this breathing state."""
        lo, hi = np.maximum(lo, -1e4), np.minimum(hi, 1e4)
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        fx, fy, fz = self.patient.field.forward(corners[:, 0], corners[:, 1], corners[:, 2], self.a)
        moved = np.stack([fx, fy, fz], axis=1)
        both = np.concatenate([corners, moved])
        margin = 3.0 + max(self.grid.spacing)
        return self.grid.index_range(both.min(axis=0), both.max(axis=0), margin)

    def occupancy(self, sl: tuple[slice, ...], sdf: SDF) -> np.ndarray:
        """Covered fraction of each voxel from signed distance and normal (partial volume)."""
        sd, nx, ny, nz = sdf
        dx, dy, dz = self.grid.spacing
        h = np.sqrt((nx * dx) ** 2 + (ny * dy) ** 2 + (nz * dz) ** 2) + 1e-6
        return np.clip(0.5 - sd / h, 0.0, 1.0).astype(np.float32)

    def shape_occ(self, shape) -> tuple[tuple[slice, ...], np.ndarray] | None:
        sl = self.region(*shape.bbox())
        if sl is None:
            return None
        return sl, self.occupancy(sl, shape.sdf(self.x[sl], self.y[sl], self.z[sl]))

    # -- painting -------------------------------------------------------------------------
    def paint(
        self,
        sl: tuple[slice, ...],
        occ: np.ndarray,
        tissue: str,
        label: int | None = None,
        override: dict[str, np.ndarray | float] | None = None,
    ) -> None:
        vals: dict[str, np.ndarray | float] = dict(tissue_values(self.cfg, tissue))
        if tissue in TEXTURED:
            t = self.patient.texture(self.x[sl], self.y[sl], self.z[sl])
            mr = self.cfg.mr
            vals["hu"] = vals["hu"] + self.cfg.ct.texture_hu * t
            vals["r1"] = vals["r1"] / (1.0 + mr.texture_t1 * t)
            vals["r2"] = vals["r2"] / (1.0 + mr.texture_t2 * t)
            vals["pd"] = vals["pd"] * (1.0 + mr.texture_pd * t)
        if override:
            vals.update(override)
        for c in self.channels:
            cur = self.ch[c][sl]
            cur += (
                occ * (np.float32(vals[c]) - cur) if np.isscalar(vals[c]) else occ * (vals[c] - cur)
            )
        if self.labels is not None:
            major = occ >= 0.5
            if label is not None:
                self.labels[sl][major] = label
            self.tissue[sl][major] = tissue_index(self.cfg, tissue)

    def paint_shape(self, shape, tissue: str, label: int | None = None, sdf_fn=None) -> None:
        sl = self.region(*shape.bbox())
        if sl is None:
            return
        sdf = (sdf_fn or shape.sdf)(self.x[sl], self.y[sl], self.z[sl])
        self.paint(sl, self.occupancy(sl, sdf), tissue, label)

    def _paint_all(self) -> None:
        p, b, L = self.patient, self.patient.body, LABELS
        self.paint_shape(b.outer, "fat", L["subcutaneous_fat"])
        self.paint_shape(b.muscle, "muscle", L["muscle"])
        self.paint_shape(b.cavity, "fat", L["visceral_fat"])
        dthick = self.cfg.body.diaphragm_mm

        def above(offset: float):
            return lambda x, y, z: intersect(
                b.cavity.sdf(x, y, z), b.diaphragm.above(x, y, z, offset)
            )

        top_box = b.cavity.bbox()
        top_box[0][2] = float(b.diaphragm.left[2] - 140.0)
        for tissue, label, offset in (("muscle", L["muscle"], dthick), ("lung", L["lung"], 0.0)):
            sl = self.region(*top_box)
            if sl is not None:
                sdf = above(offset)(self.x[sl], self.y[sl], self.z[sl])
                self.paint(sl, self.occupancy(sl, sdf), tissue, label)
        for wall, lumen, gas in b.bowel:
            self.paint_shape(wall, "stomach_wall", L["bowel"])
            self.paint_shape(lumen, "air" if gas else "stomach_fluid", L["bowel"])
        for (whole, medulla), label in zip(
            b.kidneys, (L["kidney_right"], L["kidney_left"]), strict=True
        ):
            self.paint_shape(whole, "kidney_cortex", label)
            self.paint_shape(medulla, "kidney_medulla", label)
        self.paint_shape(b.spleen, "spleen", L["spleen"])
        self._paint_spleen_heterogeneity()
        self.paint_shape(b.stomach, "stomach_wall", L["stomach"])
        self.paint_shape(b.stomach_lumen, "stomach_fluid", L["stomach"])
        level = b.stomach_air_level

        def air_part(x, y, z):
            zero = np.zeros_like(x)
            return intersect(b.stomach_lumen.sdf(x, y, z), (y - level, zero, zero + 1.0, zero))

        self.paint_shape(b.stomach_lumen, "air", L["stomach"], sdf_fn=air_part)
        got = self.shape_occ(p.liver)
        if got is not None:
            sl, occ = got
            self.liver_occ[sl] = occ
            self.paint(sl, occ, "liver", L["liver"])
        self.paint_shape(b.gallbladder, "bile", L["gallbladder"])
        for lesion in p.lesions:
            if lesion.type == "ap_shunt":
                self._paint_lesion(lesion)
        self._paint_vessels()
        for lesion in p.lesions:
            if lesion.type != "ap_shunt":
                self._paint_lesion(lesion)
        self.paint_shape(b.ivc, "ivc", L["ivc"])
        self.paint_shape(b.aorta, "aorta", L["aorta"])
        for m in b.paravertebral:
            self.paint_shape(m, "muscle", L["muscle"])
        self.paint_shape(b.vertebra_cortex, "cortical_bone", L["vertebra"])
        self.paint_shape(b.vertebra_core, "cancellous_bone", L["vertebra"])
        self.paint_shape(b.spinous, "cortical_bone", L["vertebra"])
        self.paint_shape(b.canal, "csf", L["spinal_canal"])

    def _paint_spleen_heterogeneity(self) -> None:
        """Arterial-phase moire of the spleen: zero-mean, so its table mean is kept."""
        if "up_art" not in self.ch:
            return
        spleen = self.patient.body.spleen
        got = self.shape_occ(spleen)
        if got is None:
            return
        sl, occ = got
        x, y, z = self.x[sl], self.y[sl], self.z[sl]
        pattern = np.cos(2 * np.pi * (x - spleen.center[0] + y) / 22.0) * np.cos(
            2 * np.pi * (z - spleen.center[2]) / 26.0
        )
        amp = self.cfg.ct.spleen_arterial_heterogeneity_hu / self.cfg.ct.hu_per_mg_iodine
        self.ch["up_art"][sl] += (occ * amp * pattern).astype(np.float32)

    def _paint_vessels(self) -> None:
        for seg in self.patient.segments:
            shape = Capsule(seg.p0, seg.p1, seg.radius)
            got = self.shape_occ(shape)
            if got is None:
                continue
            sl, occ = got
            if seg.clip_to_liver:
                occ = occ * self.liver_occ[sl]
            tissue = "portal_vein" if seg.tree == PORTAL else "hepatic_vein"
            if not seg.clip_to_liver and self.labels is not None:
                outside = (occ >= 0.5) & (self.liver_occ[sl] < 0.5)
                self.labels[sl][outside] = LABELS["portal_vein"]
            self.paint(sl, occ, tissue)
            if self.vessels is not None:
                self.vessels[sl][occ >= 0.5] = seg.tree

    def _paint_lesion(self, lesion: Lesion) -> None:
        shape = lesion.shape
        got = self.shape_occ(shape)
        if got is None:
            return
        sl, occ = got
        kind = lesion.type
        if kind in ("metastasis", "hemangioma") and lesion.core is not None:
            override = None
            if kind == "hemangioma" and lesion.nodules is not None and "up_art" in self.ch:
                u, v, w = shape.local(self.x[sl], self.y[sl], self.z[sl])
                q = np.sqrt(u * u + v * v + w * w) + 1e-6
                f = lesion.nodules(u / q, v / q, w / q) - 1.0
                nod = np.clip((f - 0.3) * 2.0, 0.0, 1.0)
                core = tissue_values(self.cfg, "hemangioma")["up_art"]
                rim = tissue_values(self.cfg, "hemangioma_rim")["up_art"]
                override = {"up_art": (core + (rim - core) * nod).astype(np.float32)}
            self.paint(sl, occ, f"{kind}_rim", override=override)
            core_occ = self.shape_occ(lesion.core)
            if core_occ is not None:
                self.paint(core_occ[0], core_occ[1], kind)
        elif kind == "satellite":
            self.paint(sl, occ, "hcc")
        else:
            self.paint(sl, occ, kind)
        if self.lesions is not None:
            inside = occ >= 0.5
            if not inside.any():
                # a lesion smaller than a voxel still exists: the voxel covering most of it
                inside = occ >= occ.max()
            self.lesions[sl][inside] = lesion.id


def true_displacement(scene: Scene, a_to: float) -> np.ndarray:
    """u (z, y, x, 3): tissue at point p of `scene` is at p + u(p) at breathing weight a_to."""
    return true_field(scene.patient.field, scene.grid, scene.coarse_ref, scene.coarse_pts, a_to)


def ct_image(scene: Scene, phase: str, cfg: PhantomConfig) -> np.ndarray:
    """Noise-free CT of one contrast phase (float32 HU)."""
    hu = scene.ch["hu"]
    if phase == "plain":
        return hu.copy()
    key = {"arterial": "up_art", "portal": "up_port"}[phase]
    return hu + np.float32(cfg.ct.hu_per_mg_iodine) * scene.ch[key]


def mr_signals(scene: Scene, cfg: PhantomConfig) -> dict[str, np.ndarray]:
    """Noise-free T1WI (SPGR), T2WI (FSE) and post-contrast T1 from the signal equations."""
    mr = cfg.mr
    r1, r2, pd = scene.ch["r1"], scene.ch["r2"], scene.ch["pd"]
    up = scene.ch["up_art" if mr.t1c_phase == "arterial" else "up_port"]
    gd = np.clip(up, 0.0, None) * np.float32(mr.gd_mm_per_mg_iodine)
    r1c = r1 + gd * np.float32(mr.r1_per_mm_s / 1000.0)
    return {
        "t1": spgr(pd, r1, mr.t1_tr_ms, mr.t1_flip_deg),
        "t2": fse(pd, r1, r2, mr.t2_tr_ms, mr.t2_te_ms),
        "t1c": spgr(pd, r1c, mr.t1_tr_ms, mr.t1_flip_deg),
    }


SIGNAL_SCALE = 1000.0  # MR signal units: 1000 x (PD-weighted magnetisation)


def spgr(pd, r1, tr: float, flip_deg: float):
    """Spoiled gradient echo: S = PD sin a (1 - E1) / (1 - cos a E1), E1 = exp(-TR R1)."""
    a = np.deg2rad(flip_deg)
    e1 = np.exp(-tr * r1)
    return (SIGNAL_SCALE * pd * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1)).astype(np.float32)


def fse(pd, r1, r2, tr: float, te: float):
    """Fast spin echo: S = PD (1 - exp(-TR/T1)) exp(-TE/T2)."""
    return (SIGNAL_SCALE * pd * (1 - np.exp(-tr * r1)) * np.exp(-te * r2)).astype(np.float32)


def tissue_signal(cfg: PhantomConfig, tissue: str, phase_uptake: float = 0.0) -> dict[str, float]:
    """Noise-free signal of a pure tissue (for noise levels and visibility tables)."""
    v = tissue_values(cfg, tissue)
    mr = cfg.mr
    up = v["up_art" if mr.t1c_phase == "arterial" else "up_port"]
    r1c = v["r1"] + max(up, 0.0) * mr.gd_mm_per_mg_iodine * mr.r1_per_mm_s / 1000.0
    return {
        "t1": float(spgr(np.float64(v["pd"]), np.float64(v["r1"]), mr.t1_tr_ms, mr.t1_flip_deg)),
        "t2": float(
            fse(
                np.float64(v["pd"]),
                np.float64(v["r1"]),
                np.float64(v["r2"]),
                mr.t2_tr_ms,
                mr.t2_te_ms,
            )
        ),
        "t1c": float(spgr(np.float64(v["pd"]), np.float64(r1c), mr.t1_tr_ms, mr.t1_flip_deg)),
    }


def visible_in(cfg: PhantomConfig, lesion_type: str) -> list[str]:
    """Phases and sequences in which a lesion type differs from liver (>= 10 HU, >= 10 %)."""
    tissues = {
        "satellite": ["hcc"],
        "metastasis": ["metastasis", "metastasis_rim"],
        "hemangioma": ["hemangioma", "hemangioma_rim"],
    }.get(lesion_type, [lesion_type])
    liver_hu, liver_mr = cfg.ct.hu["liver"], tissue_signal(cfg, "liver")
    out = []
    for i, phase in enumerate(("ct_plain", "ct_arterial", "ct_portal")):
        if any(abs(cfg.ct.hu[t][i] - liver_hu[i]) >= 10.0 for t in tissues):
            out.append(phase)
    for seq in ("t1", "t2", "t1c"):
        ref = liver_mr[seq]
        if any(abs(tissue_signal(cfg, t)[seq] - ref) >= 0.1 * ref for t in tissues):
            out.append(f"mr_{seq}")
    return out


__all__ = [
    "CHANNELS",
    "LABELS",
    "VESSEL_LABELS",
    "Patient",
    "Scene",
    "ct_image",
    "draw_patient",
    "mr_signals",
    "tissue_signal",
    "tissue_values",
    "true_displacement",
    "visible_in",
]

"""`render_case`: one patient as CT (3 phases), MRI (3 sequences), labels and the true motion.

What belongs to the patient (anatomy, texture, breathing, dose, SNR) comes from the seed; what
belongs to one acquisition (CT noise, MR noise, MR micro-texture, bias field) comes from
(seed, realisation), so two realisations differ only there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_runtime.errors import InputError
from models.phantom.config import SUPPORTED_GRIDS, PhantomConfig
from models.phantom.grid import Grid
from models.phantom.render import (
    LABELS,
    VESSEL_LABELS,
    Patient,
    Scene,
    ct_image,
    draw_patient,
    mr_signals,
    tissue_signal,
    true_displacement,
    visible_in,
)
from models.phantom.texture import bias_field, correlated_noise, micro_texture
from models.phantom.vessels import murray_errors

CT_PHASES = ("plain", "arterial", "portal")
MR_SEQUENCES = ("t1", "t2", "t1c")
FORMAT = "hidiff-phantom-case/1"


@dataclass
class PhantomCase:
    """A rendered case in memory: arrays are (z, y, x) on `grid`; see docs/phantom.md."""

    seed: int
    realisation: int
    config: PhantomConfig
    grid: Grid
    images: dict[str, np.ndarray]  # ct_* int16 HU, mr_* float32
    labels: np.ndarray  # uint8 organ labels, CT phase
    mr_labels: np.ndarray  # uint8 organ labels, MR phase
    vessels: np.ndarray  # uint8 1 portal 2 hepatic, CT phase
    lesions: np.ndarray  # uint16 instance map, CT phase
    motion_ct_to_mr: np.ndarray  # float32 (z, y, x, 3) mm
    lesion_table: list[dict[str, Any]]
    meta: dict[str, Any]
    vessel_segments: list[dict[str, Any]]
    four_dct: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # ct4d_phaseKK, motion_ct4d_phaseKK
    # in memory only: ct_clean_<phase>, mr_clean_<seq>_ctphase (noise-free), uptake_mr (the
    # uptake driving post-contrast T1, mg I/mL), tissue (index into render.tissue_names)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    patient: Patient | None = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.grid.spacing

    @property
    def origin(self) -> tuple[float, float, float]:
        return self.grid.origin


def make_grid(cfg: PhantomConfig, grid: int, slices: int) -> Grid:
    if grid not in SUPPORTED_GRIDS:
        raise InputError(f"unsupported grid {grid}; choose one of {list(SUPPORTED_GRIDS)}")
    if slices < 4:
        raise InputError(f"slices must be at least 4, got {slices}")
    return Grid(int(grid), int(slices), cfg.grid.fov_mm, cfg.grid.fov_z_mm)


def acquisition_rng(seed: int, realisation: int, part: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 1000, int(realisation), part]))


def acquire_ct(
    clean: np.ndarray, sigma: float, cfg: PhantomConfig, rng: np.random.Generator
) -> np.ndarray:
    """Add correlated Gaussian noise (if enabled) and round to int16 HU."""
    img = clean
    if cfg.noise:
        img = clean + np.float32(sigma) * correlated_noise(
            rng, clean.shape, cfg.ct.noise_correlation_px
        )
    return np.clip(np.rint(img), -32768, 32767).astype(np.int16)


def acquire_mr(
    clean: dict[str, np.ndarray],
    sigma: dict[str, float],
    bias: np.ndarray | None,
    micro: np.ndarray | None,
    cfg: PhantomConfig,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Micro-texture and bias field multiply the signal; Rician noise is the magnitude of the
    signal plus complex Gaussian noise."""
    out = {}
    for seq in MR_SEQUENCES:
        s = clean[seq]
        if cfg.noise:
            if micro is not None:
                s = s * (1.0 + np.float32(cfg.mr.micro_texture) * micro)
            if bias is not None:
                s = s * bias
            sd = np.float32(sigma[seq])
            re = s + sd * rng.standard_normal(s.shape, dtype=np.float32)
            im = sd * rng.standard_normal(s.shape, dtype=np.float32)
            s = np.sqrt(re * re + im * im)
        out[seq] = s.astype(np.float32)
    return out


def mr_sigmas(cfg: PhantomConfig, snr: float) -> dict[str, float]:
    """Noise standard deviation per sequence: liver signal / SNR."""
    liver = tissue_signal(cfg, "liver")
    return {seq: liver[seq] / snr for seq in MR_SEQUENCES}


def _mr_acquisition(
    patient: Patient, grid: Grid, cfg: PhantomConfig, realisation: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not cfg.noise:
        return None, None
    bias = bias_field(
        acquisition_rng(patient.seed, realisation, 1),
        grid,
        patient.bias_amplitude,
        cfg.mr.bias_wavelength_mm,
    )
    micro = micro_texture(
        acquisition_rng(patient.seed, realisation, 2), grid, cfg.mr.micro_texture_mm
    )
    return bias, micro


def ssim_ceiling(a: np.ndarray, b: np.ndarray, liver: np.ndarray) -> float:
    """Mean over slices with liver of skimage's 2D SSIM (gaussian, sigma 1.5), data range of a."""
    from skimage.metrics import structural_similarity

    rng_ = float(a.max() - a.min()) or 1.0
    vals = [
        structural_similarity(
            a[k],
            b[k],
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=rng_,
        )
        for k in range(a.shape[0])
        if liver[k].any()
    ]
    return float(np.mean(vals)) if vals else float("nan")


def render_case(
    seed: int,
    config: PhantomConfig | None = None,
    *,
    grid: int = 256,
    slices: int = 48,
    realisation: int = 0,
    four_dct: bool = False,
    ssim: bool = True,
    keep_extras: bool = True,
) -> PhantomCase:
    """Render one patient (see docs/phantom-contract.md). `ssim=False` skips the SSIM ceiling
    (it needs a second MR realisation) for callers that only want the images;
    `keep_extras=False` drops the in-memory extras (noise-free images, uptake, tissue map)."""
    cfg = (config or PhantomConfig()).validate()
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}")
    if realisation < 0:
        raise InputError(f"realisation must be >= 0, got {realisation}")
    g = make_grid(cfg, grid, slices)
    patient = draw_patient(seed, cfg, g)
    br = patient.breathing
    a_ct, a_mr = br.weight(patient.t_ct), br.weight(patient.t_mr)

    # CT phase: CT images, labels, aligned MR (ctphase), true field to the MR phase
    ct_scene = Scene(g, patient, cfg, a_ct)
    images: dict[str, np.ndarray] = {}
    ct_rng = acquisition_rng(seed, realisation, 0)
    for phase in CT_PHASES:
        images[f"ct_{phase}"] = acquire_ct(
            ct_image(ct_scene, phase, cfg), patient.ct_sigma, cfg, ct_rng
        )
    sig = mr_sigmas(cfg, patient.mr_snr)
    clean_ct = mr_signals(ct_scene, cfg)
    bias, micro = _mr_acquisition(patient, g, cfg, realisation)
    mr_ctphase = acquire_mr(clean_ct, sig, bias, micro, cfg, acquisition_rng(seed, realisation, 3))
    for seq in MR_SEQUENCES:
        images[f"mr_{seq}_ctphase"] = mr_ctphase[seq]
    ceiling = {}
    if ssim and not cfg.noise:
        ceiling = dict.fromkeys(MR_SEQUENCES, 1.0)  # two noise-free realisations are identical
    elif ssim:
        others = [r for r in (0, 1) if r != realisation]
        reals = {realisation: mr_ctphase}
        for r in others:
            b2, m2 = _mr_acquisition(patient, g, cfg, r)
            reals[r] = acquire_mr(clean_ct, sig, b2, m2, cfg, acquisition_rng(seed, r, 3))
        liver = ct_scene.labels == LABELS["liver"]
        ceiling = {seq: ssim_ceiling(reals[0][seq], reals[1][seq], liver) for seq in MR_SEQUENCES}
    motion = true_displacement(ct_scene, a_mr)
    extras: dict[str, np.ndarray] = {}
    if keep_extras:
        extras = {"ct_clean_" + p: ct_image(ct_scene, p, cfg) for p in CT_PHASES} | {
            f"mr_clean_{k}_ctphase": v for k, v in clean_ct.items()
        }
        extras["uptake_mr"] = ct_scene.ch[
            "up_art" if cfg.mr.t1c_phase == "arterial" else "up_port"
        ].copy()
        extras["tissue"] = ct_scene.tissue
    del clean_ct
    labels, vessels, lesions = ct_scene.labels, ct_scene.vessels, ct_scene.lesions
    four = {}
    if four_dct:
        four = _render_4dct(patient, g, cfg, ct_scene, realisation)
    del ct_scene

    # MR phase: what the scanner gives
    mr_scene = Scene(g, patient, cfg, a_mr)
    mr_img = acquire_mr(
        mr_signals(mr_scene, cfg), sig, bias, micro, cfg, acquisition_rng(seed, realisation, 4)
    )
    for seq in MR_SEQUENCES:
        images[f"mr_{seq}"] = mr_img[seq]
    mr_labels = mr_scene.labels
    del mr_scene

    table = lesion_table(patient, cfg, a_ct)
    meta = {
        "format": FORMAT,
        "seed": int(seed),
        "realisation": int(realisation),
        "grid": {
            "shape_zyx": list(g.shape),
            "spacing_xyz_mm": list(g.spacing),
            "origin_xyz_mm": list(g.origin),
            "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1],
        },
        "ct_phase": {"phase": patient.t_ct, "si_mm": br.si_mm(patient.t_ct), "weight": a_ct},
        "mr_phase": {"phase": patient.t_mr, "si_mm": br.si_mm(patient.t_mr), "weight": a_mr},
        "breathing": {
            "amplitude_si_mm": br.amplitude_mm,
            "amplitude_ap_mm": br.ap_mm,
            "n": br.exponent,
            "period_s": br.period_s,
            "phase0_rad": br.phase0,
        },
        "noise": bool(cfg.noise),
        "ct_noise_sigma_hu": patient.ct_sigma,
        "mr_snr": patient.mr_snr,
        "mr_noise_sigma": sig,
        "mr_bias_amplitude": patient.bias_amplitude,
        "liver_volume_ml": float(
            np.count_nonzero(labels == LABELS["liver"]) * g.voxel_volume / 1000.0
        ),
        "labels": dict(LABELS),
        "vessel_labels": dict(VESSEL_LABELS),
        "ssim_ceiling": ceiling,
        "murray_max_rel_error": max(murray_errors(patient.segments), default=0.0),
        "config": cfg.to_dict(),
    }
    if four:
        meta["four_dct"] = {
            "phases": [k / cfg.motion.four_dct_phases for k in range(cfg.motion.four_dct_phases)],
            "si_mm": [
                br.si_mm(k / cfg.motion.four_dct_phases) for k in range(cfg.motion.four_dct_phases)
            ],
            "contrast": cfg.motion.four_dct_contrast,
            "reference": "ct (the case's CT phase)",
        }
    return PhantomCase(
        seed=int(seed),
        realisation=int(realisation),
        config=cfg,
        grid=g,
        images=images,
        labels=labels,
        mr_labels=mr_labels,
        vessels=vessels,
        lesions=lesions,
        motion_ct_to_mr=motion,
        lesion_table=table,
        meta=meta,
        vessel_segments=[s.to_json(i) for i, s in enumerate(patient.segments)],
        four_dct=four,
        extras=extras,
        patient=patient,
    )


def _render_4dct(
    patient: Patient, g: Grid, cfg: PhantomConfig, ref: Scene, realisation: int
) -> dict[str, np.ndarray]:
    out = {}
    contrast = cfg.motion.four_dct_contrast
    channels = (
        ("hu",)
        if contrast == "plain"
        else ("hu", "up_art" if contrast == "arterial" else "up_port")
    )
    rng = acquisition_rng(patient.seed, realisation, 5)
    n = cfg.motion.four_dct_phases
    for k in range(n):
        a = patient.breathing.weight(k / n)
        scene = Scene(g, patient, cfg, a, channels=channels, labels_wanted=False)
        out[f"ct4d_phase{k:02d}"] = acquire_ct(
            ct_image(scene, contrast, cfg), patient.ct_sigma, cfg, rng
        )
        out[f"motion_ct4d_phase{k:02d}"] = true_displacement(ref, a)
    return out


def lesion_table(patient: Patient, cfg: PhantomConfig, a_ct: float) -> list[dict[str, Any]]:
    """lesions.json rows; centroids are moved to the CT phase."""
    rows = []
    for les in patient.lesions:
        c = les.centroid()
        fx, fy, fz = patient.field.forward(
            np.array([c[0]]), np.array([c[1]]), np.array([c[2]]), a_ct
        )
        rows.append(
            {
                "id": les.id,
                "type": les.type,
                "pseudo": les.pseudo,
                "parent": les.parent,
                "diameter_mm": round(les.diameter(), 4),
                "centroid_mm": [round(float(v[0]), 4) for v in (fx, fy, fz)],
                "visible_in": ["ct_arterial"]
                if les.type == "ap_shunt"
                else visible_in(cfg, les.type),
            }
        )
    return rows

"""Every number of ../shared/PHANTOM.md as a default in a typed, nested dataclass config.

Ranges are (low, high) tuples from which a patient draws its own value; fixed numbers are
physics (HU table, relaxation times, sequence parameters). The whole config is written to
`case.json`, and `PhantomConfig.from_dict` reads it back, so a case can be re-rendered exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edge_runtime.errors import InputError

Range = tuple[float, float]

SUPPORTED_GRIDS = (64, 128, 256, 512)
"""In-plane sizes the CLI accepts (64 only for tests; PHANTOM.md names 128, 256, 512)."""

LESION_TYPES = ("hcc", "satellite", "hemangioma", "metastasis", "cyst", "pvtt", "ap_shunt")
"""Lesion types of lesions.json (the contract's list)."""

PRIMARY_LESION_TYPES = ("hcc", "hemangioma", "metastasis", "cyst")
"""Types drawn as independent lesions; satellites, PVTT and shunts hang off these rules."""


@dataclass
class GridConfig:
    """Field of view: geometry is continuous, the grid only samples it."""

    fov_mm: float = 360.0  # PHANTOM.md: FOV ~ 360 mm in-plane (0.70 mm pixels at 512^2)
    fov_z_mm: float = 200.0  # covers lung base, dome and liver tip; slice spacing = fov_z / slices


@dataclass
class BodyConfig:
    """Trunk cross-section and its wall, spine and paravertebral muscles."""

    width_mm: Range = (300.0, 360.0)  # PHANTOM.md: body ~300-360 mm wide
    depth_mm: Range = (220.0, 280.0)  # PHANTOM.md: 220-280 mm deep
    fat_mm: Range = (5.0, 35.0)  # subcutaneous fat thickness
    muscle_wall_mm: Range = (8.0, 14.0)  # abdominal muscle wall
    vertebra_radius_mm: Range = (19.0, 23.0)  # vertebral body (cancellous core)
    cortical_mm: float = 2.0  # cortical shell thickness
    canal_radius_mm: float = 8.5  # spinal canal
    paravertebral_mm: tuple[float, float] = (30.0, 22.0)  # semi-axes of each erector mass
    diaphragm_mm: float = 4.0  # muscle between lung base and liver dome


@dataclass
class OrganConfig:
    """Liver volume target and the other organs' size ranges (semi-axes, mm)."""

    liver_volume_l: Range = (1.3, 1.9)  # drawn target inside PHANTOM.md's 1.2-2.0 L
    liver_perturbation: float = 0.07  # relative amplitude of the low-frequency surface noise
    liver_perturbation_wavelength_mm: float = 90.0  # low frequency: a few bumps per lobe
    spleen_axes_mm: tuple[float, float, float] = (24.0, 50.0, 48.0)
    kidney_axes_mm: tuple[float, float, float] = (27.0, 24.0, 52.0)
    kidney_cortex_mm: float = 7.0
    stomach_axes_mm: tuple[float, float, float] = (42.0, 32.0, 48.0)
    stomach_wall_mm: float = 4.0
    stomach_air_fraction: Range = (0.2, 0.5)  # anterior part of the lumen holding air (supine)
    gallbladder_axes_mm: tuple[float, float, float] = (14.0, 14.0, 32.0)
    aorta_radius_mm: Range = (10.0, 13.0)
    ivc_radius_mm: Range = (10.0, 12.5)
    organ_scale_jitter: float = 0.08  # relative random scaling of each organ
    bowel_loops: tuple[int, int] = (6, 10)  # soft-tissue tubes in the lower abdomen
    bowel_radius_mm: Range = (9.0, 14.0)
    bowel_length_mm: Range = (30.0, 70.0)
    bowel_wall_mm: float = 3.0
    bowel_air_probability: float = 0.3  # a loop holds gas instead of fluid


@dataclass
class VesselConfig:
    """Portal and hepatic trees grown by recursive branching with Murray's law."""

    root_radius_mm: Range = (6.5, 7.5)  # PHANTOM.md: radii from ~7 mm
    hepatic_trunk_radii_mm: tuple[float, float, float] = (7.0, 6.0, 5.0)  # right, middle, left
    generations: tuple[int, int] = (3, 5)  # PHANTOM.md: 3-5 generations (inclusive)
    min_radius_mm: float = 0.6  # target radius of the finest branches (< 1 mm, with margin)
    split_jitter: float = 0.25  # relative jitter of the minor branch's volume fraction
    length_per_radius: Range = (5.0, 8.0)  # segment length ~ proportional to radius
    branch_angle_deg: Range = (25.0, 60.0)  # random bifurcation angles
    direction_tries: int = 12  # random directions tried to keep a branch inside the liver


@dataclass
class LesionConfig:
    """Lesions inside the liver (0-6 per patient) and the pseudo-lesions."""

    count: tuple[int, int] = (0, 6)  # inclusive, primary lesions
    diameter_mm: Range = (2.0, 40.0)  # PHANTOM.md: 2-40 mm
    type_weights: dict[str, float] = field(
        default_factory=lambda: {"hcc": 0.35, "hemangioma": 0.2, "metastasis": 0.25, "cyst": 0.2}
    )
    irregularity: float = 0.12  # relative amplitude of the boundary's radial perturbation
    satellite_probability: float = 0.6  # an HCC has satellite nodules with this probability
    satellites_per_hcc: tuple[int, int] = (1, 4)
    satellite_diameter_mm: Range = (1.0, 5.0)  # PHANTOM.md: 1-5 mm
    satellite_distance_mm: Range = (4.0, 18.0)  # gap between satellite and parent surface
    pvtt_probability: float = 0.35  # an HCC patient has a portal vein tumour thrombus
    pvtt_length_mm: Range = (12.0, 30.0)
    ap_shunt_probability: float = 0.35  # per patient
    ap_shunt_length_mm: Range = (12.0, 26.0)  # wedge (cone) height
    ap_shunt_half_angle_deg: Range = (22.0, 35.0)
    rim_fraction: float = 0.25  # outer shell of metastasis / hemangioma (of the radius)
    margin_mm: float = 3.0  # minimum gap between lesions and to the capsule


@dataclass
class CTConfig:
    """HU table (plain, arterial, portal), iodine uptake scale, noise and correlation."""

    hu: dict[str, tuple[float, float, float]] = field(
        default_factory=lambda: {
            "air": (-1000.0, -1000.0, -1000.0),
            "lung": (-850.0, -850.0, -850.0),
            "fat": (-100.0, -100.0, -100.0),
            "muscle": (50.0, 55.0, 60.0),
            "liver": (55.0, 70.0, 110.0),
            "spleen": (45.0, 120.0, 120.0),
            "kidney_cortex": (35.0, 180.0, 160.0),
            "kidney_medulla": (30.0, 70.0, 150.0),
            "aorta": (45.0, 300.0, 150.0),
            "portal_vein": (45.0, 100.0, 180.0),
            "hepatic_vein": (45.0, 60.0, 140.0),
            "ivc": (45.0, 60.0, 140.0),
            "cancellous_bone": (250.0, 250.0, 250.0),
            "cortical_bone": (1000.0, 1000.0, 1000.0),
            "bile": (8.0, 8.0, 8.0),
            "cyst": (8.0, 8.0, 8.0),
            "stomach_fluid": (10.0, 10.0, 10.0),
            "stomach_wall": (45.0, 80.0, 90.0),
            "csf": (10.0, 10.0, 10.0),
            "hcc": (40.0, 120.0, 80.0),
            "hemangioma": (40.0, 40.0, 140.0),  # centre; progressive fill ~ blood pool
            "hemangioma_rim": (40.0, 280.0, 150.0),  # peripheral nodules ~ aorta
            "metastasis": (35.0, 50.0, 60.0),
            "metastasis_rim": (35.0, 90.0, 100.0),
            "pvtt": (40.0, 120.0, 80.0),  # tumour in the vein: HCC enhancement
            "ap_shunt": (55.0, 130.0, 110.0),  # arterial-only wedge (+60 HU); liver otherwise
        }
    )
    hu_per_mg_iodine: float = 27.0  # PHANTOM.md: ~25-30 HU per mg iodine / mL
    spleen_arterial_heterogeneity_hu: float = 35.0  # zero-mean moire pattern, arterial only
    texture_hu: float = 4.0  # shared parenchymal texture amplitude (std, HU)
    noise_sigma_hu: Range = (8.0, 20.0)  # PHANTOM.md: Gaussian, 8-20 HU (dose)
    noise_correlation_px: float = 0.6  # reconstruction kernel (Gaussian sigma, pixels)


@dataclass
class MRConfig:
    """3 T relaxation (T1, T2 in ms), proton density, sequences, contrast agent, noise."""

    t1_t2_pd: dict[str, tuple[float, float, float]] = field(
        default_factory=lambda: {
            "air": (1.0e9, 1.0, 0.0),
            "lung": (1300.0, 20.0, 0.05),
            "fat": (382.0, 68.0, 0.95),
            "muscle": (898.0, 29.0, 0.7),
            "liver": (809.0, 34.0, 0.7),
            "spleen": (1328.0, 61.0, 0.82),
            "kidney_cortex": (1142.0, 76.0, 0.82),
            "kidney_medulla": (1545.0, 81.0, 0.85),
            "aorta": (1930.0, 275.0, 0.9),
            "portal_vein": (1930.0, 150.0, 0.9),
            "hepatic_vein": (1930.0, 130.0, 0.9),
            "ivc": (1930.0, 130.0, 0.9),
            "cancellous_bone": (586.0, 49.0, 0.6),
            "cortical_bone": (1000.0, 1.0, 0.05),
            "bile": (3000.0, 600.0, 1.0),
            "cyst": (3200.0, 700.0, 1.0),
            "stomach_fluid": (3000.0, 500.0, 1.0),
            "stomach_wall": (900.0, 45.0, 0.75),
            "csf": (3500.0, 1500.0, 1.0),
            "hcc": (1200.0, 75.0, 0.8),
            "hemangioma": (1750.0, 170.0, 0.9),
            "hemangioma_rim": (1750.0, 170.0, 0.9),
            "metastasis": (1300.0, 90.0, 0.8),
            "metastasis_rim": (1300.0, 90.0, 0.8),
            "pvtt": (1200.0, 75.0, 0.8),
            "ap_shunt": (809.0, 34.0, 0.7),  # normal liver on every sequence
        }
    )
    t2_tr_ms: float = 4000.0  # FSE T2WI
    t2_te_ms: float = 90.0
    t1_tr_ms: float = 4.0  # SPGR T1WI
    t1_flip_deg: float = 12.0
    r1_per_mm_s: float = 3.7  # gadolinium relaxivity at 3 T, 1/(mM s)
    gd_mm_per_mg_iodine: float = 0.2  # [Gd] (mM) per unit of the shared uptake value (mg I/mL)
    t1c_phase: str = "portal"  # CT phase whose uptake drives post-contrast T1
    # shared parenchymal texture, kept below the noise (liver stays homogeneous to the eye):
    texture_t1: float = 0.01  # relative T1 modulation
    texture_t2: float = 0.005  # relative T2 modulation (T2WI signal moves ~ TE/T2 times more)
    texture_pd: float = 0.008  # relative PD modulation
    micro_texture: float = 0.06  # independent per-acquisition micro-texture (relative signal)
    micro_texture_mm: float = 1.2  # its correlation length
    snr: Range = (15.0, 40.0)  # PHANTOM.md: SNR of liver, Rician noise
    bias_amplitude: Range = (0.10, 0.25)  # PHANTOM.md: +-10-25 % multiplicative bias field
    bias_wavelength_mm: float = 300.0  # smooth: one slow bump across the body


@dataclass
class TextureConfig:
    """Shared band-limited anatomical texture (fibrosis-like) of the parenchyma."""

    scale_mm: float = 2.5  # correlation length of the shared texture
    grid_mm: float = 2.0  # sampling of the texture field before interpolation


@dataclass
class MotionConfig:
    """Lujan breathing trace and the smooth respiratory displacement field."""

    amplitude_si_mm: Range = (8.0, 25.0)  # PHANTOM.md: SI amplitude b
    ap_ratio: float = 1.0 / 3.0  # AP ~ 1/3 of SI
    exponent_n: tuple[int, int] = (2, 3)  # cos^(2n), inclusive
    period_s: Range = (3.0, 5.0)
    control_spacing_mm: float = 20.0  # B-spline control grid
    caudal_decay: float = 0.45  # weight at the liver tip relative to the dome
    sliding_width_mm: float = 15.0  # width of the transition to the static spine / wall
    min_phase_gap_mm: float = 6.0  # CT and MR SI displacement differ at least this much
    coarse_mm: float = 6.0  # in-plane spacing on which the inverse map is solved
    inverse_iterations: int = 6
    four_dct_phases: int = 10
    four_dct_contrast: str = "portal"  # which CT phase the 4D-CT shows


@dataclass
class PhantomConfig:
    """The whole phantom: every PHANTOM.md number as a default."""

    grid: GridConfig = field(default_factory=GridConfig)
    body: BodyConfig = field(default_factory=BodyConfig)
    organs: OrganConfig = field(default_factory=OrganConfig)
    vessels: VesselConfig = field(default_factory=VesselConfig)
    lesions: LesionConfig = field(default_factory=LesionConfig)
    ct: CTConfig = field(default_factory=CTConfig)
    mr: MRConfig = field(default_factory=MRConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    noise: bool = True  # False renders noise-free images (tests of the tables)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhantomConfig:
        """Rebuild a config written by `to_dict` (e.g. from case.json)."""
        return _from_dict(cls, data)

    def validate(self) -> PhantomConfig:
        """Reject configs no patient can be drawn from; return self."""
        unknown = set(self.lesions.type_weights) - set(PRIMARY_LESION_TYPES)
        if unknown:
            raise InputError(
                f"unknown lesion type(s) {sorted(unknown)}; known: {list(PRIMARY_LESION_TYPES)}"
            )
        if any(w < 0 for w in self.lesions.type_weights.values()):
            raise InputError("lesion type weights must be >= 0")
        lo, hi = self.lesions.count
        if lo < 0 or hi < lo:
            raise InputError(f"lesion count range {self.lesions.count} is invalid")
        if hi > 0 and sum(self.lesions.type_weights.values()) <= 0:
            raise InputError("lesion type weights sum to zero but lesions are requested")
        for name, value in (
            ("grid.fov_mm", self.grid.fov_mm),
            ("grid.fov_z_mm", self.grid.fov_z_mm),
            ("motion.control_spacing_mm", self.motion.control_spacing_mm),
        ):
            if value <= 0:
                raise InputError(f"{name} must be positive, got {value}")
        if self.mr.t1c_phase not in ("arterial", "portal"):
            raise InputError(f"mr.t1c_phase must be arterial or portal, not {self.mr.t1c_phase}")
        if self.motion.four_dct_contrast not in ("plain", "arterial", "portal"):
            raise InputError("motion.four_dct_contrast must be plain, arterial or portal")
        _check_numbers(self, "")
        missing = set(self.ct.hu) ^ set(self.mr.t1_t2_pd)
        if missing:
            raise InputError(f"tissues missing from the CT or MR table: {sorted(missing)}")
        return self


def _check_numbers(obj: Any, where: str) -> None:
    """Sizes, ranges and counts must be non-negative and ranges ordered (low <= high)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{where}{f.name}"
        if dataclasses.is_dataclass(value):
            _check_numbers(value, f"{name}.")
        elif isinstance(value, tuple) and all(isinstance(v, int | float) for v in value):
            if any(v < 0 for v in value):
                raise InputError(f"config {name} must not be negative, got {list(value)}")
            if f.type in ("Range", "tuple[int, int]") and value[0] > value[1]:
                raise InputError(
                    f"config {name} is a range and needs low <= high, got {list(value)}"
                )
        elif isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise InputError(f"config {name} must not be negative, got {value}")


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    kwargs = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in hints:
            raise InputError(f"unknown config key {cls.__name__}.{key}")
        sub = _nested_class(cls, key)
        if sub is not None and isinstance(value, dict):
            kwargs[key] = _from_dict(sub, value)
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        elif isinstance(value, dict):
            kwargs[key] = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _nested_class(cls: type, key: str) -> type | None:
    default = {f.name: f for f in dataclasses.fields(cls)}[key]
    if default.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        obj = default.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(obj):
            return type(obj)
    return None


def merged_config(overrides: dict[str, Any]) -> PhantomConfig:
    """Defaults with a (partial, nested) dict of overrides applied; unknown keys are errors."""
    base = PhantomConfig().to_dict()

    def merge(into: dict[str, Any], new: dict[str, Any], where: str) -> None:
        for key, value in new.items():
            if key not in into:
                raise InputError(f"unknown config key {where}{key}")
            if isinstance(into[key], dict) and isinstance(value, dict) and key != "type_weights":
                merge(into[key], value, f"{where}{key}.")
            else:
                into[key] = value

    merge(base, overrides, "")
    return PhantomConfig.from_dict(base).validate()


def load_config(path: str | None = None, lesion_types: str | None = None) -> PhantomConfig:
    """Config from an optional JSON file of overrides and an optional comma-separated list of
    primary lesion types (drawn with equal weights)."""
    import json
    from pathlib import Path

    overrides: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            overrides = json.loads(p.read_text())
        except OSError as exc:
            raise InputError(f"cannot read config {p}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise InputError(
                f"config {p} is not valid JSON: {exc.msg} (line {exc.lineno})"
            ) from exc
        if not isinstance(overrides, dict):
            raise InputError(f"config {p} must hold a JSON object")
    if lesion_types is not None:
        names = [t.strip() for t in lesion_types.split(",") if t.strip()]
        unknown = [t for t in names if t not in PRIMARY_LESION_TYPES]
        if unknown or not names:
            raise InputError(
                f"unknown lesion type(s) {unknown or [lesion_types]}; "
                f"choose from {list(PRIMARY_LESION_TYPES)}"
            )
        overrides.setdefault("lesions", {})["type_weights"] = {t: 1.0 for t in names}
    return merged_config(overrides)

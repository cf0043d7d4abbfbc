"""Reading CT/MR cases for preprocessing: the one place that knows the folder layout.

Today it reads the phantom's case folders (docs/phantom-contract.md) directly; a real dataset
adapter from `models.datasets` plugs in here by producing the same `PairCase`. Landmarks are the
phantom's vessel bifurcations, moved from its end-exhale reference coordinates to the CT phase.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from edge_runtime.errors import InputError
from models.preprocess.fields import sample_field

CT_KEYS = ("ct_plain", "ct_arterial", "ct_portal")
MR_KEYS = ("mr_t1", "mr_t2", "mr_t1c")
LIVER_LABEL = 5  # the phantom's organ table; `case.json["labels"]["liver"]` overrides it


@dataclass
class PairCase:
    """One patient's CT (fixed, the model grid) and MR (moving), plus whatever truth exists."""

    case_id: str
    ct: dict[str, sitk.Image]
    mr: dict[str, sitk.Image]
    labels: sitk.Image | None = None  # organ labels at the CT phase
    mr_labels: sitk.Image | None = None  # organ labels at the MR phase
    true_field: sitk.Image | None = None  # CT -> MR displacement, when known
    landmarks: tuple[np.ndarray, np.ndarray] | None = None  # (CT points, MR points), mm LPS
    liver_label: int = LIVER_LABEL
    meta: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    four_d_fields: list[sitk.Image] = field(default_factory=list)  # CT -> 4D-CT phase k

    def four_d_arrays(self) -> list[np.ndarray]:
        """The 4D-CT fields as (z, y, x, 3) arrays, for the motion model."""
        return [sitk.GetArrayFromImage(f).astype(np.float64) for f in self.four_d_fields]

    def fixed(self) -> sitk.Image:
        """The CT that drives registration: portal venous, where the liver is brightest."""
        return self.ct["ct_portal"] if "ct_portal" in self.ct else next(iter(self.ct.values()))

    def moving(self) -> sitk.Image:
        """The MR that drives registration: T2WI, with the most liver-to-neighbour contrast."""
        return self.mr["mr_t2"] if "mr_t2" in self.mr else next(iter(self.mr.values()))


def _read(path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc


def bifurcations(vessels_json: Path) -> np.ndarray:
    """Reference-coordinate (x, y, z) mm points where a vessel segment splits in two."""
    segs = json.loads(Path(vessels_json).read_text())
    by_id = {s["id"]: s for s in segs}
    parents = {s["parent"] for s in segs if s["parent"] is not None}
    return np.array([by_id[p]["p1_mm"] for p in sorted(parents) if p in by_id], dtype=np.float64)


def landmarks_at_phases(
    ref_points: np.ndarray, true_field: sitk.Image, a_ct: float, a_mr: float, iterations: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """CT- and MR-phase positions of reference points, from the true CT -> MR field.

    The phantom moves reference X to X + a g(X) at breathing weight a, so the CT -> MR field is
    u(p) = (a_mr - a_ct) g(X(p)). Solving p = X + a_ct u(p) / (a_mr - a_ct) by fixed-point
    iteration gives the CT position p; the MR position is p + u(p).
    """
    if abs(a_mr - a_ct) < 1e-6:
        raise InputError("CT and MR are at the same breathing weight: no landmark motion")
    scale = a_ct / (a_mr - a_ct)
    p = ref_points.copy()
    for _ in range(iterations):
        p = ref_points + scale * sample_field(true_field, p)
    return p, p + sample_field(true_field, p)


def read_case(folder: Path, case_id: str | None = None, split: str | None = None) -> PairCase:
    """A phantom-layout case folder as a `PairCase` (truth included when present)."""
    folder = Path(folder)
    missing = [k for k in ("ct_portal", "mr_t2") if not (folder / f"{k}.nii.gz").is_file()]
    if missing:
        raise InputError(f"{folder} is not a case folder: missing {', '.join(missing)}.nii.gz")
    ct = {k: _read(folder / f"{k}.nii.gz") for k in CT_KEYS if (folder / f"{k}.nii.gz").is_file()}
    mr = {k: _read(folder / f"{k}.nii.gz") for k in MR_KEYS if (folder / f"{k}.nii.gz").is_file()}
    opt = {
        k: _read(folder / f"{k}.nii.gz") if (folder / f"{k}.nii.gz").is_file() else None
        for k in ("labels", "mr_labels", "motion_ct_to_mr")
    }
    meta = (
        json.loads((folder / "case.json").read_text()) if (folder / "case.json").is_file() else {}
    )
    case = PairCase(
        case_id=case_id or folder.name,
        ct=ct,
        mr=mr,
        labels=opt["labels"],
        mr_labels=opt["mr_labels"],
        true_field=opt["motion_ct_to_mr"],
        liver_label=int(meta.get("labels", {}).get("liver", LIVER_LABEL)),
        meta=meta,
        split=split,
    )
    k = 0
    while (folder / f"motion_ct4d_phase{k:02d}.nii.gz").is_file():
        case.four_d_fields.append(_read(folder / f"motion_ct4d_phase{k:02d}.nii.gz"))
        k += 1
    vessels = folder / "vessels.json"
    if case.true_field is not None and vessels.is_file() and "ct_phase" in meta:
        ref = bifurcations(vessels)
        if len(ref):
            p_ct, p_mr = landmarks_at_phases(
                ref, case.true_field, meta["ct_phase"]["weight"], meta["mr_phase"]["weight"]
            )
            case.landmarks = (p_ct, p_mr)
    return case


def list_cases(data: Path) -> list[tuple[str, Path, str | None]]:
    """(case id, folder, split) of a cohort folder (cohort.json) or of a single case folder."""
    data = Path(data)
    if not data.is_dir():
        raise InputError(f"--data {data} is not a folder")
    cohort = data / "cohort.json"
    if cohort.is_file():
        spec = json.loads(cohort.read_text())
        return [(c["id"], data / c["id"], c.get("split")) for c in spec.get("cases", [])]
    if (data / "ct_portal.nii.gz").is_file():
        return [(data.name, data, None)]
    raise InputError(f"{data} holds neither cohort.json nor a case folder (ct_portal.nii.gz)")


def downsample(image: sitk.Image, n: int, label: bool = False) -> sitk.Image:
    """The image on an n x n in-plane grid over the same field of view (slices kept)."""
    size = image.GetSize()
    spacing = image.GetSpacing()
    new_spacing = (spacing[0] * size[0] / n, spacing[1] * size[1] / n, spacing[2])
    # keep the FOV's outer edges: the first voxel centre moves by half the spacing change
    shift = np.array([(new_spacing[i] - spacing[i]) / 2 for i in range(2)] + [0.0])
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    origin = np.asarray(image.GetOrigin()) + direction @ shift
    ref = sitk.Image([n, n, size[2]], image.GetPixelID(), image.GetNumberOfComponentsPerPixel())
    ref.SetSpacing(new_spacing)
    ref.SetOrigin(tuple(origin))
    ref.SetDirection(image.GetDirection())
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    src = image
    if not label and n < size[0] and image.GetNumberOfComponentsPerPixel() == 1:  # anti-alias
        sig = [max((new_spacing[i] - spacing[i]) / 2.0, 0.0) for i in range(2)] + [0.0]
        src = sitk.SmoothingRecursiveGaussian(
            sitk.Cast(image, sitk.sitkFloat32), [max(s, 1e-3) for s in sig]
        )
        src = sitk.Cast(src, image.GetPixelID())
    return sitk.Resample(src, ref, sitk.Transform(), interp, 0.0, image.GetPixelID())


def downsample_case(case: PairCase, n: int) -> PairCase:
    """The whole case on an n x n in-plane grid (labels nearest, fields linear)."""
    out = PairCase(
        case_id=case.case_id,
        ct={k: downsample(v, n) for k, v in case.ct.items()},
        mr={k: downsample(v, n) for k, v in case.mr.items()},
        labels=downsample(case.labels, n, label=True) if case.labels is not None else None,
        mr_labels=downsample(case.mr_labels, n, label=True) if case.mr_labels is not None else None,
        true_field=downsample(case.true_field, n, label=False)
        if case.true_field is not None
        else None,
        landmarks=case.landmarks,
        liver_label=case.liver_label,
        meta=case.meta,
        split=case.split,
        four_d_fields=[downsample(f, n) for f in case.four_d_fields],
    )
    return out

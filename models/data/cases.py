"""Reading case folders (the phantom's contract, docs/phantom-contract.md) into arrays.

`read_case` is the one function that knows the on-disk layout; when `hidiff prepare` output
(registered, resampled cases) arrives it plugs in here and nothing above changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from edge_runtime.errors import InputError

COHORT_FORMAT = "hidiff-phantom-cohort/1"


@dataclass
class CaseArrays:
    """One case in memory, numpy (z, y, x) at the CT grid."""

    case_id: str
    ct: dict[str, np.ndarray]  # phase -> int16 HU
    mr: dict[str, np.ndarray]  # sequence -> float32, aligned to the CT phase
    labels: np.ndarray  # uint8 organ map
    vessels: np.ndarray  # uint8, 1 portal, 2 hepatic
    lesions: np.ndarray  # uint16 instance ids, pseudo-lesions already removed
    label_table: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)
    reference: sitk.Image | None = None  # geometry of the CT grid, for writing outputs


def _read(path: Path) -> tuple[np.ndarray, sitk.Image]:
    if not path.is_file():
        raise InputError(f"{path.parent}: missing {path.name} (not a phantom case folder?)")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from exc
    return sitk.GetArrayFromImage(image), image


def read_case(
    case_dir: Path, ct_phases: tuple[str, ...], sequences: tuple[str, ...], with_mr: bool = True
) -> CaseArrays:
    """Read the volumes a model needs from a phantom case folder.

    Lesion instances flagged `pseudo` in lesions.json (arterio-portal shunts) are removed from
    the lesion map: a model must not draw them as lesions.
    """
    case_dir = Path(case_dir)
    meta_path = case_dir / "case.json"
    if not meta_path.is_file():
        raise InputError(f"{case_dir}: no case.json (not a phantom case folder)")
    meta = json.loads(meta_path.read_text())
    ct, reference = {}, None
    for phase in ct_phases:
        ct[phase], reference = _read(case_dir / f"ct_{phase}.nii.gz")
    mr = {}
    if with_mr:
        for seq in sequences:
            mr[seq] = _read(case_dir / f"mr_{seq}_ctphase.nii.gz")[0].astype(np.float32)
    labels = _read(case_dir / "labels.nii.gz")[0]
    vessels = _read(case_dir / "vessels.nii.gz")[0]
    lesions = _read(case_dir / "lesions.nii.gz")[0].astype(np.int32)
    lesions_json = case_dir / "lesions.json"
    if lesions_json.is_file():
        entries = json.loads(lesions_json.read_text())
        pseudo = [e["id"] for e in entries if e.get("pseudo")]
        if pseudo:
            lesions[np.isin(lesions, pseudo)] = 0
    shape = next(iter(ct.values())).shape
    for name, arr in [*ct.items(), *mr.items(), ("labels", labels), ("vessels", vessels)]:
        if arr.shape != shape:
            raise InputError(f"{case_dir}: {name} has shape {arr.shape}, the CT {shape}")
    return CaseArrays(
        case_id=case_dir.name,
        ct=ct,
        mr=mr,
        labels=labels,
        vessels=vessels,
        lesions=lesions,
        label_table={
            str(k): int(v) for k, v in (meta.get("label_table") or meta.get("labels") or {}).items()
        },
        meta=meta,
        reference=reference,
    )


def find_cases(data: Path, split: str | None = None) -> list[Path]:
    """Case folders under `data`: a cohort (cohort.json, filtered by split), one case folder,
    or a folder of case folders."""
    data = Path(data)
    if not data.exists():
        raise InputError(f"{data}: no such folder")
    cohort = data / "cohort.json"
    if cohort.is_file():
        doc = json.loads(cohort.read_text())
        if doc.get("format") != COHORT_FORMAT:
            raise InputError(f"{cohort}: unknown format {doc.get('format')!r}")
        cases = [data / c["id"] for c in doc["cases"] if split is None or c.get("split") == split]
    elif (data / "case.json").is_file():
        cases = [data]
    else:
        cases = sorted(p.parent for p in data.glob("*/case.json"))
    if not cases:
        which = f" in split {split!r}" if split else ""
        raise InputError(f"{data}: no case folders{which}")
    return cases

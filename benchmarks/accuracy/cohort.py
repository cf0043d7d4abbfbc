"""Reading the truth (a phantom cohort on disk) and prediction folders, and refusing bad input.

The harness judges any model's output, so it reads files, never the phantom's Python objects:

- Truth: a cohort folder (cohort.json, format "hidiff-phantom-cohort/1", and case-XXXX/ folders)
  or a single case folder (case.json). Per case it uses `mr_<seq>_ctphase` (the truth),
  `labels`, `vessels`, `lesions`, `lesions.json`, `case.json` and a CT for the figures.
- Predictions: PRED/<case-id>/mr_<seq>.nii.gz (or mr_<seq>_ctphase.nii.gz), seq in t1, t2,
  t1c, on the truth's grid: same size, spacing, origin and direction as the case's CT.

Everything that would make an average meaningless is an `InputError` naming the file: a
missing case or sequence (all of them listed, never averaged away), a different grid, NaN or
infinite voxels, or a volume whose tissue contrast is that of another sequence than its name.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy import stats as sps

from edge_runtime.errors import InputError
from edge_runtime.io.nifti_scan import nonfinite_count

log = logging.getLogger(__name__)

SEQUENCES = ("t1", "t2", "t1c")
COHORT_FORMAT = "hidiff-phantom-cohort/1"
SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd")
SEQUENCE_CHECKS = ("refuse", "warn")


@dataclass(frozen=True)
class CohortConfig:
    """Tolerances of the input checks."""

    grid_tolerance_mm: float = 1e-3  # origin/spacing agreement; a resampled grid is refused
    direction_tolerance: float = 1e-4
    sequence_margin: float = 0.15  # rank-correlation lead another sequence needs to be "it"
    min_label_voxels: int = 50  # labels smaller than this do not vote in the sequence check
    # "refuse": a prediction whose contrast matches another sequence is an input error (a file
    # given under the wrong name). "warn": log it and judge the file as named, for predictions
    # a package wrote itself, where a weak model's contrast, not the file, is what is off.
    sequence_check: Literal["refuse", "warn"] = "refuse"

    def __post_init__(self) -> None:
        if self.sequence_check not in SEQUENCE_CHECKS:
            raise InputError(
                f"sequence check {self.sequence_check!r}: use {' or '.join(SEQUENCE_CHECKS)}"
            )


@dataclass(frozen=True)
class Geometry:
    """Physical grid of a volume, in SimpleITK's (x, y, z) order."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, img: sitk.Image) -> Geometry:
        return cls(tuple(img.GetSize()), img.GetSpacing(), img.GetOrigin(), img.GetDirection())

    @property
    def spacing_zyx(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.spacing[::-1])

    def difference(self, other: Geometry, cfg: CohortConfig) -> str | None:
        """A short description of how `other` differs from this grid, or None."""
        if self.size != other.size:
            return f"size {other.size} vs truth {self.size}"
        if not np.allclose(self.spacing, other.spacing, atol=cfg.grid_tolerance_mm):
            return f"spacing {_fmt(other.spacing)} vs truth {_fmt(self.spacing)} mm"
        if not np.allclose(self.origin, other.origin, atol=cfg.grid_tolerance_mm):
            return f"origin {_fmt(other.origin)} vs truth {_fmt(self.origin)} mm"
        if not np.allclose(self.direction, other.direction, atol=cfg.direction_tolerance):
            return "direction cosines differ from the truth's"
        return None


def _fmt(v: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in v) + ")"


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def read_volume(path: Path) -> tuple[np.ndarray, Geometry]:
    """A (z, y, x) array and its grid; unreadable files are input errors naming the file."""
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise InputError(f"{path}: cannot read image ({first})") from exc
    return sitk.GetArrayFromImage(img), Geometry.of(img)


def read_geometry(path: Path) -> Geometry:
    """The grid of an image file without reading its voxels."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read image header") from exc
    return Geometry(
        tuple(reader.GetSize()), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection()
    )


@dataclass
class TruthCase:
    """One phantom case folder; volumes are read on first use and kept."""

    case_id: str
    folder: Path

    def _require(self, stem: str) -> Path:
        p = _find(self.folder, stem)
        if p is None:
            raise InputError(f"truth case {self.folder} has no {stem}.nii.gz")
        return p

    def _json(self, name: str) -> Any:
        p = self.folder / name
        if not p.is_file():
            raise InputError(f"truth case {self.folder} has no {name}")
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc

    @cached_property
    def meta(self) -> dict[str, Any]:
        return self._json("case.json")

    @cached_property
    def lesion_records(self) -> list[dict[str, Any]]:
        return list(self._json("lesions.json"))

    @cached_property
    def label_table(self) -> dict[str, int]:
        meta = self.meta
        table = meta.get("labels") or meta.get("label_table") or meta.get("organ_labels") or {}
        if not isinstance(table, dict) or not table:
            raise InputError(f"{self.folder}/case.json has no organ label table")
        return {str(k): int(v) for k, v in table.items()}

    def truth_path(self, seq: str) -> Path | None:
        return _find(self.folder, f"mr_{seq}_ctphase")

    def sequences(self) -> list[str]:
        return [s for s in SEQUENCES if self.truth_path(s) is not None]

    @cached_property
    def geometry(self) -> Geometry:
        seqs = self.sequences()
        if not seqs:
            raise InputError(f"truth case {self.folder} has no mr_<seq>_ctphase volume")
        return read_geometry(self.truth_path(seqs[0]))  # type: ignore[arg-type]

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.geometry.spacing_zyx

    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def volume(self, stem: str) -> np.ndarray:
        if stem not in self._cache:
            arr, geo = read_volume(self._require(stem))
            if geo.size != self.geometry.size:
                raise InputError(f"{self.folder}/{stem}: grid differs from the case's MRI truth")
            self._cache[stem] = arr
        return self._cache[stem]

    def truth(self, seq: str) -> np.ndarray:
        return self.volume(f"mr_{seq}_ctphase").astype(np.float64)

    @property
    def labels(self) -> np.ndarray:
        return self.volume("labels")

    @property
    def vessels(self) -> np.ndarray:
        return self.volume("vessels")

    @property
    def lesions(self) -> np.ndarray:
        return self.volume("lesions")

    @cached_property
    def liver(self) -> np.ndarray:
        ids = [v for k, v in self.label_table.items() if k.lower().startswith("liver")]
        if not ids:
            raise InputError(f"{self.folder}/case.json: no 'liver' in the label table")
        return np.isin(self.labels, ids)

    @cached_property
    def body(self) -> np.ndarray:
        return np.asarray(ndi.binary_fill_holes(self.labels > 0), dtype=bool)

    def ct(self) -> np.ndarray | None:
        for stem in ("ct_portal", "ct_arterial", "ct_plain"):
            if _find(self.folder, stem) is not None:
                return self.volume(stem)
        return None

    def ssim_ceiling(self, seq: str) -> float | None:
        value = (self.meta.get("ssim_ceiling") or {}).get(seq)
        return float(value) if value is not None else None

    def drop_cache(self) -> None:
        self._cache.clear()


@dataclass(frozen=True)
class TruthCohort:
    """The truth side of an evaluation: case ids and where they live."""

    root: Path
    case_ids: list[str]
    meta: dict[str, Any]

    def case(self, case_id: str) -> TruthCase:
        folder = self.root if self.meta.get("single_case") else self.root / case_id
        return TruthCase(case_id, folder)


def load_truth(path: Path, split: str | None = None) -> TruthCohort:
    """A cohort folder, or a single case folder treated as a cohort of one."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"truth {path} is not a folder")
    cohort_json = path / "cohort.json"
    if cohort_json.is_file():
        try:
            meta = json.loads(cohort_json.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{cohort_json}: not valid JSON ({exc.msg})") from exc
        if meta.get("format") != COHORT_FORMAT:
            raise InputError(
                f"{cohort_json}: format {meta.get('format')!r}, expected {COHORT_FORMAT!r}"
            )
        cases = meta.get("cases") or []
        if split is not None:
            cases = [c for c in cases if c.get("split") == split]
        ids = [str(c["id"]) for c in cases]
        if not ids:
            raise InputError(f"{cohort_json}: no cases" + (f" in split {split!r}" if split else ""))
        absent = [i for i in ids if not (path / i).is_dir()]
        if absent:
            raise InputError(f"truth cohort {path} lacks case folders: {', '.join(absent)}")
        return TruthCohort(path, ids, meta)
    if (path / "case.json").is_file():
        if split is not None:
            raise InputError(f"--split needs a cohort folder; {path} is a single case")
        return TruthCohort(path, [path.name], {"single_case": True})
    raise InputError(f"truth {path} has neither cohort.json nor case.json")


def prediction_path(method_dir: Path, case_id: str, seq: str) -> Path | None:
    """Where a method's prediction of one case and sequence lies, if anywhere.

    `synth_mr_<seq>` is what `hidiff predict` and `hidiff synthesize` write; `mr_<seq>` and
    `mr_<seq>_ctphase` are accepted so that other tools' outputs (or truth copies) can be judged.
    """
    folder = Path(method_dir) / case_id
    return (
        _find(folder, f"synth_mr_{seq}")
        or _find(folder, f"mr_{seq}")
        or _find(folder, f"mr_{seq}_ctphase")
    )


def check_predictions(
    methods: dict[str, Path],
    truth: TruthCohort,
    sequences: list[str] | None = None,
    cfg: CohortConfig = CohortConfig(),
) -> list[str]:
    """Check every method covers every case and sequence on the truth's grid; return sequences.

    Without an explicit list, the sequences are those any method predicted for any case; each
    must then be present for every method and case. All gaps are listed in one error.
    """
    for name, folder in methods.items():
        if not Path(folder).is_dir():
            raise InputError(f"prediction {name}={folder} is not a folder")
    if sequences is None:
        found = {
            s
            for folder in methods.values()
            for cid in truth.case_ids
            for s in SEQUENCES
            if prediction_path(folder, cid, s) is not None
        }
        sequences = [s for s in SEQUENCES if s in found]
        if not sequences:
            names = ", ".join(f"{n}={p}" for n, p in methods.items())
            raise InputError(
                f"no predictions found in {names}: expected <case-id>/mr_<t1|t2|t1c>.nii.gz "
                f"for cases such as {truth.case_ids[0]}"
            )
    missing: list[str] = []
    for name, folder in methods.items():
        for cid in truth.case_ids:
            case = truth.case(cid)
            truth_seqs = case.sequences()
            for seq in sequences:
                if seq not in truth_seqs:
                    raise InputError(f"truth case {case.folder} has no mr_{seq}_ctphase")
                p = prediction_path(folder, cid, seq)
                if p is None:
                    missing.append(f"{name}:{cid}/mr_{seq}")
                    continue
                diff = case.geometry.difference(read_geometry(p), cfg)
                if diff:
                    raise InputError(f"{p}: grid differs from the truth ({diff})")
    if missing:
        shown = ", ".join(missing[:20]) + (
            f", ... ({len(missing) - 20} more)" if len(missing) > 20 else ""
        )
        raise InputError(f"{len(missing)} predicted volumes missing: {shown}")
    return list(sequences)


def sequence_signature(image: np.ndarray, labels: np.ndarray, min_voxels: int) -> dict[int, float]:
    """Median intensity per organ label: the tissue contrast that identifies a sequence."""
    out = {}
    for lab in np.unique(labels):
        sel = labels == lab
        if lab and sel.sum() >= min_voxels:
            out[int(lab)] = float(np.median(image[sel]))
    return out


def check_sequence(
    path: Path, pred: np.ndarray, seq: str, case: TruthCase, cfg: CohortConfig = CohortConfig()
) -> None:
    """Refuse a prediction whose tissue contrast matches another sequence's truth clearly better."""
    labels = case.labels
    sig = sequence_signature(pred, labels, cfg.min_label_voxels)
    corr = {}
    for other in case.sequences():
        ref = sequence_signature(case.truth(other), labels, cfg.min_label_voxels)
        keys = sorted(set(sig) & set(ref))
        if len(keys) < 3:
            return  # too few tissues to tell sequences apart
        corr[other] = float(sps.spearmanr([sig[k] for k in keys], [ref[k] for k in keys])[0])
    best = max(corr, key=lambda k: corr[k])
    if best != seq and corr[best] - corr.get(seq, -1.0) > cfg.sequence_margin:
        message = (
            f"{path}: looks like {best.upper()}, not {seq.upper()} (tissue contrast rank "
            f"correlation {corr[best]:.2f} with true {best} vs {corr.get(seq, float('nan')):.2f} "
            f"with true {seq})"
        )
        if cfg.sequence_check == "warn":
            log.warning("%s; judged as %s (--sequence-check warn)", message, seq.upper())
            return
        raise InputError(message)


def load_prediction(
    path: Path, seq: str, case: TruthCase, cfg: CohortConfig = CohortConfig()
) -> np.ndarray:
    """Read one predicted volume and run the checks that need its voxels."""
    arr, geo = read_volume(path)
    diff = case.geometry.difference(geo, cfg)
    if diff:
        raise InputError(f"{path}: grid differs from the truth ({diff})")
    arr = arr.astype(np.float64)
    bad = int((~np.isfinite(arr)).sum())
    if str(path).lower().endswith((".nii", ".nii.gz")):
        # ITK's NIfTI library zeroes NaN/Inf on load: count them in the file's own bytes
        counted = nonfinite_count(Path(path))
        if counted is not None:
            bad = max(bad, counted[0] + counted[1])
    if bad:
        raise InputError(f"{path}: {bad} voxels are NaN or infinite")
    check_sequence(path, arr, seq, case, cfg)
    return arr

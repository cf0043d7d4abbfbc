"""The phantom cohort (docs/phantom-contract.md): cohort.json plus one NIfTI folder per case.

The one paired, voxel-aligned source: `mr_*_ctphase` are the same patient's MRI at the CT's
respiratory phase, on the CT grid, so `meta["aligned"]` is True for those keys; `mr_t1/t2/t1c`
are at the MR's own phase (registration needed), with `motion_ct_to_mr` the true field.
A single case folder (case.json, no cohort.json) opens as a cohort of one.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_runtime.errors import InputError
from models.datasets.base import Case, CaseDataset, ImageRef, missing_error

COHORT_FORMAT = "hidiff-phantom-cohort/1"
CT_KEYS = ("ct_plain", "ct_arterial", "ct_portal")
MR_KEYS = ("mr_t1", "mr_t2", "mr_t1c")
MR_CTPHASE_KEYS = ("mr_t1_ctphase", "mr_t2_ctphase", "mr_t1c_ctphase")
LABEL_KEYS = ("labels", "mr_labels", "vessels", "lesions")
FIELD_KEYS = ("motion_ct_to_mr",)
JSON_FILES = ("case.json", "lesions.json")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"phantom: {path} is not readable JSON ({exc})") from exc


class PhantomCohort(CaseDataset):
    name = "phantom"
    expected_layout = (
        "expected cohort.json (format hidiff-phantom-cohort/1) and case-NNNN/ folders with "
        "ct_*.nii.gz, mr_*.nii.gz, labels.nii.gz, ... (hidiff phantom cohort writes them)"
    )

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / "cohort.json").is_file() or (root / "case.json").is_file()

    def _discover(self) -> list[Case]:
        if not (self.root / "cohort.json").is_file():
            if (self.root / "case.json").is_file():
                return [self._case(self.root, self.root.name, None)]
            raise missing_error(self.name, self.root, ["cohort.json"], self.expected_layout)
        manifest = _read_json(self.root / "cohort.json")
        if not isinstance(manifest, dict) or manifest.get("format") != COHORT_FORMAT:
            found = (
                manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
            )
            raise InputError(
                f"phantom: {self.root / 'cohort.json'} has format {found!r}, expected "
                f"{COHORT_FORMAT!r}"
            )
        entries = manifest.get("cases")
        if not isinstance(entries, list) or not entries:
            raise InputError(f"phantom: {self.root / 'cohort.json'} lists no cases")
        missing = [e["id"] + "/" for e in entries if not (self.root / e["id"]).is_dir()]
        if missing:
            raise missing_error(self.name, self.root, missing, self.expected_layout)
        return [self._case(self.root / e["id"], e["id"], e.get("split")) for e in entries]

    def _case(self, folder: Path, case_id: str, split: str | None) -> Case:
        wanted = [f"{k}.nii.gz" for k in (*CT_KEYS, *MR_KEYS, *MR_CTPHASE_KEYS, *LABEL_KEYS)]
        wanted += [f"{k}.nii.gz" for k in FIELD_KEYS] + list(JSON_FILES)
        missing = [f"{case_id}/{n}" for n in wanted if not (folder / n).is_file()]
        if missing:
            raise missing_error(self.name, self.root, missing, self.expected_layout)
        images = {k: ImageRef(folder / f"{k}.nii.gz", "CT") for k in CT_KEYS}
        images.update({k: ImageRef(folder / f"{k}.nii.gz", "MR") for k in MR_KEYS})
        images.update({k: ImageRef(folder / f"{k}.nii.gz", "MR") for k in MR_CTPHASE_KEYS})
        meta = _read_json(folder / "case.json")
        return Case(
            dataset=self.name,
            case_id=case_id,
            split=split,
            images=images,
            labels={k: ImageRef(folder / f"{k}.nii.gz") for k in LABEL_KEYS},
            extra={
                "motion_ct_to_mr": folder / "motion_ct_to_mr.nii.gz",
                "lesions.json": folder / "lesions.json",
                "case.json": folder / "case.json",
                "preview.png": folder / "preview.png",
            },
            meta={
                "aligned_pairs": {ct: list(MR_CTPHASE_KEYS) for ct in CT_KEYS},
                "paired": True,
                "case": meta,
            },
        )

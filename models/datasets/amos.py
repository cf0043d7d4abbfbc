"""AMOS 2022 (abdominal multi-organ, CT and MRI): dataset.json + imagesTr/labelsTr/... NIfTI.

Layout as released in amos22.zip (zenodo 7155725; see docs/datasets.md for the sources):
    dataset.json, imagesTr/amos_0001.nii.gz, labelsTr/amos_0001.nii.gz,
    imagesVa/, labelsVa/, imagesTs/
Modality follows the case number. The AMOS readme's prose ("less than 500 is CT") and its
counts (500 CT, 100 MRI on ids 1-600) disagree by one; independent users who checked the
intensities found amos_0500 to be CT, so ids 1-500 are CT and 501-600 MRI here
(`mri_first_id` changes the boundary). CT and MRI cases are different patients: every case
has one image (unpaired).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edge_runtime.errors import InputError
from models.datasets.base import Case, CaseDataset, ImageRef, missing_error

MRI_FIRST_ID = 501  # amos_0500 is CT (see the module docstring)
_ID = re.compile(r"amos_(\d{4})\.nii\.gz$")
_SPLIT_KEYS = (("training", "train"), ("validation", "val"), ("test", "test"))
_FOLDERS = (
    ("imagesTr", "labelsTr", "train"),
    ("imagesVa", "labelsVa", "val"),
    ("imagesTs", None, "test"),
)


def amos_modality(number: int, mri_first_id: int = MRI_FIRST_ID) -> str:
    return "MR" if number >= mri_first_id else "CT"


class AMOS(CaseDataset):
    name = "AMOS"
    expected_layout = (
        "expected the amos22 folder holding dataset.json, imagesTr/amos_NNNN.nii.gz and "
        "labelsTr/amos_NNNN.nii.gz (imagesVa/labelsVa/imagesTs optional)"
    )

    def __init__(self, root: str | Path, mri_first_id: int = MRI_FIRST_ID) -> None:
        self.mri_first_id = mri_first_id
        super().__init__(root)

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / "dataset.json").is_file() and (
            any(root.glob("images*/amos_*.nii.gz")) or "amos" in _read_text(root / "dataset.json")
        )

    def _discover(self) -> list[Case]:
        meta_path = self.root / "dataset.json"
        if not meta_path.is_file():
            raise missing_error(self.name, self.root, ["dataset.json"], self.expected_layout)
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"AMOS: {meta_path} is not readable JSON ({exc})") from exc
        entries = self._entries_from_json(meta) or self._entries_from_folders()
        if not entries:
            raise missing_error(
                self.name, self.root, ["imagesTr/amos_NNNN.nii.gz"], self.expected_layout
            )
        missing = []
        cases = []
        for image, label, split in entries:
            m = _ID.search(image.name)
            if m is None:
                raise InputError(f"AMOS: {image} does not follow the amos_NNNN.nii.gz naming")
            number = int(m.group(1))
            for p in (image, label):
                if p is not None and not p.is_file():
                    missing.append(str(p.relative_to(self.root)))
            modality = amos_modality(number, self.mri_first_id)
            key = "ct" if modality == "CT" else "mr"
            cases.append(
                Case(
                    dataset=self.name,
                    case_id=f"amos_{number:04d}",
                    split=split,
                    images={key: ImageRef(image, modality)},
                    labels={"labels": ImageRef(label)} if label is not None else {},
                    meta={"paired": False, "aligned": False, "labels": meta.get("labels", {})},
                )
            )
        if missing:
            raise missing_error(self.name, self.root, missing, self.expected_layout)
        return cases

    def _entries_from_json(self, meta: dict[str, Any]) -> list[tuple[Path, Path | None, str]]:
        out = []
        for key, split in _SPLIT_KEYS:
            for item in meta.get(key, []) or []:
                if isinstance(item, str):
                    image, label = item, None
                else:
                    image, label = item.get("image"), item.get("label")
                if not image:
                    continue
                out.append((self.root / image, (self.root / label) if label else None, split))
        return out

    def _entries_from_folders(self) -> list[tuple[Path, Path | None, str]]:
        out = []
        for images, labels, split in _FOLDERS:
            for image in sorted((self.root / images).glob("amos_*.nii.gz")):
                label = self.root / labels / image.name if labels else None
                out.append((image, label if label is not None and label.exists() else None, split))
        return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return ""

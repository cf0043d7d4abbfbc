"""SynthRAD2025 Task 1 (MRI -> CT), abdomen: one folder per patient with mr.mha, ct.mha and
mask.mha (body outline), already registered (rigid + deformable) by the organisers.

Layout of the training release (see docs/datasets.md for the sources):
    Task1/AB/1ABA005/{mr.mha, ct.mha, mask.mha}    (1 = task, AB = abdomen, A-E = centre)
`--data` may point at the folder that holds Task1/, at Task1/ itself, or at Task1/AB/.
"""

from __future__ import annotations

import re
from pathlib import Path

from models.datasets.base import Case, CaseDataset, ImageRef, missing_error

_PATIENT = re.compile(r"^1AB([A-Z])(\d{3})$")
FILES = ("mr.mha", "ct.mha", "mask.mha")


def _ab_folder(root: Path) -> Path | None:
    for candidate in (root, root / "AB", root / "Task1" / "AB"):
        if candidate.is_dir() and any(_PATIENT.match(p.name) for p in candidate.iterdir()):
            return candidate
    return None


class SynthRAD2025Abdomen(CaseDataset):
    name = "SynthRAD2025 Task1 AB"
    expected_layout = (
        "expected Task1/AB/<patient>/ folders named like 1ABA005, each with mr.mha, ct.mha and "
        "mask.mha"
    )

    @classmethod
    def detect(cls, root: Path) -> bool:
        return _ab_folder(root) is not None

    def _discover(self) -> list[Case]:
        folder = _ab_folder(self.root)
        if folder is None:
            raise missing_error(self.name, self.root, ["Task1/AB/1ABxNNN/"], self.expected_layout)
        cases, missing = [], []
        for patient in sorted(p for p in folder.iterdir() if p.is_dir()):
            m = _PATIENT.match(patient.name)
            if m is None:
                continue
            missing += [f"{patient.name}/{n}" for n in FILES if not (patient / n).is_file()]
            cases.append(
                Case(
                    dataset=self.name,
                    case_id=patient.name,
                    split="train",
                    images={
                        "mr": ImageRef(patient / "mr.mha", "MR"),
                        "ct": ImageRef(patient / "ct.mha", "CT"),
                    },
                    labels={"body_mask": ImageRef(patient / "mask.mha")},
                    meta={"paired": True, "aligned": True, "centre": m.group(1)},
                )
            )
        if missing:
            raise missing_error(self.name, self.root, missing, self.expected_layout)
        return cases

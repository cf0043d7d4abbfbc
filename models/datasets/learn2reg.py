"""Learn2Reg AbdomenMRCT: intra-patient abdominal MR and CT, NOT aligned (a registration task).

Layout as released by Learn2Reg (see docs/datasets.md for the sources):
    AbdomenMRCT_dataset.json,
    imagesTr/AbdomenMRCT_0001_0000.nii.gz   (MR: channel 0)
    imagesTr/AbdomenMRCT_0001_0001.nii.gz   (CT: channel 1)
    labelsTr/<same names>, masksTr/<same names>, imagesTs/ (optional)
The JSON's "modality" table, when present, decides which channel is MR and which CT. Some
cases hold only one modality (the "hybrid" pairing); they are yielded with paired=False.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edge_runtime.errors import InputError
from models.datasets.base import Case, CaseDataset, ImageRef, missing_error

JSON_NAME = "AbdomenMRCT_dataset.json"
_NAME = re.compile(r"AbdomenMRCT_(\d{4})_(\d{4})\.nii\.gz$")
DEFAULT_CHANNELS = {"0000": "MR", "0001": "CT"}


class Learn2RegAbdomenMRCT(CaseDataset):
    name = "Learn2Reg AbdomenMRCT"
    expected_layout = (
        f"expected the AbdomenMRCT folder holding {JSON_NAME}, imagesTr/"
        "AbdomenMRCT_NNNN_0000.nii.gz (MR) and AbdomenMRCT_NNNN_0001.nii.gz (CT), labelsTr/, "
        "masksTr/"
    )

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / JSON_NAME).is_file()

    def _channels(self) -> dict[str, str]:
        path = self.root / JSON_NAME
        try:
            meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{self.name}: {path} is not readable JSON ({exc})") from exc
        table = meta.get("modality") or {}
        channels = dict(DEFAULT_CHANNELS)
        for channel, modality in table.items():
            text = str(modality).upper()
            mod = "MR" if "MR" in text else "CT" if "CT" in text else None
            if mod is not None:
                channels[f"{int(channel):04d}"] = mod
        return channels

    def _discover(self) -> list[Case]:
        if not (self.root / JSON_NAME).is_file():
            raise missing_error(self.name, self.root, [JSON_NAME], self.expected_layout)
        if not (self.root / "imagesTr").is_dir():
            raise missing_error(self.name, self.root, ["imagesTr/"], self.expected_layout)
        channels = self._channels()
        cases = []
        missing: list[str] = []
        for folder, split in (("imagesTr", "train"), ("imagesTs", "test")):
            by_case: dict[str, dict[str, Path]] = {}
            for path in sorted((self.root / folder).glob("AbdomenMRCT_*.nii.gz")):
                m = _NAME.search(path.name)
                if m is None:
                    continue
                by_case.setdefault(m.group(1), {})[m.group(2)] = path
            for number, files in sorted(by_case.items()):
                images: dict[str, ImageRef] = {}
                labels: dict[str, ImageRef] = {}
                for channel, path in files.items():
                    modality = channels.get(channel)
                    if modality is None:
                        raise InputError(f"{self.name}: {path}: unknown channel {channel}")
                    key = modality.lower()
                    images[key] = ImageRef(path, modality)
                    for kind, sub in (("labels", "labelsTr"), ("mask", "masksTr")):
                        if split == "test":
                            continue
                        other = self.root / sub / path.name
                        if other.is_file():
                            labels[f"{key}_{kind}"] = ImageRef(other)
                        elif (self.root / sub).is_dir():
                            missing.append(f"{sub}/{path.name}")
                cases.append(
                    Case(
                        dataset=self.name,
                        case_id=f"AbdomenMRCT_{number}",
                        split=split,
                        images=images,
                        labels=labels,
                        meta={"paired": len(images) == 2, "aligned": False},
                    )
                )
        if missing:
            raise missing_error(self.name, self.root, missing, self.expected_layout)
        if not cases:
            raise missing_error(
                self.name,
                self.root,
                ["imagesTr/AbdomenMRCT_NNNN_0000.nii.gz"],
                self.expected_layout,
            )
        return cases

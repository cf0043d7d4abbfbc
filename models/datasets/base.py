"""One interface for every source of cases: the phantom cohort and the public abdominal sets.

A `Case` names its images by modality and phase/sequence (`ct_portal`, `mr_t2`, ...), its
labels and masks when the dataset has them, and its split. Nothing is read until asked:
`case.image(key)` reads through `edge_runtime.io.read_image` (so every geometry check of the
runtime applies to training data too) and `case.geometry(key)` reads only the header where the
format allows. Adapters check the folder when they are opened and say what is missing.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from edge_runtime.errors import InputError
from edge_runtime.io import MedicalImage, read_image
from edge_runtime.io.itk_read import itk_format, quiet_itk

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Geometry:
    """Where a volume lies: size (x, y, z), origin, spacing, direction (LPS, SimpleITK order)."""

    size: tuple[int, int, int]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: MedicalImage) -> Geometry:
        return cls(image.size, image.origin, image.spacing, image.direction)


@dataclass(frozen=True)
class ImageRef:
    """A volume on disk: a NIfTI/MHA/NRRD file or a DICOM folder (optionally one series).

    `loader` replaces the default reader for formats `read_image` does not cover (CHAOS's PNG
    label stacks); it receives the case so it can borrow the image geometry.
    """

    path: Path
    modality: str = ""  # CT, MR, or "" for labels/masks
    series: str | None = None
    merge_series: bool = False  # a DICOM folder whose files carry one SeriesInstanceUID each
    loader: Callable[[], MedicalImage] | None = field(default=None, compare=False)

    def read(self) -> MedicalImage:
        if self.loader is not None:
            return self.loader()
        return read_image(self.path, series=self.series, merge_series=self.merge_series)

    def geometry(self) -> Geometry:
        """From the header alone for NIfTI/MHA/NRRD; DICOM and PNG stacks are read in full."""
        if self.loader is None and self.path.is_file() and itk_format(self.path):
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(self.path))
            try:
                with quiet_itk():
                    reader.ReadImageInformation()
            except RuntimeError as exc:
                raise InputError(f"{self.path}: cannot read image header") from exc
            size = tuple(int(s) for s in reader.GetSize()[:3])
            d = np.asarray(reader.GetDirection()).reshape(reader.GetDimension(), -1)[:3, :3]
            return Geometry(
                size,  # type: ignore[arg-type]
                tuple(reader.GetOrigin()[:3]),  # type: ignore[arg-type]
                tuple(reader.GetSpacing()[:3]),  # type: ignore[arg-type]
                tuple(float(v) for v in d.ravel()),
            )
        return Geometry.of(self.read())


@dataclass
class Case:
    """One patient (or one scan, for unpaired sets) of a dataset."""

    dataset: str
    case_id: str
    split: str | None  # train / val / test, or None when the dataset does not say
    images: dict[str, ImageRef]  # e.g. ct_portal, mr_t2, mr_t1_in
    labels: dict[str, ImageRef] = field(default_factory=dict)  # label maps and masks
    extra: dict[str, Path] = field(default_factory=dict)  # other files (fields, JSON, preview)
    meta: dict[str, Any] = field(default_factory=dict)  # aligned?, paired?, centre, ...

    @property
    def modalities(self) -> set[str]:
        return {ref.modality for ref in self.images.values() if ref.modality}

    def image(self, key: str) -> MedicalImage:
        return self._ref(self.images, key, "image").read()

    def label(self, key: str) -> MedicalImage:
        return self._ref(self.labels, key, "label").read()

    def geometry(self, key: str) -> Geometry:
        refs = {**self.images, **self.labels}
        return self._ref(refs, key, "image or label").geometry()

    def _ref(self, refs: dict[str, ImageRef], key: str, what: str) -> ImageRef:
        if key not in refs:
            raise InputError(
                f"{self.dataset} case {self.case_id} has no {what} {key!r}; it has: "
                f"{', '.join(sorted(refs)) or 'none'}"
            )
        return refs[key]


class CaseDataset(abc.ABC):
    """A folder of cases. Subclasses find and check them in `_discover`, once, when opened."""

    name: str = "dataset"
    #: What the folder must look like, shown when it does not.
    expected_layout: str = ""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.name}: {self.root} is not a folder")
        self._cases = self._discover()
        if not self._cases:
            raise InputError(f"{self.name}: no cases found in {self.root}; {self.expected_layout}")

    @classmethod
    @abc.abstractmethod
    def detect(cls, root: Path) -> bool:
        """True when `root` looks like this dataset (used by `open_dataset`)."""

    @abc.abstractmethod
    def _discover(self) -> list[Case]:
        """All cases, checked for completeness; InputError naming what is missing."""

    def cases(self, split: str | None = None) -> Iterator[Case]:
        if split is not None and split not in SPLITS:
            raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        for case in self._cases:
            if split is None or case.split == split:
                yield case

    def __iter__(self) -> Iterator[Case]:
        return self.cases()

    def __len__(self) -> int:
        return len(self._cases)

    def __getitem__(self, case_id: str) -> Case:
        for case in self._cases:
            if case.case_id == case_id:
                return case
        raise KeyError(case_id)


def missing_error(dataset: str, root: Path, missing: list[str], layout: str) -> InputError:
    """One line naming what is missing (the first few) and what the folder should hold."""
    shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    return InputError(f"{dataset}: {root} is incomplete: missing {shown}; {layout}")

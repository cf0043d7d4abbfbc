"""CHAOS (Combined CT-MR Healthy Abdominal Organ Segmentation): DICOM series, PNG labels.

Layout of CHAOS_Train_Sets.zip / CHAOS_Test_Sets.zip (zenodo 3431873; docs/datasets.md):
    Train_Sets/CT/<id>/DICOM_anon/*.dcm            Train_Sets/CT/<id>/Ground/*.png  (liver)
    Train_Sets/MR/<id>/T1DUAL/DICOM_anon/InPhase/*.dcm, .../OutPhase/*.dcm, T1DUAL/Ground/*.png
    Train_Sets/MR/<id>/T2SPIR/DICOM_anon/*.dcm     Train_Sets/MR/<id>/T2SPIR/Ground/*.png
CT and MR come from different patients (unpaired). Ground truth is one PNG per slice; the
i-th PNG (natural name order) belongs to the i-th DICOM file (natural name order), so the
stack is put into the volume's order through each file's ImagePositionPatient, never by
assuming the names run along the body. MR label grey values 63/126/189/252 are liver, right
kidney, left kidney, spleen; CT labels mark the liver only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom

from edge_runtime.errors import InputError, MissingDependencyError
from edge_runtime.io import MedicalImage
from models.datasets.base import Case, CaseDataset, ImageRef, missing_error

MR_LABELS = {"liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}
_MR_GREY = ((56, 70, 1), (111, 135, 2), (176, 200, 3), (241, 255, 4))  # inclusive (lo, hi, label)


def natural_key(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted((p for p in folder.glob(pattern) if p.is_file()), key=natural_key)


def _read_png(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as exc:  # pillow comes with the models extra (matplotlib, scikit-image)
        raise MissingDependencyError(
            "reading CHAOS PNG labels needs pillow: pip install pillow"
        ) from exc
    with Image.open(path) as im:
        arr = np.asarray(im)
    return arr[..., 0] if arr.ndim == 3 else arr


def png_label_loader(
    ground: Path, dicom_dir: Path, image: ImageRef, modality: str
) -> Callable[[], MedicalImage]:
    """A loader giving the label volume on the image's grid, slices matched through positions."""

    def load() -> MedicalImage:
        ref = image.read()
        dicoms = _files(dicom_dir, "*.dcm")
        pngs = _files(ground, "*.png")
        if len(dicoms) != len(pngs):
            raise InputError(
                f"CHAOS: {ground} holds {len(pngs)} label PNGs for {len(dicoms)} DICOM slices in "
                f"{dicom_dir}"
            )
        normal = ref.direction_matrix()[:, 2]
        depth = []
        for path in dicoms:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            depth.append(float(np.asarray(ds.ImagePositionPatient, float) @ normal))
        order = np.argsort(depth, kind="stable")
        slices = [_read_png(pngs[i]) for i in order]
        shape = ref.voxels.shape[1:]
        for i, s in zip(order, slices, strict=True):
            if s.shape != shape:
                raise InputError(f"CHAOS: {pngs[i]} is {s.shape[1]}x{s.shape[0]}, the slices are "
                                 f"{shape[1]}x{shape[0]}")  # fmt: skip
        grey = np.stack(slices).astype(np.int32)
        labels = np.zeros(grey.shape, np.float32)
        if modality == "CT":
            labels[grey > 0] = 1
        else:
            for lo, hi, value in _MR_GREY:
                labels[(grey >= lo) & (grey <= hi)] = value
        return ref.with_voxels(labels, modality="", series_description="CHAOS ground truth")

    return load


def _sets(root: Path) -> list[tuple[Path, str]]:
    """(folder holding CT/ and MR/, split) pairs under `root`."""
    found = []
    for name, split in (("Train_Sets", "train"), ("Test_Sets", "test")):
        for base in (root / name, root / f"CHAOS_{name}" / name):
            if (base / "CT").is_dir() or (base / "MR").is_dir():
                found.append((base, split))
                break
    if not found and ((root / "CT").is_dir() or (root / "MR").is_dir()):
        split = "test" if "test" in root.name.lower() else "train"
        found.append((root, split))
    return found


class CHAOS(CaseDataset):
    name = "CHAOS"
    expected_layout = (
        "expected Train_Sets/ (or Test_Sets/, or a folder) holding CT/<id>/DICOM_anon/*.dcm and "
        "MR/<id>/T1DUAL/DICOM_anon/{InPhase,OutPhase}/, MR/<id>/T2SPIR/DICOM_anon/, with Ground/ "
        "label folders in the training set"
    )

    @classmethod
    def detect(cls, root: Path) -> bool:
        return any(
            any(base.glob("CT/*/DICOM_anon")) or any(base.glob("MR/*/T2SPIR"))
            for base, _ in _sets(root)
        )

    def _discover(self) -> list[Case]:
        sets = _sets(self.root)
        if not sets:
            raise missing_error(self.name, self.root, ["CT/ or MR/"], self.expected_layout)
        cases: list[Case] = []
        missing: list[str] = []
        for base, split in sets:
            for folder in sorted((base / "CT").glob("*"), key=natural_key):
                if folder.is_dir():
                    cases.append(self._ct_case(folder, split, missing))
            for folder in sorted((base / "MR").glob("*"), key=natural_key):
                if folder.is_dir():
                    cases.append(self._mr_case(folder, split, missing))
        if missing:
            raise missing_error(
                self.name, self.root, [str(Path(m).relative_to(self.root)) for m in missing],
                self.expected_layout,
            )  # fmt: skip
        return cases

    def _need(self, folder: Path, pattern: str, missing: list[str]) -> bool:
        if not _files(folder, pattern):
            missing.append(str(folder / pattern))
            return False
        return True

    def _ct_case(self, folder: Path, split: str, missing: list[str]) -> Case:
        dicom = folder / "DICOM_anon"
        self._need(dicom, "*.dcm", missing)
        image = ImageRef(dicom, "CT", merge_series=True)
        labels = {}
        ground = folder / "Ground"
        if split == "train" and self._need(ground, "*.png", missing):
            labels["liver"] = ImageRef(ground, loader=png_label_loader(ground, dicom, image, "CT"))
        return Case(
            dataset=self.name,
            case_id=f"CT-{folder.name}",
            split=split,
            images={"ct": image},
            labels=labels,
            meta={"paired": False, "aligned": False, "labels": {"liver": 1}},
        )

    def _mr_case(self, folder: Path, split: str, missing: list[str]) -> Case:
        t1 = folder / "T1DUAL" / "DICOM_anon"
        t2 = folder / "T2SPIR" / "DICOM_anon"
        for sub in (t1 / "InPhase", t1 / "OutPhase", t2):
            self._need(sub, "*.dcm", missing)
        images = {  # CHAOS MR files carry one SeriesInstanceUID each: a folder is the series
            "mr_t1_in": ImageRef(t1 / "InPhase", "MR", merge_series=True),
            "mr_t1_out": ImageRef(t1 / "OutPhase", "MR", merge_series=True),
            "mr_t2": ImageRef(t2, "MR", merge_series=True),
        }
        labels = {}
        if split == "train":
            g1, g2 = folder / "T1DUAL" / "Ground", folder / "T2SPIR" / "Ground"
            if self._need(g1, "*.png", missing):
                labels["t1_labels"] = ImageRef(
                    g1, loader=png_label_loader(g1, t1 / "InPhase", images["mr_t1_in"], "MR")
                )
            if self._need(g2, "*.png", missing):
                labels["t2_labels"] = ImageRef(
                    g2, loader=png_label_loader(g2, t2, images["mr_t2"], "MR")
                )
        return Case(
            dataset=self.name,
            case_id=f"MR-{folder.name}",
            split=split,
            images=images,
            labels=labels,
            meta={"paired": False, "aligned": False, "labels": MR_LABELS},
        )

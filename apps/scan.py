"""Opening a scan for the app: a phantom case folder, a DICOM folder, a volume file, an upload.

A phantom case folder (written by `hidiff phantom case`) brings its labels (liver, vessels,
lesions) and the true MRI on the CT's grid, so overlays and metrics against a reference appear;
a clinical scan brings the CT alone. The app imports `edge_runtime` only, never `models`: the
case is read from its files, as the contract in docs/phantom-contract.md describes them.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apps.upload import (
    VOLUME_SUFFIXES,
    Extracted,
    UploadLimits,
    extract_zip,
    single_volume_name,
)
from edge_runtime.errors import InputError
from edge_runtime.io import MedicalImage, read_image

SEQUENCES = {"t2": "T2WI", "t1": "T1WI", "t1c": "post-contrast T1"}


@dataclass
class Scan:
    """One opened CT and whatever ground truth came with it (all on the CT's grid)."""

    name: str
    ct: MedicalImage
    kind: str  # "phantom case", "DICOM series", "volume file"
    organs: np.ndarray | None = None  # organ label map (phantom)
    liver_label: int | None = None
    vessels: np.ndarray | None = None
    lesions: np.ndarray | None = None  # instance ids
    lesion_records: list[dict] = field(default_factory=list)
    reference: dict[str, np.ndarray] = field(default_factory=dict)  # sequence -> true MR
    notes: list[str] = field(default_factory=list)

    @property
    def liver(self) -> np.ndarray | None:
        if self.organs is None or self.liver_label is None:
            return None
        return self.organs == self.liver_label

    @property
    def has_labels(self) -> bool:
        return self.liver is not None and self.vessels is not None and self.lesions is not None

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        x, y, z = self.ct.spacing
        return (z, y, x)

    @property
    def key(self) -> str:
        """Identifies the scan for caching results (name plus the CT's shape and origin)."""
        return f"{self.name}|{self.ct.voxels.shape}|{self.ct.origin}"


def is_phantom_case(folder: Path) -> bool:
    return (folder / "case.json").is_file() and (folder / "ct_portal.nii.gz").is_file()


def _volume(folder: Path, stem: str) -> np.ndarray | None:
    path = folder / f"{stem}.nii.gz"
    return read_image(path).voxels if path.is_file() else None


def open_phantom_case(folder: Path) -> Scan:
    """The portal-venous CT of a phantom case, its labels and its true MRIs (CT phase)."""
    ct = read_image(folder / "ct_portal.nii.gz")
    try:
        meta = json.loads((folder / "case.json").read_text())
        records = json.loads((folder / "lesions.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder}: case.json/lesions.json unreadable ({exc})") from exc
    scan = Scan(
        name=folder.name,
        ct=ct,
        kind="phantom case",
        organs=_volume(folder, "labels"),
        liver_label=meta.get("labels", {}).get("liver"),
        vessels=_volume(folder, "vessels"),
        lesions=_volume(folder, "lesions"),
        lesion_records=records if isinstance(records, list) else [],
    )
    for seq in SEQUENCES:
        ref = _volume(folder, f"mr_{seq}_ctphase")
        if ref is not None:
            scan.reference[seq] = ref
    return scan


def open_path(path: str | Path) -> Scan:
    """A phantom case folder, a DICOM folder or file, or a NIfTI/MHA/NRRD file on this computer."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir() and is_phantom_case(p):
        return open_phantom_case(p)
    ct = read_image(p)
    kind = "DICOM series" if ct.metadata.source_format.startswith("dicom") else "volume file"
    return Scan(name=p.name, ct=ct, kind=kind)


def open_upload(name: str, data: bytes, workdir: Path, limits: UploadLimits) -> Scan:
    """An uploaded zip (a DICOM export, or one volume file zipped) or a single volume file.

    Files land in a fresh folder under `workdir`; the zip is extracted by `apps.upload`, which
    refuses traversal, symlinks and bombs before anything is written.
    """
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=workdir))
    try:
        return _open_upload(name, data, folder, limits)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a refused upload leaves nothing behind
        raise


def _open_upload(name: str, data: bytes, folder: Path, limits: UploadLimits) -> Scan:
    if name.lower().endswith(".zip"):
        if len(data) > limits.max_total_bytes:
            raise InputError(f"{name}: larger than the upload limit")
        found: Extracted = extract_zip(io.BytesIO(data), folder / "files", limits)
        root = _common_root(found)
        scan = _read_extracted(found, root)
        scan.name = Path(name).stem
        scan.notes.extend(found.skipped)
        return scan
    target = folder / single_volume_name(name)
    target.write_bytes(data)
    ct = read_image(target)
    kind = "DICOM series" if ct.metadata.source_format.startswith("dicom") else "volume file"
    return Scan(name=target.name, ct=ct, kind=kind)


def _common_root(found: Extracted) -> Path:
    parents = {f.parent for f in found.files}
    if len(parents) == 1:
        return parents.pop()
    return found.folder


def _read_extracted(found: Extracted, root: Path) -> Scan:
    volumes = [f for f in found.files if not _is_dicom_name(f)]
    if volumes and len(found.files) == len(volumes):
        if len(volumes) > 1:
            names = ", ".join(sorted(v.name for v in volumes))
            raise InputError(f"the zip holds several volumes ({names}); upload one")
        ct = read_image(volumes[0])
        return Scan(name=volumes[0].name, ct=ct, kind="volume file")
    ct = read_image(root)
    return Scan(name=root.name, ct=ct, kind="DICOM series")


def _is_dicom_name(path: Path) -> bool:
    return not path.name.lower().endswith(VOLUME_SUFFIXES)

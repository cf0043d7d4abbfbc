"""Find the DICOM image series in a folder, without reading pixel data.

A PACS export may hold several series, non-DICOM files (README, thumbnails) and non-image
objects (DICOMDIR, structured reports). Headers are read with large values deferred, so scanning
a few thousand slices costs little memory; pixel data are only read once a series is chosen.
Series are described by UID, description, modality and image count: never by patient.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from edge_runtime.errors import InputError
from edge_runtime.io.privacy import one_line

log = logging.getLogger("hidiff.io")

# Storage SOP classes whose frames carry their geometry in functional groups.
MULTIFRAME_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR",
}
SINGLE_FRAME_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.128": "PET",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
}
# DICOM objects with pixel data (or none) that are not an image volume: a folder skips them, a
# file given alone is refused by name (a segmentation or a dose grid is not a CT).
NON_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "a DICOM Segmentation (SEG)",
    "1.2.840.10008.5.1.4.1.1.66.7": "a Label Map Segmentation",
    "1.2.840.10008.5.1.4.1.1.481.2": "an RT Dose",
    "1.2.840.10008.5.1.4.1.1.481.3": "an RT Structure Set",
    "1.2.840.10008.5.1.4.1.1.481.5": "an RT Plan",
    "1.2.840.10008.5.1.4.1.1.11.1": "a Presentation State",
    "1.2.840.10008.5.1.4.1.1.104.1": "an Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.88.11": "a Structured Report",
    "1.2.840.10008.5.1.4.1.1.88.22": "a Structured Report",
    "1.2.840.10008.5.1.4.1.1.88.33": "a Structured Report",
}
NON_IMAGE_MODALITIES = {
    "SEG": "a DICOM Segmentation (SEG)",
    "RTSTRUCT": "an RT Structure Set",
    "RTDOSE": "an RT Dose",
    "RTPLAN": "an RT Plan",
    "PR": "a Presentation State",
    "SR": "a Structured Report",
    "KO": "a Key Object Selection",
    "DOC": "a document",
    "REG": "a Registration",
}
_DEFER = 1024  # bytes: values larger than this (pixel data) are read only when needed
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # (Float/DoubleFloat) PixelData
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}  # raw bytes: converting cannot fail


@dataclass
class DicomFile:
    path: Path
    header: Dataset  # pixel data deferred


@dataclass
class SeriesInfo:
    """One series found in a folder: what `hidiff info` lists and `--series` selects."""

    uid: str
    description: str
    modality: str
    files: list[DicomFile] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return len(self.files)

    def label(self) -> str:
        desc = self.description or "no description"
        return f"{self.uid} '{desc}' {self.modality or '?'} ({self.n_images} files)"


def _stays_deferred(raw: object, tag: int, file_size: int | None) -> bool:
    """A deferred (large) value left on disk: pixel data (read when needed, its length checked
    then), or bytes of a binary VR (a vendor's private header) that lie inside the file. Any
    other deferred value (long text, an unknown VR, a length past the end) is converted now."""
    if int(tag) in _PIXEL_TAGS:
        return True
    end = (getattr(raw, "value_tell", None) or 0) + (getattr(raw, "length", None) or 0)
    return getattr(raw, "VR", None) in _BINARY_VRS and file_size is not None and end <= file_size


def _convert_all(ds: Dataset, file_size: int | None) -> None:
    """Convert every element now (sequences included): pydicom converts on first access, and a
    hostile value must fail in `read_header`, not in whatever reads it later."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if raw.value is None and _stays_deferred(raw, tag, file_size):
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                _convert_all(item, file_size)


def read_header(path: Path, force: bool = False) -> Dataset:
    """The header of one DICOM file, pixel data deferred; InputError when unreadable.

    `force` reads a file without the 128-byte preamble and DICM marker (old exports).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, defer_size=_DEFER, force=force)
            # pydicom converts elements lazily, on first access: convert them all now (nested
            # sequences included), so a hostile value fails here, not in whatever reads it later.
            size = path.stat().st_size
            _convert_all(ds, size)
            if getattr(ds, "file_meta", None) is not None:
                _convert_all(ds.file_meta, size)
    except InvalidDicomError as exc:
        raise InputError(f"{path}: not a DICOM file ({one_line(exc)})") from exc
    except PermissionError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    except Exception as exc:  # the parser's every failure on these bytes is the file's fault
        raise InputError(
            f"{path}: truncated or corrupt DICOM header ({type(exc).__name__})"
        ) from exc
    if force and "SOPClassUID" not in ds and not has_pixel_data(ds):
        raise InputError(f"{path}: not a DICOM file (no DICM marker and no DICOM header)")
    return ds


def looks_like_dicom(path: Path) -> bool:
    """True when the file has the DICM marker after its 128-byte preamble."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def has_pixel_data(ds: Dataset) -> bool:
    return any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


def non_image_kind(ds: Dataset) -> str | None:
    """What a DICOM object that is not an image volume is ("an RT Structure Set"), or None."""
    meta = getattr(ds, "file_meta", None)
    for sop in (
        str(ds.get("SOPClassUID", "")),
        str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else "",
    ):
        if sop in NON_IMAGE_SOP_CLASSES:
            return NON_IMAGE_SOP_CLASSES[sop]
    return NON_IMAGE_MODALITIES.get(str(ds.get("Modality", "")).upper())


def check_links(folder: Path) -> None:
    """Refuse links the scan cannot follow safely: a link that loops or points nowhere (a
    slice of the export is missing) and a link to a folder (never followed, so its slices would
    be silently left out)."""
    for p in folder.rglob("*"):
        if not p.is_symlink():
            continue
        if not p.exists():
            raise InputError(
                f"{p}: symbolic link that loops or points nowhere; copy the export without "
                "links (cp -rL) so that no slice goes missing"
            )
        if p.is_dir():
            raise InputError(
                f"{p}: symbolic link to a folder, which is not followed (its slices would be "
                "left out); copy the export without links (cp -rL)"
            )


def is_image_sop_class(ds: Dataset) -> bool:
    """True for CT/MR/PET/SC image storage (from the data set or its file meta information)."""
    meta = getattr(ds, "file_meta", None)
    sops = {str(ds.get("SOPClassUID", ""))}
    if meta is not None:
        sops.add(str(meta.get("MediaStorageSOPClassUID", "")))
    return any(
        s in SINGLE_FRAME_IMAGE_SOP_CLASSES or s in MULTIFRAME_IMAGE_SOP_CLASSES for s in sops
    )


def scan_folder(folder: Path) -> list[SeriesInfo]:
    """All image series under `folder` (recursively), largest first; InputError when none.

    Files without the DICM marker are skipped; a file that has it but cannot be parsed is an
    error (a truncated copy must not silently shorten a volume).
    """
    folder = Path(folder)
    check_links(folder)
    entries = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )  # hidden files and folders (e.g. unfinished atomic writes) are not part of an export
    if not entries:
        raise InputError(f"{folder}: the folder is empty")
    dicom: list[DicomFile] = []
    for path in entries:
        if not looks_like_dicom(path):
            continue
        dicom.append(DicomFile(path, read_header(path)))
    if not dicom:
        raise InputError(
            f"{folder}: no DICOM files found ({len(entries)} files looked at, none with the "
            "DICM marker)"
        )
    series: dict[str, SeriesInfo] = {}
    no_pixels: list[Path] = []
    not_images: list[tuple[Path, str]] = []
    for f in dicom:
        ds = f.header
        kind = non_image_kind(ds)
        if kind is not None:
            not_images.append((f.path, kind))
            continue
        if not has_pixel_data(ds):
            if is_image_sop_class(ds):
                raise InputError(
                    f"{f.path}: DICOM image without pixel data (truncated or incomplete file?)"
                )
            no_pixels.append(f.path)
            continue
        uid = str(ds.get("SeriesInstanceUID", "")) or "(no SeriesInstanceUID)"
        info = series.setdefault(
            uid,
            SeriesInfo(uid, str(ds.get("SeriesDescription", "")), str(ds.get("Modality", ""))),
        )
        info.files.append(f)
    if not series and not_images:
        path, kind = not_images[0]
        raise InputError(
            f"{folder}: no image series: {len(not_images) + len(no_pixels)} DICOM objects, none "
            f"an image (e.g. {path.name}: {kind}, not an image)"
        )
    if not series:
        raise InputError(
            f"{folder}: DICOM without pixel data ({len(no_pixels)} DICOM objects, e.g. "
            f"{no_pixels[0].name}, hold no image)"
        )
    if no_pixels or not_images:
        log.debug(
            "%s: ignored %d DICOM objects that are not images", folder, len(no_pixels + not_images)
        )
    return sorted(series.values(), key=lambda s: (-s.n_images, s.uid))


def merge_all(folder: Path, found: list[SeriesInfo]) -> SeriesInfo:
    """All image files of the folder as one series (for exports with a UID per file)."""
    modalities = sorted({s.modality for s in found})
    if len(modalities) > 1:
        raise InputError(
            f"{folder}: cannot read as one series: it mixes modalities {', '.join(modalities)}"
        )
    files = [f for s in found for f in s.files]
    uid = found[0].uid if len(found) == 1 else f"(merged from {len(found)} SeriesInstanceUIDs)"
    return SeriesInfo(uid, found[0].description, modalities[0], files)


def select_series(folder: Path, found: list[SeriesInfo], series: str | None) -> SeriesInfo:
    """The series the user asked for (UID or description), or the only one there is."""
    if series is None:
        if len(found) == 1:
            return found[0]
        listing = "; ".join(s.label() for s in found)
        raise InputError(
            f"{folder}: holds {len(found)} DICOM series mixed together; choose one with "
            f"--series UID-or-description (or --one-series if they are one volume): {listing}"
        )
    by_uid = [s for s in found if s.uid == series]
    if by_uid:
        return by_uid[0]
    by_desc = [s for s in found if s.description.strip().lower() == series.strip().lower()]
    if len(by_desc) == 1:
        return by_desc[0]
    listing = "; ".join(s.label() for s in (by_desc or found))
    if by_desc:
        raise InputError(
            f"{folder}: {len(by_desc)} series share the description {series!r}; "
            f"choose by UID: {listing}"
        )
    raise InputError(f"{folder}: no series with UID or description {series!r}; found: {listing}")

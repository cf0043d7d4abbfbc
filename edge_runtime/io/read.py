"""`read_image`: one entry point for every input a clinic or a research pipeline hands us.

A folder is a DICOM export (one series, or several to choose from); a file is NIfTI, MHA/MHD,
NRRD (by suffix) or DICOM (by its DICM marker; an enhanced multi-frame file is a whole volume).
Every failure is an `InputError` whose one line names the file and the problem.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from pathlib import Path

from edge_runtime.errors import InputError
from edge_runtime.io.config import ReadConfig
from edge_runtime.io.dicom_read import read_series
from edge_runtime.io.dicom_scan import (
    DicomFile,
    SeriesInfo,
    has_pixel_data,
    looks_like_dicom,
    merge_all,
    non_image_kind,
    read_header,
    scan_folder,
    select_series,
)
from edge_runtime.io.image import MedicalImage
from edge_runtime.io.itk_read import itk_format, read_itk
from edge_runtime.io.privacy import redact

log = logging.getLogger("hidiff.io")


def read_image(
    path: str | Path,
    series: str | None = None,
    *,
    min_slices: int | None = None,
    merge_series: bool | None = None,
    config: ReadConfig | None = None,
) -> MedicalImage:
    """Read a volume from a DICOM folder or file, NIfTI, MHA/MHD or NRRD.

    `series` picks one series of a folder that holds several (SeriesInstanceUID or
    SeriesDescription). `min_slices` overrides the config's (default 2: a volume is needed);
    `merge_series=True` reads all images of a folder as one series (exports with a UID per file).
    """
    return inspect_image(
        path, series, min_slices=min_slices, merge_series=merge_series, config=config
    )[0]


def inspect_image(
    path: str | Path,
    series: str | None = None,
    *,
    min_slices: int | None = None,
    merge_series: bool | None = None,
    config: ReadConfig | None = None,
) -> tuple[MedicalImage, list[SeriesInfo]]:
    """`read_image`, plus the series found when `path` is a folder (headers scanned once)."""
    cfg = config or ReadConfig()
    if min_slices is not None:
        cfg = replace(cfg, min_slices=min_slices)
    if merge_series is not None:
        cfg = replace(cfg, merge_series=merge_series)
    found: list[SeriesInfo] = []
    # Library warnings (pydicom's value checks, ...) would print extra stderr lines and may
    # quote header values: they are kept, redacted, at debug level instead.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = _read(Path(path), series, cfg, found)
    for w in caught:
        log.debug("%s: %s", path, redact(str(w.message), [image.study_header]))
    return image, found


def _read(path: Path, series: str | None, cfg: ReadConfig, found: list[SeriesInfo]) -> MedicalImage:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        found.extend(scan_folder(path))
        if cfg.merge_series and series is None:
            chosen = merge_all(path, found)
        else:
            chosen = select_series(path, found, series)
        return read_series(chosen, path, cfg)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    fmt = itk_format(path)
    if fmt is not None:
        return read_itk(path, cfg, fmt)
    other = other_format(path)
    if other is not None:
        raise InputError(f"{path}: {other}")
    if looks_like_dicom(path) or path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return read_dicom_file(path, cfg)
    raise InputError(
        f"{path}: not an image: neither DICOM (no DICM marker) nor a NIfTI/MHA/MHD/NRRD file name"
    )


def read_dicom_file(path: Path, cfg: ReadConfig) -> MedicalImage:
    """One DICOM file: an enhanced multi-frame volume, or a single slice (needs min_slices=1)."""
    header = read_header(path, force=not looks_like_dicom(path))
    kind = non_image_kind(header)
    sop = header.get("SOPClassUID", "?")
    if not has_pixel_data(header):
        what = f"{kind}, not an image; " if kind else ""
        raise InputError(f"{path}: DICOM without pixel data ({what}SOP class {sop})")
    if kind is not None:
        raise InputError(
            f"{path}: {kind}, not an image (SOP class {sop}); give the CT series it belongs to"
        )
    info = SeriesInfo(
        uid=str(header.get("SeriesInstanceUID", "")),
        description=str(header.get("SeriesDescription", "")),
        modality=str(header.get("Modality", "")),
        files=[DicomFile(path, header)],
    )
    return read_series(info, path, cfg)


def list_series(path: str | Path) -> list[SeriesInfo]:
    """The image series in a DICOM folder (for `hidiff info` and choosing `--series`)."""
    path = Path(path)
    if not path.is_dir():
        return []
    return scan_folder(path)


# Files a clinic hands over by mistake, known by their first bytes whatever their name says.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG picture (by its content), not a medical image"),
    (b"\xff\xd8\xff", "a JPEG picture (by its content), not a medical image"),
    (b"GIF8", "a GIF picture (by its content), not a medical image"),
    (b"%PDF", "not an image: a PDF document"),
    (
        b"PK\x03\x04",
        "a zip archive: unpack it first and give the folder (the app's upload takes zips)",
    ),
    (b"\x1f\x8b", "a gzip file whose name is not .nii.gz; unpack it or name it .nii.gz"),
)


def other_format(path: Path) -> str | None:
    """What a file that is not a medical image is, from its first bytes, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    return None

"""Read one DICOM series (classic single-frame files or one enhanced multi-frame file).

Order of work, so that bad input fails before anything big is allocated: headers -> slice
records -> geometry checks -> transfer syntax and pixel-data length checks -> memory budget ->
decode -> modality LUT (rescale slope/intercept, so CT comes out in HU) -> optional resampling.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID

from edge_runtime.console import console, progress
from edge_runtime.errors import InputError
from edge_runtime.io.config import ReadConfig, memory_limit_bytes
from edge_runtime.io.dicom_geometry import SliceRecord, check_series, resample_uniform
from edge_runtime.io.dicom_scan import MULTIFRAME_IMAGE_SOP_CLASSES, DicomFile, SeriesInfo
from edge_runtime.io.image import ImageMetadata, MedicalImage
from edge_runtime.io.privacy import IDENTIFYING_KEYWORDS, redact

log = logging.getLogger("hidiff.io")
PROGRESS_MIN_SLICES = 200  # below this a read takes about a second: no bar

# What a derived series must copy to join the source's study (patient, study, frame of ref.).
STUDY_LEVEL_KEYWORDS = (
    *IDENTIFYING_KEYWORDS,
    "SpecificCharacterSet",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    "PatientPosition",
)

_PHASE_PATTERNS = (
    ("arterial", r"arter|\bart\b|\bhap\b|late art"),
    ("portal", r"portal|\bpv\b|venous|\bpvp\b"),
    ("delayed", r"delay|equilib|\bdel\b|transitional|hepatobiliary"),
    ("plain", r"plain|non[- ]?con|native|\bpre\b|\bnc\b|without contrast|unenhanced"),
)


def phase_hint(*texts: str) -> str:
    """A contrast phase guessed from free text (series description, contrast agent), or ''."""
    text = " ".join(t for t in texts if t).lower()
    for phase, pattern in _PHASE_PATTERNS:
        if re.search(pattern, text):
            return phase
    return ""


def _float_list(value: object, n: int, what: str, where: str) -> np.ndarray:
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {what} is missing or not numeric") from exc
    if arr.shape != (n,):
        raise InputError(f"{where}: {what} has {arr.size} values, expected {n}")
    return arr


def _rescale(slope: object, intercept: object, where: str) -> tuple[float, float]:
    """(slope, intercept) of the modality LUT; absent means (1, 0). A slope of 0 would map
    every pixel to the intercept and a non-finite one poisons them all: a corrupt header."""
    s = 1.0 if slope in (None, "") else float(slope)  # type: ignore[arg-type]
    b = 0.0 if intercept in (None, "") else float(intercept)  # type: ignore[arg-type]
    if s == 0 or not np.isfinite(s) or not np.isfinite(b):
        raise InputError(
            f"{where}: RescaleSlope {slope} / RescaleIntercept {intercept} would not give "
            "pixel values (a slope of 0 maps every pixel to one value); the header is corrupt"
        )
    return s, b


def _records_single_frame(files: list[DicomFile]) -> list[SliceRecord]:
    records = []
    for f in files:
        try:
            records.append(_record_of_file(f))
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            raise InputError(
                f"{f.path}: unreadable geometry or rescale attribute ({type(exc).__name__})"
            ) from exc
    return records


def _record_of_file(f: DicomFile) -> SliceRecord:
    ds = f.header
    where = str(f.path)
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        raise InputError(
            f"{where}: no ImagePositionPatient/ImageOrientationPatient, so its place in the "
            "volume is unknown"
        )
    spacing = _float_list(ds.get("PixelSpacing"), 2, "PixelSpacing", where)
    slope, intercept = _rescale(ds.get("RescaleSlope"), ds.get("RescaleIntercept"), where)
    rows, columns = _image_size(ds, where)
    return SliceRecord(
        path=f.path,
        frame=None,
        position=_float_list(ds.ImagePositionPatient, 3, "ImagePositionPatient", where),
        orientation=_float_list(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", where),
        pixel_spacing=(float(spacing[0]), float(spacing[1])),
        rows=rows,
        columns=columns,
        slope=slope,
        intercept=intercept,
        thickness=float(ds.get("SliceThickness", 0.0) or 0.0),
    )


def _image_size(ds: Dataset, where: str) -> tuple[int, int]:
    """(Rows, Columns): both present and positive, or the file is refused."""
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise InputError(f"{where}: Rows/Columns missing or zero ({rows}x{cols}): no image size")
    return rows, cols


def _functional(ds: Dataset, frame_item: Dataset | None, seq: str, attr: str) -> object:
    """An attribute of a functional group, per-frame first, then shared (PS3.3 C.7.6.16)."""
    for holder in (frame_item, _shared(ds)):
        if holder is not None and seq in holder and len(holder[seq].value):
            item = holder[seq].value[0]
            if attr in item:
                return item[attr].value
    return None


def _shared(ds: Dataset) -> Dataset | None:
    seq = ds.get("SharedFunctionalGroupsSequence")
    return seq[0] if seq else None


def _records_multiframe(f: DicomFile) -> list[SliceRecord]:
    ds = f.header
    where = str(f.path)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) != n:
        raise InputError(f"{where}: {len(per_frame)} per-frame functional groups for {n} frames")
    rows, columns = _image_size(ds, where)
    records = []
    for i in range(n):
        item = per_frame[i] if per_frame is not None else None
        pos = _functional(ds, item, "PlanePositionSequence", "ImagePositionPatient")
        iop = _functional(ds, item, "PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = _functional(ds, item, "PixelMeasuresSequence", "PixelSpacing")
        thickness = _functional(ds, item, "PixelMeasuresSequence", "SliceThickness")
        slope = _functional(ds, item, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _functional(ds, item, "PixelValueTransformationSequence", "RescaleIntercept")
        if pos is None or iop is None:
            raise InputError(f"{where}: frame {i + 1} has no plane position/orientation")
        sp = _float_list(spacing, 2, f"PixelSpacing of frame {i + 1}", where)
        slope, intercept = _rescale(
            slope if slope not in (None, "") else ds.get("RescaleSlope"),
            intercept if intercept not in (None, "") else ds.get("RescaleIntercept"),
            f"{where} frame {i + 1}",
        )
        records.append(
            SliceRecord(
                path=f.path,
                frame=i,
                position=_float_list(pos, 3, f"ImagePositionPatient of frame {i + 1}", where),
                orientation=_float_list(iop, 6, f"ImageOrientationPatient of frame {i + 1}", where),
                pixel_spacing=(float(sp[0]), float(sp[1])),
                rows=rows,
                columns=columns,
                slope=slope,
                intercept=intercept,
                thickness=float(thickness or 0.0),
            )
        )
    return records


# Compressed syntaxes the GDCM library inside SimpleITK (a base dependency) decodes: the
# fallback when none of pydicom's optional decoder plugins is installed for them.
GDCM_SYNTAXES = {
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1: the usual PACS CT export
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE lossless
}


def choose_decoder(ds: Dataset, where: str, multiframe: bool = False) -> str:
    """ "pydicom" or "gdcm" for this file's pixel data; an error naming the syntax if neither.

    pydicom's decoders are preferred (they leave the stored values to us, so the modality LUT is
    applied in one place); SimpleITK's GDCM is the fallback for single-frame files.
    """
    meta = getattr(ds, "file_meta", None)
    tsyntax = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    if not tsyntax:
        return "pydicom"  # pydicom infers implicit little endian for files without meta
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError as exc:
        raise InputError(
            f"{where}: unsupported transfer syntax {tsyntax.name} ({tsyntax}): no pixel-data "
            "decoder exists for it; export the series uncompressed"
        ) from exc
    if decoder.is_available:
        return "pydicom"
    if str(tsyntax) in GDCM_SYNTAXES and not multiframe:
        return "gdcm"
    missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
    raise InputError(
        f"{where}: compressed transfer syntax {tsyntax.name} ({tsyntax}) cannot be decoded "
        f"here: install one of: {missing}"
    )


def _decode_with_gdcm(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """One single-frame file through SimpleITK's GDCM, which applies the rescale itself."""
    import SimpleITK as sitk

    from edge_runtime.io.itk_read import quiet_itk

    try:
        with quiet_itk():
            img = sitk.ReadImage(str(path), sitk.sitkFloat32)
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot decode compressed pixel data with GDCM") from exc
    arr = sitk.GetArrayFromImage(img).reshape(-1, *shape)
    if arr.shape[0] != 1:
        raise InputError(f"{path}: GDCM returned {arr.shape[0]} frames for a single-frame file")
    return arr[0]


def _check_pixel_length(ds: Dataset, where: str, frames: int) -> None:
    """An uncompressed PixelData element shorter than rows x columns x frames is truncation."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    if tsyntax and tsyntax.is_compressed:
        return
    if "PixelData" not in ds:
        return
    raw = ds.get_item(0x7FE00010, keep_deferred=True)  # declared length, value left on disk
    length = getattr(raw, "length", None)
    if length is None or length == 0xFFFFFFFF:
        value = raw.value if raw.value is not None else b""
        length = len(value)
    expected = (
        int(ds.Rows) * int(ds.Columns) * frames * int(ds.get("SamplesPerPixel", 1))
        * (int(ds.get("BitsAllocated", 16)) // 8)
    )  # fmt: skip
    offset = getattr(raw, "value_tell", None)
    size = Path(ds.filename).stat().st_size if isinstance(ds.filename, str) else None
    if length < expected or (size is not None and offset is not None and offset + length > size):
        raise InputError(f"{where}: truncated file: pixel data ends before the image does")
    if length > expected + expected % 2:  # an odd length is padded to even: one byte more
        raise InputError(
            f"{where}: pixel data is longer ({length} bytes) than rows x columns x frames "
            f"({expected} bytes): the header and the pixels disagree"
        )


def _decode(ds: Dataset, where: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(ds.pixel_array)
    except Exception as exc:  # any failure to decode these bytes is the file's fault
        msg = redact(str(exc), [ds])
        if "truncat" in msg.lower() or "less than" in msg.lower() or "ended" in msg.lower():
            raise InputError(f"{where}: truncated file: {msg}") from exc
        raise InputError(f"{where}: cannot decode pixel data: {msg}") from exc


def _metadata(ds: Dataset, info: SeriesInfo, source_format: str, path: Path) -> ImageMetadata:
    desc = str(ds.get("SeriesDescription", ""))
    agent = str(ds.get("ContrastBolusAgent", ""))
    date = str(ds.get("AcquisitionDate", "") or ds.get("SeriesDate", "") or "")
    time = str(ds.get("AcquisitionTime", "") or ds.get("SeriesTime", "") or "")
    when = str(ds.get("AcquisitionDateTime", "") or "") or f"{date}T{time}".strip("T")
    return ImageMetadata(
        modality=str(ds.get("Modality", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        series_instance_uid=info.uid,
        series_description=desc,
        contrast_agent=agent,
        phase_hint=phase_hint(desc, agent, str(ds.get("ProtocolName", ""))),
        acquisition_time=when,
        source_format=source_format,
        source_path=str(path),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
    )


def study_header(ds: Dataset) -> Dataset:
    """Only the patient/study/frame-of-reference attributes, for a derived series to reuse."""
    out = Dataset()
    for keyword in STUDY_LEVEL_KEYWORDS:
        if keyword in ds:
            out[keyword] = ds[keyword]
    return out


@contextlib.contextmanager
def _progress(total: int, what: str) -> Iterator[Callable[[], None]]:
    """A transient progress bar on an interactive stderr for long series; silent otherwise."""
    if total < PROGRESS_MIN_SLICES or not console.is_terminal:
        yield lambda: None
        return
    with progress(transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)


def _check_memory(ds: Dataset, n: int, name: Path, config: ReadConfig) -> None:
    """Refuse, from the header alone, a volume whose float32 copy would not fit in memory."""
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    need = n * rows * cols * 4 * 2  # float32 volume plus room for one resampled copy
    limit = memory_limit_bytes(config)
    if need > limit:
        raise InputError(
            f"{name}: the headers claim a {cols}x{rows}x{n} volume ({need / 2**30:.1f} GiB as "
            f"float32), more than the {limit / 2**30:.1f} GiB this machine can spare; refused "
            "before allocating"
        )


def read_series(info: SeriesInfo, name: Path, config: ReadConfig) -> MedicalImage:
    """Read the chosen series into a MedicalImage; `name` is the path the user gave."""
    multiframe = [
        f
        for f in info.files
        if int(f.header.get("NumberOfFrames", 1) or 1) > 1
        or str(f.header.get("SOPClassUID", "")) in MULTIFRAME_IMAGE_SOP_CLASSES
    ]
    if multiframe and len(info.files) > 1:
        raise InputError(
            f"{name}: series {info.uid} mixes {len(multiframe)} multi-frame files with "
            f"{len(info.files) - len(multiframe)} others; give one multi-frame file"
        )
    first = info.files[0].header
    for f in info.files:
        if int(f.header.get("SamplesPerPixel", 1)) != 1:
            raise InputError(f"{f.path}: colour image (SamplesPerPixel > 1); CT/MR is grey-scale")
    n_claimed = (
        int(multiframe[0].header.get("NumberOfFrames", 1) or 1) if multiframe else len(info.files)
    )
    _check_memory(first, n_claimed, name, config)
    if multiframe:
        try:
            records = _records_multiframe(multiframe[0])
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            raise InputError(
                f"{multiframe[0].path}: unreadable functional groups ({type(exc).__name__})"
            ) from exc
        source_format = "dicom-multiframe"
    else:
        records = _records_single_frame(info.files)
        source_format = "dicom"
    geo = check_series(records, str(name), config)

    n, rows, cols = len(geo.slices), geo.slices[0].rows, geo.slices[0].columns
    decoders = {f.path: choose_decoder(f.header, str(f.path), bool(multiframe)) for f in info.files}

    volume = np.empty((n, rows, cols), dtype=np.float32)
    if multiframe:
        ds = multiframe[0].header
        where = str(multiframe[0].path)
        _check_pixel_length(ds, where, len(records))
        frames = _decode(ds, where).reshape(len(records), rows, cols)
        for k, rec in enumerate(geo.slices):
            volume[k] = frames[rec.frame].astype(np.float32) * rec.slope + rec.intercept
    else:
        by_path = {f.path: f.header for f in info.files}
        for f in info.files:  # every file complete before any is decoded
            if decoders[f.path] == "pydicom":
                _check_pixel_length(f.header, str(f.path), 1)
        with _progress(n, f"reading {n} slices") as advance:
            for k, rec in enumerate(geo.slices):
                ds = by_path[rec.path]
                if decoders[rec.path] == "gdcm":
                    volume[k] = _decode_with_gdcm(rec.path, (rows, cols))
                else:
                    arr = _decode(ds, str(rec.path))
                    if arr.shape != (rows, cols):
                        raise InputError(f"{rec.path}: pixel data {arr.shape} != {rows}x{cols}")
                    volume[k] = apply_modality_lut(arr, ds).astype(np.float32)
                    ds.pop("PixelData", None)  # free the decoded bytes as we go
                advance()
    if not np.isfinite(volume).all():  # a huge RescaleSlope overflows float32
        raise InputError(
            f"{name}: rescaled pixel values beyond the range of 32-bit floats (RescaleSlope "
            f"{first.get('RescaleSlope', 1)}); the header is corrupt"
        )
    if geo.resample:
        volume = resample_uniform(volume, geo.positions_mm).astype(np.float32)
    meta = _metadata(first, info, source_format, name)
    meta.warnings.extend(geo.warnings)
    if not geo.resample and not multiframe:
        by_path = {f.path: f.header for f in info.files}
        meta.source_instances = [
            (
                str(by_path[r.path].get("SOPClassUID", "")),
                str(by_path[r.path].get("SOPInstanceUID", "")),
            )
            for r in geo.slices
        ]
    for w in geo.warnings:
        log.warning("%s: %s", name, w)
    return MedicalImage(
        voxels=volume,
        origin=tuple(geo.origin),
        spacing=geo.spacing,
        direction=tuple(geo.direction.ravel()),
        metadata=meta,
        study_header=study_header(first),
    )

"""Write a volume as a DICOM series: the synthetic MR as a derived series of its source study.

What a PACS, a viewer and a radiologist need to trust the output:
- it joins the source study (same StudyInstanceUID, patient module and frame of reference), so it
  appears next to the CT it came from; a NIfTI source has no study, so a new one is made with an
  anonymous patient module;
- it can never be mistaken for an acquisition: ImageType DERIVED\\SECONDARY, a SeriesDescription
  that begins with "SYNTHETIC", a DerivationDescription naming the model package and its sha256,
  and a BurnedInAnnotation/ImageComments that say so;
- its geometry tags (position, orientation, spacing) are computed from the same LPS grid the
  reader produced, slice by slice, so it overlays the source exactly;
- float voxels are stored as 16-bit integers through a rescale slope/intercept chosen from the
  value range, so nothing is clipped and the rounding error is at most half a slope.
Files are written into a temporary folder that is renamed into place only when complete.
pydicom builds every data set from keywords (highdicom has no classic MR/CT image class).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from edge_runtime import __version__
from edge_runtime.atomic import atomic_directory
from edge_runtime.errors import HidiffError
from edge_runtime.io.dicom_read import STUDY_LEVEL_KEYWORDS
from edge_runtime.io.image import MedicalImage

SYNTHETIC_PREFIX = "SYNTHETIC"
_UINT16 = (0, 65535)
_INT16 = (-32768, 32767)


@dataclass(frozen=True)
class Rescale:
    """stored = round((value - intercept) / slope), value = stored * slope + intercept."""

    slope: float
    intercept: float
    signed: bool

    @property
    def slope_ds(self) -> str:
        return format_number_as_ds(self.slope)

    @property
    def intercept_ds(self) -> str:
        return format_number_as_ds(self.intercept)


def choose_rescale(voxels: np.ndarray, signed: bool) -> Rescale:
    """The slope/intercept that map the value range onto the integer type without clipping.

    Integer-valued data that already fit (CT in HU, MR in scanner units) keep slope 1 so they
    round-trip exactly; anything else spans the full 16-bit range. Slope and intercept are taken
    as their 16-character decimal-string form, because that is what a reader will use.
    """
    lo, hi = float(np.min(voxels)), float(np.max(voxels))
    tmin, tmax = _INT16 if signed else _UINT16
    if np.all(voxels == np.rint(voxels)) and lo >= tmin and hi <= tmax:
        return Rescale(1.0, 0.0, signed)
    if hi == lo:
        return Rescale(1.0, float(format_number_as_ds(lo)), signed)
    span = (hi - lo) / (tmax - tmin - 2)  # two codes of headroom for decimal rounding
    slope = float(format_number_as_ds(span * (1 + 1e-9)))
    intercept = float(format_number_as_ds(lo - (tmin + 1) * slope))
    return Rescale(slope, intercept, signed)


def quantise(voxels: np.ndarray, rescale: Rescale) -> np.ndarray:
    """Stored integers for `voxels`; raises if any value would need clipping."""
    tmin, tmax = _INT16 if rescale.signed else _UINT16
    stored = np.rint((voxels.astype(np.float64) - rescale.intercept) / rescale.slope)
    if stored.min() < tmin or stored.max() > tmax:  # a bug in choose_rescale, never user input
        raise AssertionError("rescale would clip: stored range exceeds the integer type")
    return stored.astype(np.int16 if rescale.signed else np.uint16)


def _now() -> tuple[str, str]:
    now = dt.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def _study_attributes(source: MedicalImage | None, patient: dict[str, str] | None) -> Dataset:
    """Patient + study + frame-of-reference attributes: the source's, or a new anonymous study."""
    ds = Dataset()
    header = source.study_header if source is not None else None
    if header is not None:
        for keyword in STUDY_LEVEL_KEYWORDS:
            if keyword in header:
                ds[keyword] = header[keyword]
        if not ds.get("StudyInstanceUID"):
            raise HidiffError("the source DICOM has no StudyInstanceUID to join")
        if not ds.get("FrameOfReferenceUID"):
            ds.FrameOfReferenceUID = generate_uid()
        return ds
    date, time = _now()
    ds.PatientName = ""
    ds.PatientID = generate_uid(prefix=None)[-16:]  # a random, meaningless identifier
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    for key, value in (patient or {}).items():
        setattr(ds, key, value)
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime = date, time
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    return ds


def _base_dataset(
    image: MedicalImage,
    study: Dataset,
    modality: str,
    description: str,
    series_number: int,
    image_type: list[str],
    rescale: Rescale,
) -> Dataset:
    ds = Dataset()
    ds.update(study)
    date, time = _now()
    sop_class = MRImageStorage if modality == "MR" else CTImageStorage
    ds.SOPClassUID = sop_class
    if "SpecificCharacterSet" not in ds:
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.Modality = modality
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description[:64]
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.ImageType = image_type
    ds.Manufacturer = "HiDiff-Edge"
    ds.ManufacturerModelName = "hidiff"
    ds.SoftwareVersions = __version__
    if "PatientPosition" not in ds:
        ds.PatientPosition = ""
    row, col = (
        np.asarray(image.direction).reshape(3, 3)[:, 0],
        np.asarray(image.direction).reshape(3, 3)[:, 1],
    )
    ds.ImageOrientationPatient = [format_number_as_ds(float(v)) for v in (*row, *col)]
    sx, sy, sz = image.spacing
    ds.PixelSpacing = [format_number_as_ds(sy), format_number_as_ds(sx)]
    ds.SliceThickness = format_number_as_ds(sz)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(image.voxels.shape[1]), int(image.voxels.shape[2])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if rescale.signed else 0
    ds.RescaleSlope = rescale.slope_ds
    ds.RescaleIntercept = rescale.intercept_ds
    lo, hi = float(image.voxels.min()), float(image.voxels.max())
    ds.WindowCenter = format_number_as_ds((lo + hi) / 2)
    ds.WindowWidth = format_number_as_ds(max(hi - lo, 1.0))
    ds.BurnedInAnnotation = "NO"
    ds.Laterality = ""  # type 2C: the abdomen is not a paired structure
    if modality == "MR":
        ds.ScanningSequence = "RM"  # research mode: no acquisition produced these images
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "3D"
        ds.RepetitionTime = ""
        ds.EchoTime = ""
        ds.EchoTrainLength = ""
        ds.ImagingFrequency = ""
        ds.MagneticFieldStrength = ""
        ds.SpacingBetweenSlices = format_number_as_ds(sz)
    else:
        ds.RescaleType = "HU"
        ds.KVP = ""
        ds.AcquisitionNumber = 1
    return ds


@dataclass
class WrittenSeries:
    """Where a series went and the identifiers it was given."""

    folder: Path
    files: list[Path]
    series_instance_uid: str
    study_instance_uid: str
    rescale: Rescale


def _write(
    image: MedicalImage,
    base: Dataset,
    out_dir: Path,
    rescale: Rescale,
    overwrite: bool,
    sources: list[tuple[str, str]] | None = None,
) -> WrittenSeries:
    image = image.right_handed()
    stored = quantise(image.voxels, rescale)
    direction = np.asarray(image.direction, dtype=np.float64).reshape(3, 3)
    normal = direction[:, 2]
    origin = np.asarray(image.origin, dtype=np.float64)
    sz = image.spacing[2]
    out_dir = Path(out_dir)
    names = []
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for k in range(stored.shape[0]):
            ds = Dataset()
            ds.update(base)
            sop_uid = generate_uid()
            ds.SOPInstanceUID = sop_uid
            ds.InstanceNumber = k + 1
            position = origin + k * sz * normal
            ds.ImagePositionPatient = [format_number_as_ds(float(v)) for v in position]
            ds.SliceLocation = format_number_as_ds(float(position @ normal))
            if sources and len(sources) == stored.shape[0]:
                ref = Dataset()  # the source slice this one was derived from (same position)
                ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = sources[k]
                ds.SourceImageSequence = [ref]
            ds.PixelData = stored[k].tobytes()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = sop_uid
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            ds.file_meta = meta
            name = f"IM{k + 1:05d}.dcm"
            ds.save_as(tmp / name, enforce_file_format=True)
            names.append(name)
    return WrittenSeries(
        folder=out_dir,
        files=[out_dir / n for n in names],
        series_instance_uid=str(base.SeriesInstanceUID),
        study_instance_uid=str(base.StudyInstanceUID),
        rescale=rescale,
    )


def write_dicom_series(
    image: MedicalImage,
    source: MedicalImage | None,
    out_dir: str | Path,
    *,
    package_name: str,
    package_sha256: str,
    series_description: str = "SYNTHETIC MR",
    series_number: int = 9001,
    overwrite: bool = False,
) -> WrittenSeries:
    """Write `image` (the synthetic MR) as a derived MR series of `source`'s study.

    `source` is the image the synthesis started from: a DICOM source gives the study, patient
    module and frame of reference, and `image` must lie on its grid; a NIfTI/MHA source (or None)
    gives a new study with an anonymous patient module.
    """
    if len(package_sha256) != 64 or any(
        c not in "0123456789abcdef" for c in package_sha256.lower()
    ):
        raise HidiffError(f"package sha256 must be 64 hex digits, got {package_sha256!r}")
    if not np.isfinite(image.voxels).all():
        raise HidiffError("the image to write contains NaN or infinite values")
    if source is not None and not image.same_grid(source, tol_mm=1e-3):
        raise HidiffError(
            "the synthetic image does not lie on the source's grid (size/origin/spacing/"
            "direction differ); resample it onto the source before writing a derived series"
        )
    if not series_description.upper().startswith(SYNTHETIC_PREFIX):
        series_description = f"{SYNTHETIC_PREFIX} {series_description}"
    rescale = choose_rescale(image.voxels, signed=bool(image.voxels.min() < 0))
    study = _study_attributes(source, None)
    base = _base_dataset(
        image,
        study,
        "MR",
        series_description,
        series_number,
        ["DERIVED", "SECONDARY", "OTHER"],
        rescale,
    )
    base.DerivationDescription = (
        f"Synthetic MR generated from CT by model package {package_name} "
        f"(sha256 {package_sha256.lower()}); not an acquired image"
    )[:1024]
    base.ImageComments = "SYNTHETIC IMAGE generated by HiDiff-Edge; not acquired from the patient"
    sources = source.metadata.source_instances if source is not None else []
    return _write(image, base, Path(out_dir), rescale, overwrite, sources)


def write_ct_series(
    image: MedicalImage,
    out_dir: str | Path,
    *,
    series_description: str = "CT",
    series_number: int = 1,
    patient: dict[str, str] | None = None,
    study: MedicalImage | None = None,
    modality: str = "CT",
    overwrite: bool = False,
) -> WrittenSeries:
    """Write `image` as an ordinary (ORIGINAL) series: test fixtures and phantom exports.

    CT by default (HU, signed); `modality="MR"` writes a classic MR image series instead (for
    fixtures of public MR sets). `patient` sets patient-module attributes of a new study
    (PatientName, PatientID, ...); `study` instead joins an existing DICOM image's study.
    """
    if modality not in ("CT", "MR"):
        raise HidiffError(f"modality must be CT or MR, got {modality!r}")
    if not np.isfinite(image.voxels).all():
        raise HidiffError("the image to write contains NaN or infinite values")
    rescale = choose_rescale(image.voxels, signed=modality == "CT" or image.voxels.min() < 0)
    attrs = _study_attributes(study, patient)
    image_type = ["ORIGINAL", "PRIMARY", "AXIAL" if modality == "CT" else "OTHER"]
    base = _base_dataset(
        image, attrs, modality, series_description, series_number, image_type, rescale
    )
    return _write(image, base, Path(out_dir), rescale, overwrite)

"""The in-memory image every reader returns and every writer takes.

Voxels are float32 in numpy (z, y, x) order, exactly what `SimpleITK.GetArrayFromImage` gives;
geometry (origin, spacing, direction) is in the LPS patient frame SimpleITK and DICOM use, with
spacing and direction in (x, y, z) order. Keeping one convention end to end is what prevents a
flipped axis from silently producing wrong anatomy.

The patient/study attributes of a DICOM source travel with the image (`study_header`) so that
a derived series can join the same study; they are excluded from `repr` so that they never end
up in a log line by accident.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

Vec3 = tuple[float, float, float]
Mat3 = tuple[float, float, float, float, float, float, float, float, float]


@dataclass
class ImageMetadata:
    """What later steps need to know about where an image came from (never patient identity)."""

    modality: str = ""  # DICOM Modality (CT, MR, ...) or "" when the file format does not say
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    series_description: str = ""
    contrast_agent: str = ""  # ContrastBolusAgent when given
    phase_hint: str = ""  # plain / arterial / portal / delayed, guessed from the description
    acquisition_time: str = ""  # ISO-like date-time string when the header has one
    source_format: str = ""  # dicom, dicom-multiframe, nifti, mha, nrrd, ...
    source_path: str = ""
    frame_of_reference_uid: str = ""
    warnings: list[str] = field(default_factory=list)
    # (SOPClassUID, SOPInstanceUID) of each slice in volume order, for SourceImageSequence;
    # empty when the slices were resampled or the source is not DICOM.
    source_instances: list[tuple[str, str]] = field(default_factory=list, repr=False)


@dataclass
class MedicalImage:
    """A 3-D scalar image with its physical geometry (LPS) and provenance metadata."""

    voxels: np.ndarray  # float32, (z, y, x)
    origin: Vec3
    spacing: Vec3  # (x, y, z) in mm
    direction: Mat3  # row-major 3x3; columns are the x, y, z axis directions in LPS
    metadata: ImageMetadata = field(default_factory=ImageMetadata)
    study_header: Any = field(default=None, repr=False, compare=False)  # pydicom Dataset | None

    def __post_init__(self) -> None:
        self.voxels = np.asarray(self.voxels, dtype=np.float32)
        if self.voxels.ndim != 3:
            raise ValueError(f"MedicalImage needs a 3-D array, got shape {self.voxels.shape}")
        self.origin = tuple(float(v) for v in self.origin)  # type: ignore[assignment]
        self.spacing = tuple(float(v) for v in self.spacing)  # type: ignore[assignment]
        self.direction = tuple(float(v) for v in np.asarray(self.direction).ravel())  # type: ignore[assignment]

    @property
    def size(self) -> tuple[int, int, int]:
        """(x, y, z) voxel counts, SimpleITK's order."""
        z, y, x = self.voxels.shape
        return (x, y, z)

    @property
    def orientation_code(self) -> str:
        """Three letters (e.g. LPS, RAS) naming where each axis points, in DICOM's convention."""
        return orientation_code(self.direction)

    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    def index_to_physical(self, index_xyz: np.ndarray) -> np.ndarray:
        """Physical LPS coordinates (mm) of continuous voxel indices given as (..., 3) x, y, z."""
        idx = np.asarray(index_xyz, dtype=np.float64)
        return (
            np.asarray(self.origin) + (idx * np.asarray(self.spacing)) @ self.direction_matrix().T
        )

    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with the same voxels and geometry (a copy)."""
        img = sitk.GetImageFromArray(self.voxels)
        img.SetOrigin(self.origin)
        img.SetSpacing(self.spacing)
        img.SetDirection(self.direction)
        return img

    @classmethod
    def from_sitk(cls, img: sitk.Image, metadata: ImageMetadata | None = None) -> MedicalImage:
        """Wrap a 3-D scalar SimpleITK image (voxels converted to float32)."""
        if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError("from_sitk needs a 3-D scalar image")
        return cls(
            voxels=sitk.GetArrayFromImage(img).astype(np.float32, copy=False),
            origin=img.GetOrigin(),
            spacing=img.GetSpacing(),
            direction=img.GetDirection(),
            metadata=metadata or ImageMetadata(),
        )

    def with_voxels(self, voxels: np.ndarray, **metadata_changes: Any) -> MedicalImage:
        """The same geometry and provenance with new voxels (e.g. a synthetic MR of this CT)."""
        voxels = np.asarray(voxels, dtype=np.float32)
        if voxels.shape != self.voxels.shape:
            raise ValueError(f"shape {voxels.shape} differs from the image's {self.voxels.shape}")
        meta = dataclasses.replace(
            self.metadata,
            warnings=list(self.metadata.warnings),
            source_instances=list(self.metadata.source_instances),
        )
        for key, value in metadata_changes.items():
            setattr(meta, key, value)
        return MedicalImage(
            voxels, self.origin, self.spacing, self.direction, meta, self.study_header
        )

    def right_handed(self) -> MedicalImage:
        """The same physical image with a right-handed axis set (z = x cross y), as DICOM stacks.

        A DICOM reader orders slices along row x column, so a left-handed image (possible in
        NIfTI/MHA) is written with its slices reversed; this does that reversal explicitly.
        """
        d = self.direction_matrix()
        if np.linalg.det(d) > 0:
            return self
        n = self.voxels.shape[0]
        origin = np.asarray(self.origin) + (n - 1) * self.spacing[2] * d[:, 2]
        d = d.copy()
        d[:, 2] = -d[:, 2]
        return MedicalImage(
            np.ascontiguousarray(self.voxels[::-1]), tuple(origin), self.spacing,
            tuple(d.ravel()), self.metadata, self.study_header,
        )  # fmt: skip

    def same_grid(self, other: MedicalImage, tol_mm: float = 1e-4) -> bool:
        """True when both images sample the same points in space (size, origin, spacing, axes)."""
        return (
            self.size == other.size
            and np.allclose(self.origin, other.origin, atol=tol_mm)
            and np.allclose(self.spacing, other.spacing, atol=tol_mm)
            and np.allclose(self.direction, other.direction, atol=1e-6)
        )


def orientation_code(direction: Mat3 | np.ndarray) -> str:
    """DICOM-style orientation letters from direction cosines, through SimpleITK's filter."""
    flat = tuple(float(v) for v in np.asarray(direction, dtype=np.float64).ravel())
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(flat)

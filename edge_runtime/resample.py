"""Between a scan's own grid and the model's grid, with SimpleITK.

A package is trained on slices of a fixed in-plane spacing (`manifest.grid.spacing_mm`). A scan
arrives in any geometry: any spacing, any axis order or flip (RAS NIfTI, LPS DICOM), oblique
directions. `ModelGrid.for_image` builds the grid the model sees: the scan's axes permuted and
flipped to the closest LPS (a lossless reorientation, so slices stay the scan's slices), the
in-plane spacing changed to the package's, the slice positions kept, the physical centre kept.
`to_model` resamples the CT onto it (linear; outside the scan is air) and `to_image` resamples a
result back onto the scan's own grid, so the output's origin, spacing and direction are the
input's exactly, by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from edge_runtime.io.image import MedicalImage


@dataclass(frozen=True)
class ResampleConfig:
    """How intensities are carried between grids."""

    # HU given to model-grid voxels outside the scan: air, what surrounds a patient.
    outside_hu: float = -1000.0
    # Linear interpolation: the model was trained on linearly resampled CT; B-splines ring at
    # the body/air edge (1000 HU steps) and would invent structure.
    interpolator: int = sitk.sitkLinear


def _closest_lps(image: sitk.Image) -> sitk.Image:
    """The same voxels with axes permuted/flipped so the direction is closest to identity."""
    return sitk.DICOMOrient(image, "LPS")


@dataclass(frozen=True)
class ModelGrid:
    """The model's sampling of one scan: a SimpleITK reference image (geometry only)."""

    reference: sitk.Image

    @property
    def shape(self) -> tuple[int, int, int]:
        """(z, y, x) voxel counts, numpy order."""
        x, y, z = self.reference.GetSize()
        return (z, y, x)

    @property
    def slice_spacing_mm(self) -> float:
        return float(self.reference.GetSpacing()[2])

    @classmethod
    def for_image(cls, image: MedicalImage, spacing_yx: tuple[float, float]) -> ModelGrid:
        """The grid of `image` reoriented to the closest LPS, at in-plane spacing `spacing_yx`
        (row, col = y, x mm), the same slices, centred on the same physical point."""
        oriented = _closest_lps(_geometry_only(image))
        size = np.asarray(oriented.GetSize(), dtype=np.float64)
        spacing = np.asarray(oriented.GetSpacing(), dtype=np.float64)
        d = np.asarray(oriented.GetDirection(), dtype=np.float64).reshape(3, 3)
        origin = np.asarray(oriented.GetOrigin(), dtype=np.float64)
        centre = origin + d @ ((size - 1) / 2 * spacing)
        new_spacing = np.array([spacing_yx[1], spacing_yx[0], spacing[2]])
        # Cover the scan's whole extent (a partial voxel at the edge becomes a whole one).
        new_size = np.array(
            [max(1, math.ceil(size[i] * spacing[i] / new_spacing[i] - 1e-6)) for i in range(2)]
            + [int(size[2])]
        )
        new_origin = centre - d @ ((new_size - 1) / 2 * new_spacing)
        ref = sitk.Image([int(v) for v in new_size], sitk.sitkFloat32)
        ref.SetSpacing(tuple(float(v) for v in new_spacing))
        ref.SetDirection(tuple(float(v) for v in d.ravel()))
        ref.SetOrigin(tuple(float(v) for v in new_origin))
        return cls(ref)

    def to_model(self, image: MedicalImage, config: ResampleConfig | None = None) -> np.ndarray:
        """The scan's voxels on this grid, float32 (z, y, x)."""
        cfg = config or ResampleConfig()
        out = sitk.Resample(
            image.to_sitk(),
            self.reference,
            sitk.Transform(),
            cfg.interpolator,
            float(cfg.outside_hu),
            sitk.sitkFloat32,
        )
        return sitk.GetArrayFromImage(out).astype(np.float32, copy=False)

    def to_image(
        self, volume: np.ndarray, like: MedicalImage, config: ResampleConfig | None = None
    ) -> np.ndarray:
        """A (z, y, x) volume on this grid resampled onto `like`'s grid: float32 voxels in
        `like`'s order. The scan's edge voxels lying up to half a model voxel outside this
        grid's outermost centres take the nearest model value (no invented background)."""
        cfg = config or ResampleConfig()
        moving = sitk.GetImageFromArray(np.ascontiguousarray(volume, dtype=np.float32))
        moving.CopyInformation(self.reference)
        target = _geometry_only(like)
        f = sitk.ResampleImageFilter()
        f.SetReferenceImage(target)
        f.SetInterpolator(cfg.interpolator)
        f.SetOutputPixelType(sitk.sitkFloat32)
        f.SetUseNearestNeighborExtrapolator(True)
        out = sitk.GetArrayFromImage(f.Execute(moving)).astype(np.float32, copy=False)
        if out.shape != like.voxels.shape:  # pragma: no cover - SimpleITK contract
            raise RuntimeError(f"resampled shape {out.shape} != {like.voxels.shape}")
        return out


def _geometry_only(image: MedicalImage) -> sitk.Image:
    """An empty SimpleITK image with `image`'s size and geometry (no voxel copy)."""
    x, y, z = image.size
    ref = sitk.Image([x, y, z], sitk.sitkUInt8)
    ref.SetOrigin(image.origin)
    ref.SetSpacing(image.spacing)
    ref.SetDirection(image.direction)
    return ref

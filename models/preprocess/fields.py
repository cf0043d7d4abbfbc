"""Displacement fields and images as SimpleITK objects: checks, warping, conversions.

One convention everywhere (the phantom's and SimpleITK's DisplacementFieldTransform's): a field
u lives on the fixed (CT) grid, holds (x, y, z) in mm in LPS, and the tissue at physical point p
of the fixed image is at p + u(p) in the moving image. Warping the moving image therefore means
resampling it at p + u(p).
"""

from __future__ import annotations

import itertools

import numpy as np
import SimpleITK as sitk

from edge_runtime.errors import InputError


def field_from_array(arr: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A displacement-field image (float64 vectors) from a (z, y, x, 3) array on `reference`'s grid."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.shape != (*sitk.GetArrayViewFromImage(reference).shape[:3], 3):
        raise InputError(
            f"displacement field shape {arr.shape} does not match the image grid "
            f"{sitk.GetArrayViewFromImage(reference).shape[:3]} (+ 3 components)"
        )
    field = sitk.GetImageFromArray(arr, isVector=True)
    field.CopyInformation(reference)
    return field


def field_to_array(field: sitk.Image) -> np.ndarray:
    """The (z, y, x, 3) float64 array of a displacement-field image."""
    if field.GetNumberOfComponentsPerPixel() != field.GetDimension():
        raise InputError(
            f"a displacement field needs {field.GetDimension()} components per voxel, "
            f"got {field.GetNumberOfComponentsPerPixel()}"
        )
    return sitk.GetArrayFromImage(field).astype(np.float64)


def as_displacement_field(field: sitk.Image) -> sitk.Image:
    """The field as float64 vectors, which DisplacementFieldTransform requires."""
    if field.GetPixelID() != sitk.sitkVectorFloat64:
        field = sitk.Cast(field, sitk.sitkVectorFloat64)
    return field


def field_transform(field: sitk.Image) -> sitk.DisplacementFieldTransform:
    """A transform over a *copy* of the field: SimpleITK's constructor empties the image it takes."""
    return sitk.DisplacementFieldTransform(sitk.Image(as_displacement_field(field)))


def warp(
    image: sitk.Image,
    field: sitk.Image,
    *,
    reference: sitk.Image | None = None,
    interpolator: str = "linear",
    default: float = 0.0,
) -> sitk.Image:
    """Resample `image` at p + u(p) for every p of the field's grid (or `reference`'s).

    `interpolator` is "linear" for intensities, "bspline" for smooth intensities and "nearest"
    for label maps, which must never be blended.
    """
    interp = {
        "linear": sitk.sitkLinear,
        "bspline": sitk.sitkBSpline,
        "nearest": sitk.sitkNearestNeighbor,
    }[interpolator]
    tx = field_transform(field)
    ref = reference if reference is not None else field
    return sitk.Resample(image, ref, tx, interp, default, image.GetPixelID())


def sample_field(field: sitk.Image, points_mm: np.ndarray) -> np.ndarray:
    """The displacement (mm) at arbitrary physical points (N, 3), linearly interpolated."""
    tx = field_transform(field)
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    return np.array([np.subtract(tx.TransformPoint(tuple(p)), p) for p in pts]).reshape(-1, 3)


def _corners(image: sitk.Image) -> np.ndarray:
    size = image.GetSize()
    corners = itertools.product((0, 1), repeat=image.GetDimension())
    idx = [tuple(int(c * (n - 1)) for c, n in zip(corner, size, strict=True)) for corner in corners]
    return np.array([image.TransformIndexToPhysicalPoint(i) for i in idx])


def bounding_box(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned physical bounding box (lower, upper) of the voxel centres, in mm."""
    c = _corners(image)
    return c.min(axis=0), c.max(axis=0)


def overlap_fraction(fixed: sitk.Image, moving: sitk.Image) -> float:
    """Fraction of the fixed image's bounding box that the moving image's box covers."""
    flo, fhi = bounding_box(fixed)
    mlo, mhi = bounding_box(moving)
    inter = np.clip(np.minimum(fhi, mhi) - np.maximum(flo, mlo), 0.0, None)
    extent = np.maximum(fhi - flo, 1e-6)
    return float(np.prod(inter / extent))


def check_volume(image: sitk.Image, name: str) -> None:
    """Refuse anything that is not a true 3D volume (a 2D image, or a single slice)."""
    if image.GetDimension() != 3:
        raise InputError(f"{name} is a {image.GetDimension()}D image; a 3D volume is needed")
    if min(image.GetSize()) < 4:
        raise InputError(
            f"{name} has size {image.GetSize()}: a 2D image (or a few slices) given as a volume; "
            "at least 4 voxels along every axis are needed"
        )


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> bool:
    """True when two images share size, origin, spacing and direction."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol * 100)
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )

"""Read NIfTI, MHA/MHD and NRRD through SimpleITK, checking the header before the voxels.

`ReadImageInformation` parses only the header, so size, dimension, spacing and direction are
checked (and an absurd size refused) before a single voxel is allocated. The voxels are then
read, converted to float32 and checked for NaN/Inf, which no later step can handle.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from edge_runtime.errors import InputError
from edge_runtime.io.config import ReadConfig, memory_limit_bytes
from edge_runtime.io.image import ImageMetadata, MedicalImage
from edge_runtime.io.nifti_scan import nonfinite_count, payload_bytes, read_nifti_header
from edge_runtime.io.privacy import one_line

log = logging.getLogger("hidiff.io")

ITK_SUFFIXES = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".mha": "mha",
    ".mhd": "mha",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
}


def itk_format(path: Path) -> str | None:
    """The format a file name announces, or None."""
    name = path.name.lower()
    for suffix, fmt in ITK_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    return None


def _itk_message(exc: Exception) -> str:
    """ITK's exception text is a multi-line dump; keep the sentence that says what went wrong."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in reversed(lines):
        for marker in ("ITK ERROR:", "Description:", "itk::ERROR:"):
            if marker.lower() in ln.lower():
                tail = ln[ln.lower().index(marker.lower()) + len(marker) :]
                return one_line(tail.split(": ", 1)[-1] if "): " in tail else tail)
    return one_line(lines[-1] if lines else str(exc))


@contextlib.contextmanager
def quiet_itk() -> Iterator[None]:
    """ITK prints its warnings straight to stderr, and the C libraries under it (NIfTI,
    MetaImage) write to file descriptor 2 whatever ITK's switch says: a bad file must give one
    line, ours. What they print is kept at debug level instead."""
    before = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    with captured_fd2() as captured:
        try:
            yield
        finally:
            sitk.ProcessObject.SetGlobalWarningDisplay(before)
    if captured and captured[0].strip():
        log.debug("ITK said: %s", one_line(captured[0]))


@contextlib.contextmanager
def captured_fd2() -> Iterator[list[str]]:
    """Redirect file descriptor 2 into a temporary file for the block; yields its text after."""
    text: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): nothing to hide
        yield text
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode("utf-8", "replace"))


_MAX_DIMS = 4  # what read_itk can use (3-D, or 4-D with one volume)


def _check_metaio_dims(path: Path) -> None:
    """MetaImage (.mha/.mhd) headers are text that ITK trusts: NDims = 7e16 keeps its parser
    busy for minutes. Read NDims ourselves (the header ends at ElementDataFile) first."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return  # ITK says why it cannot read the file
    for raw in head.split(b"\n"):
        key, sep, value = raw.partition(b"=")
        key = key.strip().lower()
        if key == b"elementdatafile":
            return
        if sep and key == b"ndims":
            text = value.strip().decode("ascii", "replace")
            if not text.isdigit() or not 1 <= int(text) <= _MAX_DIMS:
                raise InputError(
                    f"{path}: MetaImage header says NDims = {text[:20]}; a 3-D volume is needed"
                )


def read_header(path: Path) -> sitk.ImageFileReader:
    if itk_format(path) == "mha":
        _check_metaio_dims(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with quiet_itk():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        msg = _itk_message(exc)
        if "orthonormal" in msg.lower():
            raise InputError(f"{path}: non-orthonormal direction in the header ({msg})") from exc
        raise InputError(f"{path}: cannot read image header: {msg}") from exc
    return reader


def read_itk(path: Path, config: ReadConfig, fmt: str | None = None) -> MedicalImage:
    """Read one NIfTI/MHA/NRRD file into a MedicalImage (float32, LPS geometry)."""
    reader = read_header(path)
    size = list(reader.GetSize())
    dim = reader.GetDimension()
    if reader.GetNumberOfComponents() != 1:
        raise InputError(
            f"{path}: {reader.GetNumberOfComponents()} components per voxel (a vector or colour "
            "image); a scalar CT/MR volume is needed"
        )
    if dim == 4:
        if size[3] != 1:
            raise InputError(
                f"{path}: 4D image ({size[3]} volumes of {size[0]}x{size[1]}x{size[2]}); give one "
                "3-D volume"
            )
    elif dim > 4:
        raise InputError(f"{path}: {dim}-D image; a 3-D volume is needed")
    if any(n <= 0 for n in size):
        raise InputError(f"{path}: empty image: size {'x'.join(map(str, size))} in the header")
    spacing = list(reader.GetSpacing())
    if any(not np.isfinite(s) or s <= 0 for s in spacing[: min(dim, 3)]):
        raise InputError(f"{path}: zero or negative spacing {spacing[: min(dim, 3)]} in the header")
    origin = list(reader.GetOrigin())
    if not np.isfinite(origin).all():
        raise InputError(f"{path}: non-finite origin {origin} in the header")
    direction = np.asarray(reader.GetDirection(), dtype=np.float64).reshape(dim, dim)
    d3 = direction[: min(dim, 3), : min(dim, 3)]
    if not np.allclose(d3.T @ d3, np.eye(d3.shape[0]), atol=config.orthonormal_tolerance):
        raise InputError(
            f"{path}: non-orthonormal direction matrix {np.round(d3, 4).tolist()} in the header"
        )
    n_slices = size[2] if dim >= 3 else 1
    if n_slices < config.min_slices:
        raise InputError(
            f"{path}: a single slice where a volume is needed ({n_slices} slice(s), at least "
            f"{config.min_slices} required)"
        )
    n_voxels = int(np.prod(np.asarray(size[:3], dtype=np.float64)))
    need = n_voxels * 4 * 2  # the file's own type plus the float32 copy
    limit = memory_limit_bytes(config)
    if need > limit:
        dims = "x".join(str(s) for s in size[:3])
        raise InputError(
            f"{path}: the header claims a {dims} volume ({need / 2**30:.1f} GiB to read), more "
            f"than the {limit / 2**30:.1f} GiB this machine can spare; refused before allocating"
        )
    if (fmt or itk_format(path)) == "nifti":
        _check_nifti_payload(path)
    try:
        with quiet_itk():
            img = reader.Execute()
    except RuntimeError as exc:
        raise InputError(
            f"{path}: cannot read voxels (truncated file?): {_itk_message(exc)}"
        ) from exc
    if img.GetDimension() == 4:
        img = img[:, :, :, 0]
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    arr = sitk.GetArrayViewFromImage(img)
    if not np.issubdtype(arr.dtype, np.integer):
        bad_nan = int(np.isnan(arr).sum())
        bad_inf = int(np.isinf(arr).sum())
        if (fmt or itk_format(path)) == "nifti":  # ITK's NIfTI library zeroes NaN/Inf on load
            counted = nonfinite_count(path)
            if counted is not None:
                bad_nan, bad_inf = max(bad_nan, counted[0]), max(bad_inf, counted[1])
        if bad_nan or bad_inf:
            raise InputError(
                f"{path}: contains {bad_nan} NaN and {bad_inf} infinite voxels; an image must be "
                "finite everywhere"
            )
    voxels = np.array(arr, dtype=np.float32)
    if not np.isfinite(voxels).all():  # finite float64 values beyond float32's range
        raise InputError(
            f"{path}: voxel values up to {float(np.abs(arr).max()):.3g}, beyond the range of "
            "32-bit floats; not a CT/MR intensity image"
        )
    meta = ImageMetadata(
        modality=_modality_hint(reader),
        source_format=fmt or itk_format(path) or "itk",
        source_path=str(path),
    )
    return MedicalImage(
        voxels=voxels,
        origin=img.GetOrigin(),
        spacing=img.GetSpacing(),
        direction=img.GetDirection(),
        metadata=meta,
    )


def _modality_hint(reader: sitk.ImageFileReader) -> str:
    """MetaImage files may carry a Modality key (MET_MOD_CT/MR); NIfTI and NRRD do not."""
    for key in ("Modality", "modality"):
        if reader.HasMetaDataKey(key):
            value = reader.GetMetaData(key).upper()
            for mod in ("CT", "MR"):
                if mod in value:
                    return mod
    return ""


def _check_nifti_payload(path: Path) -> None:
    """Refuse a NIfTI file that holds fewer voxel bytes than its header claims: ITK would read
    it "successfully", allocating the claimed volume and filling what is missing with zeros."""
    header = read_nifti_header(path)
    if header is None:
        return  # ITK parsed a header we cannot: let it decide
    held = payload_bytes(path, header)
    if held < header.payload:
        dims = "x".join(str(d) for d in header.dims)
        raise InputError(
            f"{path}: truncated file: the header claims {dims} voxels of {header.bitpix} bits "
            f"({header.payload:,} bytes) but the file holds only {held:,}"
        )

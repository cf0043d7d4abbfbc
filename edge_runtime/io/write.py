"""Write a MedicalImage as NIfTI (or MHA/NRRD), atomically, and check it was written whole.

SimpleITK picks the writer from the file name, so the temporary file keeps the real name inside
a hidden temporary folder next to the destination, and is renamed into place when complete.
ITK's NIfTI library does not fail when the disk is full: it prints "wrote only 0 of N bytes"
and returns, leaving a truncated file. So every file is synced and read back (its header, and
for NIfTI every payload byte and the gzip checksum) before it is renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import SimpleITK as sitk

from edge_runtime.atomic import disk_full_error, ensure_writable_dir, is_disk_full
from edge_runtime.errors import HidiffError, InputError
from edge_runtime.io.image import MedicalImage
from edge_runtime.io.itk_read import itk_format, quiet_itk
from edge_runtime.io.nifti_scan import payload_bytes, read_nifti_header
from edge_runtime.io.privacy import one_line


def _incomplete(path: Path) -> str | None:
    """Why the file just written at `path` is not whole, or None when it reads back whole."""
    if itk_format(path) == "nifti":
        header = read_nifti_header(path)
        if header is None:
            return "no readable NIfTI header"
        try:
            held = payload_bytes(path, header)
        except InputError as exc:
            return one_line(exc)
        return None if held >= header.payload else f"{held} of {header.payload} voxel bytes"
    try:
        with quiet_itk():
            sitk.ReadImage(str(path))
    except RuntimeError as exc:
        return one_line(exc)
    return None


def write_sitk_image(image: sitk.Image, path: Path, final: Path | None = None) -> None:
    """`sitk.WriteImage` to `path` (gzip-compressed for .gz), synced and read back: a full disk
    or a failed write is a `HidiffError` naming `final` (default `path`), and no file is left."""
    path = Path(path)
    final = path if final is None else Path(final)
    try:
        with quiet_itk():
            sitk.WriteImage(image, str(path), useCompression=path.name.endswith(".gz"))
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # a full disk may only show when the data reach it
        finally:
            os.close(fd)
        why = _incomplete(path)
    except (RuntimeError, OSError) as exc:
        why = one_line(exc)
        if is_disk_full(exc):
            path.unlink(missing_ok=True)
            raise disk_full_error(final) from exc
    if why is None:
        return
    path.unlink(missing_ok=True)
    need = image.GetNumberOfPixels() * image.GetSizeOfPixelComponent()
    need *= image.GetNumberOfComponentsPerPixel()
    if shutil.disk_usage(path.parent).free < need:
        raise disk_full_error(final)
    raise HidiffError(f"cannot write {final}: the file did not read back whole ({why})")


def write_image(image: MedicalImage, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write `image` as float32 to a .nii/.nii.gz/.mha/.mhd/.nrrd file, atomically."""
    path = Path(path)
    if itk_format(path) is None:
        raise HidiffError(f"{path}: unknown image file type; use .nii.gz, .nii, .mha or .nrrd")
    if path.exists() and not overwrite:
        raise HidiffError(f"{path} already exists; remove it or choose another output")
    ensure_writable_dir(path.parent)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        tmp = tmp_dir / path.name
        write_sitk_image(image.to_sitk(), tmp, final=path)
        if path.suffix.lower() == ".mhd":  # header + raw pair: move both
            raw = tmp.with_suffix(".raw")
            if not raw.exists():
                raw = tmp.with_suffix(".zraw")
            os.replace(raw, path.parent / raw.name)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def write_nifti(image: MedicalImage, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write `image` as NIfTI (.nii or .nii.gz) with its LPS geometry, atomically."""
    path = Path(path)
    if itk_format(path) != "nifti":
        raise HidiffError(f"{path}: a NIfTI file name must end in .nii or .nii.gz")
    return write_image(image, path, overwrite=overwrite)

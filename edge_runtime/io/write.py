"""Write a MedicalImage as NIfTI (or MHA/NRRD), atomically.

SimpleITK picks the writer from the file name, so the temporary file keeps the real name inside
a hidden temporary folder next to the destination, and is renamed into place when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import SimpleITK as sitk

from edge_runtime.atomic import ensure_writable_dir
from edge_runtime.errors import HidiffError
from edge_runtime.io.image import MedicalImage
from edge_runtime.io.itk_read import itk_format


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
        sitk.WriteImage(image.to_sitk(), str(tmp), useCompression=path.name.endswith(".gz"))
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

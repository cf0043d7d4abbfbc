"""The readers as fuzz targets: bytes in, a valid volume or an `InputError` out, nothing else.

Shared by the hypothesis tests (test_reader_fuzz.py), the coverage-guided atheris run
(fuzz_readers.py) and the crash regressions it keeps (fuzz_crashes/). Seeds are real files
written by the project's own writers, so mutations start from what a scanner would send.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from edge_runtime.errors import InputError
from edge_runtime.io import MedicalImage, read_image, write_ct_series
from edge_runtime.io.config import ReadConfig
from edge_runtime.io.itk_read import captured_fd2

# Small enough that any header the fuzzer invents is refused before allocating much, large
# enough for the seeds (a few kB).
CONFIG = ReadConfig(min_slices=1, max_bytes=64 << 20)
SUFFIXES = {"dicom": ".dcm", "nifti": ".nii", "nifti_gz": ".nii.gz", "mha": ".mha"}


def _seed_volume() -> MedicalImage:
    rng = np.random.default_rng(0)
    vox = rng.integers(-1000, 1500, size=(3, 12, 10)).astype(np.float32)
    return MedicalImage(vox, (-10.0, 5.0, 40.0), (0.8, 0.7, 2.5), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def seed_bytes(kind: str) -> bytes:
    """A valid file of `kind` (one CT slice for DICOM), as bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "dicom":
            write_ct_series(_seed_volume(), Path(tmp) / "s", patient={"PatientID": "FUZZ"})
            return sorted((Path(tmp) / "s").glob("*.dcm"))[0].read_bytes()
        target = Path(tmp) / f"seed{SUFFIXES[kind]}"
        img = sitk.GetImageFromArray(_seed_volume().voxels.astype(np.int16))
        img.SetSpacing((0.8, 0.7, 2.5))
        sitk.WriteImage(img, str(target))
        return target.read_bytes()


def check_volume(image: MedicalImage) -> None:
    """What every accepted read must give: a finite 3-D float32 volume with a sane grid."""
    assert image.voxels.ndim == 3 and image.voxels.dtype == np.float32
    assert image.voxels.size > 0
    assert np.isfinite(image.voxels).all()
    assert all(np.isfinite(s) and s > 0 for s in image.spacing)
    assert np.isfinite(np.asarray(image.origin)).all()


def read_bytes(data: bytes, kind: str) -> MedicalImage | None:
    """Write `data` as a file of `kind` and read it: the volume, or None when refused (with one
    line, and nothing printed to stderr by the libraries underneath)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{SUFFIXES[kind]}"
        path.write_bytes(data)
        with captured_fd2() as printed:
            try:
                image = read_image(path, config=CONFIG)
            except InputError as exc:
                assert "\n" not in str(exc), str(exc)
                image = None
    assert not printed[0].strip(), f"a library printed to stderr: {printed[0]!r}"
    if image is not None:
        check_volume(image)
    return image


def dicom_header_parses(data: bytes) -> bool:
    """True when pydicom itself parses the bytes (so a refusal is ours, not the parser's)."""
    try:
        pydicom.dcmread(io.BytesIO(data))
    except Exception:
        return False
    return True

"""A real rendered phantom case (models.phantom) -> derived DICOM series -> read back with our
reader, SimpleITK and pydicom: same geometry, values within rescale rounding, all markings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from edge_runtime.io import read_image, write_dicom_series, write_nifti

SHA = "ab" * 32


@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory) -> Path:
    cohort = pytest.importorskip("models.phantom.cohort")
    out = tmp_path_factory.mktemp("phantom") / "cohort"
    manifest = cohort.write_cohort(1, 11, out, grid=64, slices=8, preview=False)
    return out / manifest["cases"][0]["id"]


def test_phantom_case_to_derived_dicom_and_back(phantom_case: Path, tmp_path: Path) -> None:
    ct = read_image(phantom_case / "ct_portal.nii.gz")
    mr = read_image(phantom_case / "mr_t2_ctphase.nii.gz")
    assert mr.same_grid(ct)
    written = write_dicom_series(
        mr, ct, tmp_path / "synthetic_t2", package_name="phantom-demo", package_sha256=SHA,
        series_description="T2WI",
    )  # fmt: skip
    bound = written.rescale.slope / 2 + 2 * float(np.spacing(np.float32(np.abs(mr.voxels).max())))
    ours = read_image(written.folder)
    assert ours.same_grid(ct, tol_mm=1e-3)
    assert np.abs(ours.voxels - mr.voxels).max() <= bound
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(written.folder)))
    theirs = reader.Execute()
    np.testing.assert_allclose(theirs.GetOrigin(), ct.origin, atol=1e-3)
    np.testing.assert_allclose(theirs.GetSpacing(), ct.spacing, atol=1e-4)
    np.testing.assert_allclose(theirs.GetDirection(), ct.direction, atol=1e-6)
    assert np.abs(sitk.GetArrayFromImage(theirs) - mr.voxels).max() <= bound
    stored_max = 0
    for path in written.files:
        ds = pydicom.dcmread(path)
        stored_max = max(stored_max, int(ds.pixel_array.max()))
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert ds.Modality == "MR" and ds.SeriesDescription == "SYNTHETIC T2WI"
        assert "phantom-demo" in ds.DerivationDescription and SHA in ds.DerivationDescription
        k = int(ds.InstanceNumber) - 1
        values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.abs(values - mr.voxels[k]).max() <= bound
    assert stored_max > 65000  # the 16-bit range is used, not wasted
    # and the NIfTI route keeps it exactly
    write_nifti(mr, tmp_path / "t2.nii.gz")
    np.testing.assert_array_equal(read_image(tmp_path / "t2.nii.gz").voxels, mr.voxels)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed (dicom3tools)")
def test_phantom_derived_series_passes_dciodvfy(phantom_case: Path, tmp_path: Path) -> None:
    ct = read_image(phantom_case / "ct_portal.nii.gz")
    mr = read_image(phantom_case / "mr_t1c_ctphase.nii.gz")
    written = write_dicom_series(mr, ct, tmp_path / "s", package_name="p", package_sha256=SHA)
    for path in written.files:
        out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
        assert errors == [], (path, errors)

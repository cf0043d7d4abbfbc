"""Round trips: DICOM -> NIfTI/MHA/NRRD -> read keeps array and geometry (1e-4 mm); a synthetic
MR written as a derived DICOM series reads back (ours, SimpleITK, pydicom) on the same grid,
with values within rescale rounding and every synthetic marking in place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from iohelpers import PATIENT, ct_image, files_of, oblique_direction

from edge_runtime.errors import HidiffError
from edge_runtime.io import (
    MedicalImage,
    read_image,
    write_dicom_series,
    write_image,
    write_nifti,
)
from edge_runtime.io.dicom_write import choose_rescale, quantise

SHA = "0123456789abcdef" * 4


def rounding_bound(slope: float, values: np.ndarray) -> float:
    """Half a rescale step plus float32 representation error of the read-back values."""
    return slope / 2 + 2 * float(np.spacing(np.float32(np.abs(values).max())))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_dicom_to_file_and_back(write_series, tmp_path: Path, suffix: str) -> None:
    source = read_image(write_series(ct_image(direction=oblique_direction(5))))
    target = tmp_path / f"ct{suffix}"
    (write_nifti if "nii" in suffix else write_image)(source, target)
    back = read_image(target)
    np.testing.assert_array_equal(back.voxels, source.voxels)
    np.testing.assert_allclose(back.origin, source.origin, atol=1e-4)
    np.testing.assert_allclose(back.spacing, source.spacing, atol=1e-4)
    np.testing.assert_allclose(back.direction, source.direction, atol=1e-4)
    # every corner lands on the same physical point (1e-4 mm)
    corners = np.array([[0, 0, 0], [19, 23, 7], [19, 0, 7], [0, 23, 0]], float)
    np.testing.assert_allclose(
        back.index_to_physical(corners), source.index_to_physical(corners), atol=1e-4
    )


def test_write_nifti_refuses_other_names_and_overwrites_only_when_asked(tmp_path: Path) -> None:
    image = ct_image()
    with pytest.raises(HidiffError, match=r"\.nii"):
        write_nifti(image, tmp_path / "x.mha")
    write_nifti(image, tmp_path / "x.nii.gz")
    with pytest.raises(HidiffError, match="already exists"):
        write_nifti(image, tmp_path / "x.nii.gz")
    write_nifti(image, tmp_path / "x.nii.gz", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]  # no temporary left over


def phantom_like_case(tmp_path: Path) -> tuple[MedicalImage, MedicalImage]:
    """A CT (int16 HU) and an MR at the CT's grid (float), written as the phantom writes them."""
    ct = ct_image(shape=(10, 32, 28), spacing=(1.2, 1.2, 3.0), direction=oblique_direction(6))
    zz, yy, xx = np.meshgrid(*(np.arange(s) for s in ct.voxels.shape), indexing="ij")
    mr = (800 + 300 * np.sin(xx / 4.0) * np.cos(yy / 5.0) + 20.5 * zz).astype(np.float32) / 7.3
    sitk.WriteImage(sitk.Cast(ct.to_sitk(), sitk.sitkInt16), str(tmp_path / "ct_portal.nii.gz"))
    mr_img = ct.with_voxels(mr)
    sitk.WriteImage(mr_img.to_sitk(), str(tmp_path / "mr_t2_ctphase.nii.gz"))
    return read_image(tmp_path / "ct_portal.nii.gz"), read_image(tmp_path / "mr_t2_ctphase.nii.gz")


def check_markings(ds: pydicom.Dataset, package: str = "hidiff-edge-demo") -> None:
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert ds.Modality == "MR"
    assert ds.SeriesDescription.startswith("SYNTHETIC")
    assert package in ds.DerivationDescription and SHA in ds.DerivationDescription
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage


def test_derived_series_of_a_dicom_study(write_series, tmp_path: Path) -> None:
    source_folder = write_series(ct_image(shape=(9, 20, 18), direction=oblique_direction(7)))
    source = read_image(source_folder)
    rng = np.random.default_rng(1)
    synthetic = source.with_voxels(rng.uniform(0, 1875.3, source.voxels.shape))
    written = write_dicom_series(
        synthetic, source, tmp_path / "synth", package_name="hidiff-edge-demo", package_sha256=SHA
    )
    # ours
    back = read_image(written.folder)
    assert back.same_grid(source)
    half_step = rounding_bound(written.rescale.slope, synthetic.voxels)
    assert np.abs(back.voxels - synthetic.voxels).max() <= half_step
    assert written.rescale.slope < 0.03  # the 16-bit range is used, not wasted
    # SimpleITK
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(written.folder)))
    theirs = reader.Execute()
    np.testing.assert_allclose(theirs.GetOrigin(), source.origin, atol=1e-3)
    np.testing.assert_allclose(theirs.GetSpacing(), source.spacing, atol=1e-4)
    np.testing.assert_allclose(theirs.GetDirection(), source.direction, atol=1e-5)
    assert np.abs(sitk.GetArrayFromImage(theirs) - synthetic.voxels).max() <= half_step
    # pydicom, file by file: markings, study membership, fresh UIDs
    src_headers = [pydicom.dcmread(p) for p in files_of(source_folder)]
    out_headers = [pydicom.dcmread(p) for p in written.files]
    src_sops = {str(d.SOPInstanceUID) for d in src_headers}
    for ds in out_headers:
        check_markings(ds)
        assert ds.StudyInstanceUID == src_headers[0].StudyInstanceUID
        assert ds.FrameOfReferenceUID == src_headers[0].FrameOfReferenceUID
        assert ds.PatientName == PATIENT["PatientName"] and ds.PatientID == PATIENT["PatientID"]
        assert ds.PatientBirthDate == PATIENT["PatientBirthDate"]
        assert ds.SeriesInstanceUID != src_headers[0].SeriesInstanceUID
        assert str(ds.SOPInstanceUID) not in src_sops
        assert str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID) in src_sops
        values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        k = int(ds.InstanceNumber) - 1
        assert np.abs(values - synthetic.voxels[k]).max() <= half_step
    assert len({str(d.SeriesInstanceUID) for d in out_headers}) == 1
    assert len({str(d.SOPInstanceUID) for d in out_headers}) == len(out_headers)


def test_phantom_case_to_derived_series_without_a_source_study(tmp_path: Path) -> None:
    ct, mr = phantom_like_case(tmp_path)
    written = write_dicom_series(
        mr, ct, tmp_path / "synth", package_name="hidiff-edge-demo", package_sha256=SHA,
        series_description="T2WI",
    )  # fmt: skip
    back = read_image(written.folder)
    assert back.same_grid(ct, tol_mm=1e-3)
    assert np.abs(back.voxels - mr.voxels).max() <= rounding_bound(written.rescale.slope, mr.voxels)
    theirs = sitk.ReadImage(
        sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(written.folder)), sitk.sitkFloat32
    )
    np.testing.assert_allclose(theirs.GetOrigin(), ct.origin, atol=1e-3)
    np.testing.assert_allclose(theirs.GetDirection(), ct.direction, atol=1e-5)
    for path in written.files:
        ds = pydicom.dcmread(path)
        check_markings(ds)
        assert ds.SeriesDescription == "SYNTHETIC T2WI"
        assert str(ds.PatientName) == "" and ds.PatientBirthDate == ""
        assert ds.StudyInstanceUID == written.study_instance_uid


def test_left_handed_nifti_is_written_as_the_same_physical_image(tmp_path: Path) -> None:
    d = np.diag([-1.0, -1.0, -1.0])  # RAI-like: left-handed for DICOM's row x column normal
    image = ct_image(direction=tuple(d.ravel()))
    image = image.with_voxels(np.abs(image.voxels))
    written = write_dicom_series(image, None, tmp_path / "s", package_name="p", package_sha256=SHA)
    back = read_image(written.folder)
    assert np.linalg.det(back.direction_matrix()) > 0
    # the same physical point carries the same value
    idx = np.array([[3, 5, 1]], float)
    p = image.index_to_physical(idx)
    back_idx = np.linalg.solve(
        back.direction_matrix() * np.asarray(back.spacing), (p - back.origin).T
    ).T
    i, j, k = np.rint(back_idx[0]).astype(int)
    assert back.voxels[k, j, i] == image.voxels[1, 5, 3]


def test_derived_series_refuses_a_different_grid(write_series, tmp_path: Path) -> None:
    source = read_image(write_series())
    shifted = MedicalImage(source.voxels, (0, 0, 0), source.spacing, source.direction)
    with pytest.raises(HidiffError, match="grid"):
        write_dicom_series(shifted, source, tmp_path / "s", package_name="p", package_sha256=SHA)
    with pytest.raises(HidiffError, match="sha256"):
        write_dicom_series(source, source, tmp_path / "s", package_name="p", package_sha256="abc")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "lo,hi,signed",
    [
        (0.0, 1.0, False),
        (-3.2e4, 9.9e5, True),
        (1e-3, 2e-3, False),
        (-1024, 3071, True),
        (5, 5, False),
    ],
)
def test_rescale_never_clips_and_rounds_within_half_a_step(
    lo: float, hi: float, signed: bool
) -> None:
    values = np.linspace(lo, hi, 1001).astype(np.float32)
    r = choose_rescale(values, signed=signed)
    stored = quantise(values, r)
    back = stored.astype(np.float64) * float(r.slope_ds) + float(r.intercept_ds)
    assert np.abs(back - values).max() <= r.slope / 2 + 1e-9 * max(abs(lo), abs(hi), 1)


def test_integer_hu_round_trip_exactly(write_series) -> None:
    image = ct_image()
    back = read_image(write_series(image))
    np.testing.assert_array_equal(back.voxels, image.voxels)

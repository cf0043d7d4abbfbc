"""Every kind of bad input gives one error line naming the file and the problem, exit code 2,
no traceback and nothing on stdout (run through the real `hidiff info` command)."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from iohelpers import SECRETS, ct_image, edit_file, files_of, run_hidiff
from pydicom.data import get_testdata_file

from edge_runtime.errors import DiskFullError, HidiffError
from edge_runtime.io import MedicalImage, read_image, write_ct_series


def assert_one_line_error(target: Path, *args: str, must: tuple[str, ...]) -> str:
    out = run_hidiff("info", str(target), *args)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert out.stdout == "", "no partial output on stdout"
    err = out.stderr.strip()
    assert "\n" not in err, f"more than one line: {err!r}"
    assert "Traceback" not in err
    assert err.startswith("error: ")
    # The file or folder is named (the message may name a file inside the folder).
    assert str(target) in err or target.name in err, err
    for word in must:
        assert word.lower() in err.lower(), (word, err)
    for secret in SECRETS:
        assert secret not in err
    return err


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_one_line_error(tmp_path / "empty", must=("empty",))


def test_folder_without_dicom(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("exported by PACS\n")
    (folder / "thumb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert_one_line_error(folder, must=("no DICOM files",))


def test_truncated_file_in_series(write_series) -> None:
    folder = write_series()
    victim = files_of(folder)[3]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 300])
    err = assert_one_line_error(folder, must=("truncated",))
    assert victim.name in err


def test_truncated_file_shipped_with_pydicom(tmp_path: Path) -> None:
    target = tmp_path / "MR_truncated.dcm"
    shutil.copy(get_testdata_file("MR_truncated.dcm"), target)
    assert_one_line_error(target, "--min-slices", "1", must=("truncated",))


def test_truncated_header(write_series) -> None:
    folder = write_series()
    victim = files_of(folder)[2]
    victim.write_bytes(victim.read_bytes()[:400])  # DICM marker intact, header cut short
    err = assert_one_line_error(folder, must=("truncated",))
    assert victim.name in err


def test_dicom_without_pixel_data(tmp_path: Path) -> None:
    target = tmp_path / "rtplan.dcm"
    shutil.copy(get_testdata_file("rtplan.dcm"), target)
    assert_one_line_error(target, must=("without pixel data",))


def test_series_without_pixel_data(write_series) -> None:
    folder = write_series()
    for f in files_of(folder):
        edit_file(f, lambda ds: ds.pop("PixelData"))
    assert_one_line_error(folder, must=("without pixel data",))


def test_two_series_mixed(write_series, tmp_path: Path) -> None:
    a = write_series(series_description="CT arterial")
    b = write_series(ct_image(seed=3), series_description="CT portal")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for src, tag in ((a, "a"), (b, "b")):
        for f in files_of(src):
            shutil.copy(f, mixed / f"{tag}{f.name}")
    err = assert_one_line_error(
        mixed, must=("2 DICOM series", "--series", "CT arterial", "CT portal")
    )
    assert "8 files" in err
    # and choosing one works
    img = read_image(mixed, series="ct portal")
    np.testing.assert_array_equal(img.voxels, ct_image(seed=3).voxels)


def test_duplicate_slice_positions(write_series) -> None:
    folder = write_series()
    files = files_of(folder)
    pos = pydicom.dcmread(files[2]).ImagePositionPatient
    edit_file(files[5], lambda ds: setattr(ds, "ImagePositionPatient", pos))
    assert_one_line_error(folder, must=("duplicate slice positions",))


def test_missing_slice(write_series) -> None:
    folder = write_series()
    files_of(folder)[4].unlink()
    err = assert_one_line_error(folder, must=("missing slice", "5.00 mm", "2.50 mm"))
    assert "1 slice(s) missing" in err


def test_gantry_tilt(write_series) -> None:
    folder = write_series()
    tilt = np.tan(np.radians(15.0))
    for f in files_of(folder):

        def shear(ds: pydicom.Dataset) -> None:
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y + (z - 40.0) * tilt, z]

        edit_file(f, shear)
    err = assert_one_line_error(folder, must=("gantry tilt",))
    assert "15.0" in err


def test_mixed_orientations(write_series) -> None:
    folder = write_series()
    edit_file(
        files_of(folder)[3], lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0, -1])
    )
    assert_one_line_error(folder, must=("mixed orientations",))


def test_rows_columns_differ(write_series) -> None:
    folder = write_series()

    def shrink(ds: pydicom.Dataset) -> None:
        arr = ds.pixel_array[:12]
        ds.Rows = 12
        ds.PixelData = arr.tobytes()

    edit_file(files_of(folder)[2], shrink)
    assert_one_line_error(folder, must=("rows/columns differ", "24x20", "12x20"))


def test_single_slice_where_volume_needed(tmp_path: Path) -> None:
    target = tmp_path / "CT_small.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), target)
    assert_one_line_error(target, must=("single slice",))


def test_single_slice_folder(write_series) -> None:
    folder = write_series(ct_image(shape=(1, 24, 20)))
    assert_one_line_error(folder, must=("single slice",))


def test_nifti_with_nan_or_inf(tmp_path: Path) -> None:
    vol = np.zeros((5, 6, 7), np.float32)
    vol[2, 3, 4] = np.nan
    vol[1, 1, 1] = np.inf
    target = tmp_path / "nan.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(vol), str(target))
    assert_one_line_error(target, must=("1 NaN", "1 infinite"))


def test_4d_nifti(tmp_path: Path) -> None:
    target = tmp_path / "fmri.nii.gz"
    vol = sitk.GetImageFromArray(np.zeros((5, 6, 7), np.float32))
    sitk.WriteImage(sitk.JoinSeries([vol, vol, vol]), str(target))
    assert_one_line_error(target, must=("4D image", "3 volumes"))


def _nifti_claiming(target: Path, dims: tuple[int, int, int]) -> None:
    """A NIfTI-1 file whose header claims `dims` but holds only a few voxels."""
    small = tmp = target.with_name("small.nii")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 2, 2), np.int16)), str(tmp))
    header = bytearray(small.read_bytes())
    struct.pack_into("<8h", header, 40, 3, dims[0], dims[1], dims[2], 1, 1, 1, 1)
    target.write_bytes(bytes(header))
    small.unlink()


def test_header_too_large_for_memory_nifti(tmp_path: Path) -> None:
    target = tmp_path / "huge.nii"
    _nifti_claiming(target, (30000, 30000, 30000))
    err = assert_one_line_error(target, must=("refused before allocating", "30000x30000x30000"))
    assert "GiB" in err


def test_header_too_large_for_memory_dicom(tmp_path: Path) -> None:
    target = tmp_path / "huge.dcm"
    image = ct_image(shape=(2, 4, 4))
    write_ct_series(image, tmp_path / "s")
    src = files_of(tmp_path / "s")[0]
    ds = pydicom.dcmread(src)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 20
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2.2"  # legacy converted enhanced CT
    shared = pydicom.Dataset()
    for seq, attrs in (
        ("PixelMeasuresSequence", {"PixelSpacing": [1, 1], "SliceThickness": 1}),
        ("PlaneOrientationSequence", {"ImageOrientationPatient": [1, 0, 0, 0, 1, 0]}),
    ):
        item = pydicom.Dataset()
        for k, v in attrs.items():
            setattr(item, k, v)
        setattr(shared, seq, [item])
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for i in range(20):
        pos = pydicom.Dataset()
        pos.ImagePositionPatient = [0, 0, i]
        fr = pydicom.Dataset()
        fr.PlanePositionSequence = [pos]
        frames.append(fr)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.save_as(target, enforce_file_format=True)
    assert_one_line_error(target, must=("refused before allocating", "65535x65535x20"))


def _mha(target: Path, spacing: str = "1 1 1", matrix: str = "1 0 0 0 1 0 0 0 1") -> None:
    data = np.zeros((3, 4, 5), np.float32).tobytes()
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        f"CompressedData = False\nTransformMatrix = {matrix}\nOffset = 0 0 0\n"
        f"ElementSpacing = {spacing}\nDimSize = 5 4 3\nElementType = MET_FLOAT\n"
        "ElementDataFile = LOCAL\n"
    )
    target.write_bytes(header.encode() + data)


def test_zero_or_negative_spacing_mha(tmp_path: Path) -> None:
    target = tmp_path / "flat.mha"
    _mha(target, spacing="1 0 1")
    assert_one_line_error(target, must=("spacing",))


def test_negative_pixel_spacing_dicom(write_series) -> None:
    folder = write_series()
    for f in files_of(folder):
        edit_file(f, lambda ds: setattr(ds, "PixelSpacing", [-0.7, 0.8]))
    assert_one_line_error(folder, must=("zero or negative pixel spacing",))


def test_non_orthonormal_direction_mha(tmp_path: Path) -> None:
    target = tmp_path / "sheared.mha"
    _mha(target, matrix="1 0 0 0.5 1 0 0 0 1")
    assert_one_line_error(target, must=("non-orthonormal direction",))


def test_non_orthonormal_orientation_dicom(write_series) -> None:
    folder = write_series()
    for f in files_of(folder):
        edit_file(f, lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0.3, 1, 0]))
    assert_one_line_error(folder, must=("non-orthonormal direction",))


def test_unsupported_transfer_syntax(write_series) -> None:
    folder = write_series()
    for f in files_of(folder):
        edit_file(f, lambda ds: None)
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video
        ds.PixelData = pydicom.encaps.encapsulate([b"\0" * 64])
        ds.save_as(f, enforce_file_format=True)
    assert_one_line_error(
        folder, must=("unsupported transfer syntax", "MPEG2", "1.2.840.10008.1.2.4.100")
    )


def test_not_an_image_at_all(tmp_path: Path) -> None:
    target = tmp_path / "report.pdf"
    target.write_bytes(b"%PDF-1.4\n" + b"x" * 500)
    assert_one_line_error(target, must=("not an image",))


def test_corrupt_nifti(tmp_path: Path) -> None:
    target = tmp_path / "broken.nii.gz"
    target.write_bytes(gzip.compress(b"this is not a nifti header" * 10))
    assert_one_line_error(target, must=("cannot read image header",))


def test_non_uniform_spacing(write_series) -> None:
    folder = write_series()
    files = files_of(folder)

    def move(ds: pydicom.Dataset) -> None:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 1.1]  # 2.5 -> 3.6 and 1.4 mm gaps

    edit_file(files[4], move)
    assert_one_line_error(folder, must=("non-uniform slice spacing",))


def test_missing_path(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path / "nowhere", must=("no such file",))


def test_small_spacing_jitter_is_resampled_with_a_warning(write_series) -> None:
    image = ct_image(shape=(10, 6, 5))
    z = np.arange(10) * 2.5
    image.voxels[:] = z[:, None, None]  # a linear ramp along z survives linear resampling
    folder = write_series(image)
    files = files_of(folder)
    jitter = [0, 0.04, -0.03, 0.05, 0, -0.04, 0.02, 0.03, -0.02, 0]
    for f, dz in zip(files, jitter, strict=True):

        def shift(ds: pydicom.Dataset, dz: float = dz) -> None:
            x, y, zz = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, zz + dz]

        edit_file(f, shift)
    img = read_image(folder)
    assert len(img.metadata.warnings) == 1
    assert "resampled 10 slices" in img.metadata.warnings[0]
    assert abs(img.spacing[2] - 2.5) < 1e-6
    # voxel values were HU at the jittered positions; resampled they follow the true ramp
    truth = (np.arange(10) * 2.5)[:, None, None] + 0 * img.voxels
    assert np.abs(img.voxels - truth).max() < 0.06
    out = run_hidiff("info", str(folder))
    assert out.returncode == 0
    assert "warning:" in out.stdout and "linear interpolation" in out.stdout


def test_failed_write_leaves_nothing_that_looks_finished(tmp_path: Path, monkeypatch) -> None:
    """A write that dies after two slices leaves neither the output folder nor debris."""
    bad = MedicalImage(
        np.full((2, 3, 3), np.nan, np.float32), (0, 0, 0), (1, 1, 1), (1, 0, 0, 0, 1, 0, 0, 0, 1)
    )
    with pytest.raises(HidiffError, match="NaN"):
        write_ct_series(bad, tmp_path / "nan")
    real_save = pydicom.Dataset.save_as
    calls = {"n": 0}

    def dying_save(self, *args, **kwargs):  # the disk "fills up" on the third slice
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(pydicom.Dataset, "save_as", dying_save)
    with pytest.raises(DiskFullError, match=f"cannot write {tmp_path / 'out'}: no space left"):
        write_ct_series(ct_image(), tmp_path / "out")
    assert calls["n"] == 3
    assert list(tmp_path.iterdir()) == []


def test_compressed_syntax_without_installed_decoder_names_it(write_series) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import HTJ2KLossless

    if get_decoder(HTJ2KLossless).is_available:
        pytest.skip("an HTJ2K decoder is installed here; the error path cannot be shown")
    folder = write_series()
    for f in files_of(folder):
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = HTJ2KLossless
        ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f" + b"\0" * 62])
        ds.save_as(f, enforce_file_format=True)
    assert_one_line_error(
        folder, must=("High-Throughput JPEG 2000", "1.2.840.10008.1.2.4.201", "install one of")
    )


def test_garbage_in_a_geometry_attribute(write_series) -> None:
    folder = write_series()
    victim = files_of(folder)[1]
    edit_file(victim, lambda ds: setattr(ds, "RescaleSlope", "7.25"))
    data = victim.read_bytes()
    assert data.count(b"7.25") == 1
    victim.write_bytes(data.replace(b"7.25", b"x.25"))  # not a number any more
    err = assert_one_line_error(folder, must=("unreadable",))
    assert victim.name in err


def test_non_orthonormal_sform_nifti(tmp_path: Path) -> None:
    """A sheared sform: ITK also prints a warning of its own, which must not reach the user."""
    target = tmp_path / "sheared.nii"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.float32)), str(target))
    header = bytearray(target.read_bytes())
    struct.pack_into("<2h", header, 252, 0, 1)  # qform_code 0, sform_code 1
    for offset, row in ((280, (1, 0.5, 0, 0)), (296, (0, 1, 0, 0)), (312, (0, 0, 1, 0))):
        struct.pack_into("<4f", header, offset, *row)
    target.write_bytes(bytes(header))
    assert_one_line_error(target, must=("non-orthonormal direction",))

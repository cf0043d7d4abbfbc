"""`hidiff info` reports what it should, and patient name, ID and birth date never appear in
its output, its errors, the log, or an image's repr."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from iohelpers import SECRETS, ct_image, edit_file, files_of, run_hidiff

from edge_runtime.errors import InputError
from edge_runtime.io import read_image


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def test_info_on_a_dicom_folder(write_series) -> None:
    folder = write_series(series_description="portal venous")
    out = run_hidiff("info", str(folder))
    assert out.returncode == 0, out.stderr
    assert "modality:     CT" in out.stdout
    assert "size (x,y,z): 20 x 24 x 8" in out.stdout
    assert "spacing (mm): 0.8 x 0.7 x 2.5" in out.stdout
    assert "orientation:  LPS" in out.stdout
    assert "series found: 1" in out.stdout and "portal venous" in out.stdout
    assert "phase hint:   portal" in out.stdout
    assert_no_secrets(out.stdout + out.stderr)


def test_info_json_on_nifti_reports_ras(tmp_path: Path) -> None:
    img = sitk.GetImageFromArray(np.arange(60, dtype=np.float32).reshape(3, 4, 5))
    img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    img.SetSpacing((0.5, 0.6, 2.0))
    target = tmp_path / "ras.nii.gz"
    sitk.WriteImage(img, str(target))
    out = run_hidiff("info", str(target), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["orientation"] == "RAS"
    assert report["size_xyz"] == [5, 4, 3]
    assert report["value_range"] == [0.0, 59.0]
    assert report["format"] == "nifti"
    np.testing.assert_allclose(report["spacing_mm"], [0.5, 0.6, 2.0])


def test_info_single_image_when_asked(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    out = run_hidiff("info", get_testdata_file("MR_small.dcm"), "--min-slices", "1")
    assert out.returncode == 0, out.stderr
    assert "modality:     MR" in out.stdout and "64 x 64 x 1" in out.stdout


def test_info_selects_a_series(write_series, tmp_path: Path) -> None:
    both = tmp_path / "both"
    shutil.copytree(write_series(series_description="first"), both / "a")
    shutil.copytree(
        write_series(ct_image(shape=(5, 6, 7)), series_description="second"), both / "b"
    )
    out = run_hidiff("info", str(both), "--series", "second")
    assert out.returncode == 0, out.stderr
    assert "7 x 6 x 5" in out.stdout and "series found: 2" in out.stdout


def test_errors_and_logs_never_show_patient_identity(write_series, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    folder = write_series()
    # identity also in places a careless message might quote
    for f in files_of(folder):
        edit_file(f, lambda ds: setattr(ds, "OtherPatientIDs", "SECRET123"))
    image = read_image(folder)
    assert_no_secrets(repr(image))
    assert_no_secrets(repr(image.metadata))
    # a mixed folder lists series, not patients
    mixed = tmp_path / "mixed"
    shutil.copytree(folder, mixed / "a")
    shutil.copytree(write_series(ct_image(seed=4)), mixed / "b")
    try:
        read_image(mixed)
    except InputError as exc:
        assert_no_secrets(str(exc))
    else:
        raise AssertionError("a mixed folder must not read")
    # a warning path (jitter) logs without identity
    jittered = write_series(ct_image(shape=(6, 5, 5)))
    for i, f in enumerate(files_of(jittered)):

        def shift(ds: pydicom.Dataset, dz: float = 0.03 * (-1) ** i) -> None:
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z + dz]

        edit_file(f, shift)
    assert read_image(jittered).metadata.warnings
    # the whole CLI output for good and bad inputs
    files_of(folder)[2].unlink()
    for target in (jittered, mixed, folder):
        out = run_hidiff("info", str(target))
        assert_no_secrets(out.stdout + out.stderr)
    assert caplog.records, "the warning was logged"
    assert_no_secrets("\n".join(r.getMessage() for r in caplog.records))


def test_library_messages_are_redacted() -> None:
    from edge_runtime.io.privacy import redact

    ds = pydicom.Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET123"
    ds.PatientBirthDate = "19450101"
    text = "bad value 'Doe^Jane' for ID SECRET123 born 19450101\nsecond line"
    out = redact(text, [ds])
    assert_no_secrets(out)
    assert "\n" not in out


def test_info_covers_every_supported_format(write_series, tmp_path: Path) -> None:
    """In-process (fast) run of the same command on MHA, MHD, NRRD, NIfTI and enhanced DICOM."""
    import pytest
    from typer.testing import CliRunner

    from edge_runtime.cli import build_app
    from edge_runtime.io import write_image

    source = read_image(write_series(ct_image(shape=(4, 6, 5))))
    targets = []
    for suffix in (".mha", ".mhd", ".nrrd", ".nii"):
        targets.append(write_image(source, tmp_path / f"ct{suffix}"))
    hd = pytest.importorskip("highdicom")
    legacy = [pydicom.dcmread(p) for p in sorted(Path(source.metadata.source_path).glob("*.dcm"))]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=legacy,
        series_instance_uid=pydicom.uid.generate_uid(),
        series_number=5,
        sop_instance_uid=pydicom.uid.generate_uid(),
        instance_number=1,
    )
    enhanced.save_as(tmp_path / "enhanced.dcm")
    targets.append(tmp_path / "enhanced.dcm")
    runner = CliRunner()
    for target in targets:
        result = runner.invoke(build_app(), ["info", str(target), "--json"])
        assert result.exit_code == 0, (target, result.output)
        report = json.loads(result.stdout)
        assert report["size_xyz"] == [5, 6, 4], target
        np.testing.assert_allclose(report["spacing_mm"], source.spacing, atol=1e-5)
        assert report["orientation"] == "LPS"
        assert report["value_range"] == [float(source.voxels.min()), float(source.voxels.max())]
    assert report["format"] == "dicom-multiframe" and report["modality"] == "CT"

"""Synthesize page and upload flow, driven in AppTest with the phantom demo case."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from apphelpers import open_demo, open_page
from pydicom.uid import CTImageStorage

from apps.upload import VOLUME_SUFFIXES
from edge_runtime.io import read_image, write_dicom_series
from edge_runtime.package import load_package

PAGE = "pages/1_Synthesize.py"
BANNER = "Synthetic images, for research only, not for diagnosis"


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_synthesize_demo_case(app_env, edge_package) -> None:
    at = open_demo(open_page(PAGE))
    assert any(BANNER in w.value for w in at.warning)
    assert not at.get("imgs") and not any(i for i in at.get("image"))
    at.button(key="syn_run").click().run()
    assert not at.exception and not at.error
    steps = load_package(edge_package).manifest.sampler.steps
    assert metric(at, "Slices") == "16"
    assert metric(at, "Sampler steps") == str(steps)
    assert metric(at, "Provider") == "CPU fp32"
    ms = float(metric(at, "Time per slice").removesuffix(" ms"))
    assert 1 < ms < 60_000
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert captions[0].startswith("CT (abdomen W400 L50)")
    assert captions[1:] == ["synthetic T2WI", "true T2WI (phantom)"]
    # The viewer is linked: one slider and window move every panel.
    at.slider(key="syn_slice").set_value(3).run()
    at.selectbox(key="syn_window").set_value("liver").run()
    assert not at.exception
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert captions[0] == "CT (liver W150 L70)"
    # The synthetic volume is the package's output on the CT's grid.
    synth = next(iter(at.session_state["syntheses"].values())).result.image
    assert synth.voxels.shape == (16, 128, 128)
    assert np.isfinite(synth.voxels).all() and synth.voxels.std() > 0


def test_wrong_sequence_is_a_one_line_error(app_env, edge_package) -> None:
    name = load_package(edge_package).manifest.name
    at = open_demo(open_page(PAGE))
    at.selectbox(key="syn_sequence").set_value("t1").run()
    at.button(key="syn_run").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"package {name!r} synthesizes t2, not 't1'"]
    at.selectbox(key="syn_sequence").set_value("t2").run()
    at.button(key="syn_run").click().run()
    assert not at.error and metric(at, "Slices") == "16"


def dicom_ct_zip(case: Path, tmp: Path) -> bytes:
    """The phantom's portal CT as a CT DICOM series (portal phase), zipped with a PDF beside it."""
    ct = read_image(case / "ct_portal.nii.gz")
    out = tmp / "CT_PORTAL"
    write_dicom_series(ct, None, out, package_name="test", package_sha256="0" * 64)
    for f in sorted(out.iterdir()):
        ds = pydicom.dcmread(f)
        ds.Modality = "CT"
        ds.SOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SeriesDescription = "ABDOMEN PORTAL"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientName = "Doe^Jane"
        ds.PatientID = "SECRET-4711"
        ds.save_as(f)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(out.iterdir()):
            zf.write(f, f"export/CT/{f.name}")
        zf.writestr("export/report.pdf", b"%PDF-1.4 a report, not an image")
    return buf.getvalue()


def broken(zip_bytes: bytes) -> bytes:
    """The same zip with one DICOM slice cut in half (a failed copy)."""
    src = zipfile.ZipFile(io.BytesIO(zip_bytes))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        dicoms = [n for n in src.namelist() if n.endswith(".dcm")]
        for name in src.namelist():
            data = src.read(name)
            zf.writestr(name, data[: len(data) // 2] if name == dicoms[5] else data)
    return buf.getvalue()


def upload(at, name: str, data: bytes):
    at.sidebar.radio(key="scan_source").set_value("Upload").run()
    at.sidebar.file_uploader(key="scan_upload").set_value((name, data, "application/zip")).run()
    assert not at.exception, at.exception
    return at


def test_upload_broken_then_malicious_then_good(app_env, phantom_case, tmp_path) -> None:
    good = dicom_ct_zip(phantom_case, tmp_path)
    at = open_page(PAGE)
    upload(at, "broken.zip", broken(good))
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and ".dcm" in errors[0] and "\n" not in errors[0]
    assert not at.sidebar.success  # nothing opened

    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.dcm", b"x")
    upload(at, "evil.zip", evil.getvalue())
    assert "outside the upload folder" in at.sidebar.error[0].value

    upload(at, "good.zip", good)
    assert not at.sidebar.error
    opened = at.sidebar.success[0].value
    assert "DICOM series" in opened and "128x128x16" in opened
    notes = [c.value for c in at.sidebar.caption]
    assert any("report.pdf" in n and "skipped" in n for n in notes)
    at.button(key="syn_run").click().run()
    assert not at.error and metric(at, "Slices") == "16"
    # Patient identity never reaches the page.
    shown = " ".join(
        str(e.value) for e in [*at.markdown, *at.caption, *at.success, *at.metric, *at.info]
    )
    assert "Doe" not in shown and "SECRET-4711" not in shown


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_upload_single_volume(app_env, phantom_case, tmp_path, suffix) -> None:
    assert suffix in VOLUME_SUFFIXES
    import SimpleITK as sitk

    img = sitk.ReadImage(str(phantom_case / "ct_portal.nii.gz"))
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(img, str(path))
    at = open_page(PAGE)
    at.sidebar.radio(key="scan_source").set_value("Upload").run()
    at.sidebar.file_uploader(key="scan_upload").set_value(
        (path.name, path.read_bytes(), "application/octet-stream")
    ).run()
    assert not at.exception and not at.sidebar.error
    assert "volume file" in at.sidebar.success[0].value


def test_open_local_path(app_env, phantom_case, tmp_path) -> None:
    at = open_page(PAGE)
    at.sidebar.radio(key="scan_source").set_value("Path on this computer").run()
    at.sidebar.text_input(key="scan_path").input(str(tmp_path / "missing")).run()
    at.sidebar.button(key="open_path").click().run()
    assert at.sidebar.error[0].value == f"{tmp_path / 'missing'}: no such file or folder"
    at.sidebar.text_input(key="scan_path").input(str(phantom_case)).run()
    at.sidebar.button(key="open_path").click().run()
    assert not at.sidebar.error
    assert "(phantom case)" in at.sidebar.success[0].value

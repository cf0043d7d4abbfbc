"""Export page: NIfTI, derived DICOM zip, Slicer folder, PNG/PDF report, from the demo case."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
import SimpleITK as sitk
from apphelpers import open_demo, open_page

from apps import export
from edge_runtime.io import read_image

PAGE = "pages/4_Export.py"


def test_export_page(app_env, phantom_case, tmp_path) -> None:
    at = open_demo(open_page(PAGE))
    assert "Nothing to export yet" in at.info[0].value
    at.switch_page("pages/2_Compare.py").run()
    at.button(key="cmp_run").click().run()
    at.switch_page(PAGE).run()
    assert not at.exception and not at.error
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["NIfTI (.nii.gz)", "Report (PNG)", "Report (PDF)"]
    assert len(at.get("image")) == 1  # the report preview

    at.button(key="exp_dicom_make").click().run()
    at.button(key="exp_slicer_make").click().run()
    out = tmp_path / "slicer"
    at.text_input(key="exp_slicer_path").input(str(out)).run()
    at.button(key="exp_slicer_write").click().run()
    assert not at.exception and not at.error
    labels = [b.label for b in at.get("download_button")]
    assert "Derived DICOM series (.zip)" in labels and "Slicer folder (.zip)" in labels

    # DICOM: a derived, marked MR series with the CT's geometry.
    zf = zipfile.ZipFile(io.BytesIO(at.session_state["exp_dicom_zip"]))
    names = [n for n in zf.namelist() if n.endswith(".dcm")]
    assert len(names) == 16
    ds = pydicom.dcmread(io.BytesIO(zf.read(names[0])))
    assert ds.Modality == "MR" and "DERIVED" in ds.ImageType
    assert ds.SeriesDescription.startswith("SYNTHETIC")

    # Slicer folder: volume, synthetic MR, a segmentation with named segments, colour table.
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "README.txt",
        "ct.nii.gz",
        "segmentation.ctbl",
        "segmentation.seg.nrrd",
        "synthetic_mr_t2.nii.gz",
    ]
    seg = sitk.ReadImage(str(out / "segmentation.seg.nrrd"))
    names = {seg.GetMetaData(f"Segment{i}_Name") for i in range(4)}
    assert names == {"liver", "portal vein", "hepatic veins", "lesions"}
    ct = read_image(phantom_case / "ct_portal.nii.gz")
    assert seg.GetSize() == ct.size and np.allclose(seg.GetOrigin(), ct.origin)
    seg_arr = sitk.GetArrayFromImage(seg)
    truth_lesions = read_image(phantom_case / "lesions.nii.gz").voxels > 0
    assert np.array_equal(seg_arr == 4, truth_lesions)
    assert "4 lesions 230 30 30 255" in (out / "segmentation.ctbl").read_text()
    mr = read_image(out / "synthetic_mr_t2.nii.gz")
    assert mr.voxels.shape == ct.voxels.shape and np.allclose(mr.spacing, ct.spacing)
    zipped = zipfile.ZipFile(io.BytesIO(at.session_state["exp_slicer_zip"])).namelist()
    assert any(n.endswith("segmentation.seg.nrrd") for n in zipped)


def test_report_bytes_and_nifti(app_env, phantom_case) -> None:
    at = open_demo(open_page("pages/1_Synthesize.py"))
    at.button(key="syn_run").click().run()
    scan = at.session_state["scan"]
    synth = next(iter(at.session_state["syntheses"].values())).result.image
    fig = export.report_figure(scan, 5, {"synthetic": synth.voxels}, {}, "test")
    assert export.figure_bytes(fig, "png").startswith(b"\x89PNG")
    assert export.figure_bytes(fig, "pdf").startswith(b"%PDF")
    data = export.nifti_bytes(synth, "x.nii.gz")
    assert data[:2] == b"\x1f\x8b"  # gzip

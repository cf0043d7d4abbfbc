"""Patient identity goes where it belongs (the derived DICOM's patient module) and nowhere else.

A phantom CT is written as a DICOM series of a patient with a name, an ID and a birth date,
then run through the whole runtime with debug logging on: `hidiff info`, `hidiff synthesize` to
NIfTI (image and record) and to a derived DICOM series, an error path (a half-copied slice),
and the app's Synthesize page opened on the same folder. Every stdout, stderr, log line,
record and page text is searched for the three values; the derived series must carry them.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from corpus import SECRETS

from edge_runtime.io import read_image, write_ct_series

ROOT = Path(__file__).resolve().parents[2]
HIDIFF = str(Path(sys.executable).parent / "hidiff")
PACKAGE = ROOT / "compress" / "packages" / "aphidiff-tiny-t2-fp32"
PATIENT = {"PatientName": "Doe^Jane", "PatientID": "SECRET123", "PatientBirthDate": "19450101"}
# In binary files (voxels) a 3-letter surname can occur by chance; the full values cannot.
BINARY_SECRETS = (b"Doe^Jane", b"SECRET123", b"19450101")


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} appears in {where}"


@pytest.fixture(scope="module")
def patient_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The portal-venous CT of a small phantom case, as the identified patient's DICOM series."""
    from models.phantom import render_case, write_case

    root = tmp_path_factory.mktemp("privacy")
    case = write_case(
        render_case(11, grid=128, slices=8, ssim=False, keep_extras=False),
        root / "case",
        preview=False,
    )
    folder = root / "dicom"
    write_ct_series(
        read_image(case / "ct_portal.nii.gz"),
        folder,
        patient=PATIENT,
        series_description="CT portal venous",
    )
    return folder


def hidiff(*args: object, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HIDIFF_CACHE_DIR": str(cache)}
    return subprocess.run(
        [HIDIFF, "--debug", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_logs_errors_and_outputs_hold_no_identity(patient_series: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    info = hidiff("info", patient_series, cache=cache)
    assert info.returncode == 0, info.stderr
    assert "portal" in info.stdout
    assert_clean(info.stdout + info.stderr, "hidiff info")

    nifti = tmp_path / "out" / "mr.nii.gz"
    run = hidiff("synthesize", patient_series, "--package", PACKAGE, "--out", nifti, cache=cache)
    assert run.returncode == 0, run.stderr
    assert_clean(run.stdout + run.stderr, "hidiff synthesize (NIfTI)")
    written = sorted(p for p in nifti.parent.rglob("*") if p.is_file())
    assert [p.name for p in written] == ["mr.json", "mr.nii.gz"]
    assert_clean(nifti.with_name("mr.json").read_text(), "the synthesis record")
    voxels = gzip.decompress(nifti.read_bytes())
    for secret in BINARY_SECRETS:
        assert secret not in voxels, f"{secret!r} in the NIfTI output"

    derived = tmp_path / "out" / "mr-dicom"
    run = hidiff(
        "synthesize", patient_series, "--package", PACKAGE, "--out", derived,
        "--format", "dicom", cache=cache,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert_clean(run.stdout + run.stderr, "hidiff synthesize (DICOM)")
    files = sorted(derived.glob("*.dcm"))
    assert len(files) == 8
    for f in files:  # the patient module travels with the derived series, where it belongs
        ds = pydicom.dcmread(f)
        assert str(ds.PatientName) == PATIENT["PatientName"]
        assert ds.PatientID == PATIENT["PatientID"]
        assert ds.PatientBirthDate == PATIENT["PatientBirthDate"]
        assert "SYNTHETIC" in ds.SeriesDescription and "DERIVED" in ds.ImageType
    for p in cache.rglob("*"):
        if p.is_file():
            for secret in BINARY_SECRETS:
                assert secret not in p.read_bytes(), f"{secret!r} in the cache file {p}"


def test_cohort_run_and_its_records_hold_no_identity(patient_series: Path, tmp_path: Path) -> None:
    """The identified series as one case of a cohort: the console, each case's record and the
    cohort's summary stay clean; the derived series of the case carries the patient."""
    import shutil

    cohort = tmp_path / "cohort"
    shutil.copytree(patient_series, cohort / "ward-3-case")
    out = tmp_path / "out"
    run = hidiff(
        "synthesize", cohort, "--package", PACKAGE, "--out", out, "--format", "dicom",
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert_clean(run.stdout + run.stderr, "hidiff synthesize (cohort)")
    records = [out / "synthesis_summary.json", out / "ward-3-case" / "synthesis.json"]
    for record in records:
        assert_clean(record.read_text(), record.name)
    derived = sorted((out / "ward-3-case").rglob("*.dcm"))
    assert derived, sorted(out.rglob("*"))
    assert all(pydicom.dcmread(f).PatientID == PATIENT["PatientID"] for f in derived)


def test_error_path_holds_no_identity(patient_series: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in sorted(patient_series.glob("*.dcm")):
        (broken / f.name).write_bytes(f.read_bytes())
    victim = sorted(broken.glob("*.dcm"))[4]
    victim.write_bytes(victim.read_bytes()[:-500])
    for args in (("info", broken), ("synthesize", broken, "--package", PACKAGE, "--out", "x")):
        run = hidiff(*args, cache=tmp_path / "cache")
        assert run.returncode == 2 and "truncated" in run.stderr, run.stderr
        assert_clean(run.stdout + run.stderr, f"hidiff {args[0]} on a broken series")


def _page_text(at) -> str:
    """Every element of the page as its protobuf text (labels, values, captions, alerts)."""
    parts: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def test_app_pages_hold_no_identity(patient_series: Path, tmp_path: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HIDIFF_PACKAGES", str(PACKAGE))
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HIDIFF_APP_DEMO_CASE", raising=False)
    at = AppTest.from_file(str(ROOT / "apps" / "Home.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/1_Synthesize.py").run()
    at.sidebar.radio(key="scan_source").set_value("Path on this computer").run()
    at.sidebar.text_input(key="scan_path").set_value(str(patient_series)).run()
    at.sidebar.button(key="open_path").click().run()
    assert not at.exception, at.exception
    assert any("DICOM series" in s.value for s in at.sidebar.success), "scan not opened"
    at.button(key="syn_run").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert at.get("image"), "no synthesis shown"
    assert_clean(_page_text(at), "the Synthesize page")
    for page in ("pages/2_Compare.py", "pages/4_Export.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert_clean(_page_text(at), page)

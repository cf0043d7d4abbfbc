"""Cohort mode: every case in its own atomic output folder, bad cases reported and skipped,
and a run killed mid-way (a real process, SIGKILL) completes on rerun without redoing
finished cases and without leaving half-written output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from synth_helpers import ct_volume

from edge_runtime.io import read_image, write_ct_series, write_nifti

ROOT = Path(__file__).resolve().parents[2]


def make_cohort(folder: Path, n: int, shape=(6, 40, 48)) -> list[str]:
    folder.mkdir(parents=True)
    names = []
    for i in range(n):
        name = f"patient{i:02d}"
        if i % 2:  # half as folders (a case folder with one image), half as bare files
            write_nifti(ct_volume(shape=shape, seed=i), folder / name / "scan.nii.gz")
        else:
            write_nifti(ct_volume(shape=shape, seed=i), folder / f"{name}.nii.gz")
        names.append(name)
    return names


def test_cohort_reports_bad_cases_and_finishes_the_rest(hidiff, package32, tmp_path) -> None:
    names = make_cohort(tmp_path / "cohort", 3)
    (tmp_path / "cohort" / "broken.nii.gz").write_bytes(b"not a nifti at all")
    mr = ct_volume()
    write_nifti(mr.with_voxels(np.abs(mr.voxels)), tmp_path / "cohort" / "mri" / "t2.nii.gz")
    write_ct_series(ct_volume(seed=9), tmp_path / "cohort" / "dicom_case", series_description="PV")
    names.append("dicom_case")
    out = tmp_path / "out"
    res = hidiff(
        "synthesize", tmp_path / "cohort", "--package", package32, "--out", out, "-p", "cpu"
    )
    assert res.code == 2  # failures make the run fail, after finishing everything else
    text = " ".join(res.err.split())  # the console wraps long lines
    assert "4 synthesized, 0 already finished (skipped), 2 failed" in text
    assert "│ broken │" in res.err and "│ mri " in res.err
    summary = json.loads((out / "synthesis_summary.json").read_text())
    status = {c["case"]: c for c in summary["cases"]}
    assert status["broken"]["status"] == "failed" and status["broken"]["reason"]
    assert "not CT Hounsfield units" in status["mri"]["reason"]
    for name in names:
        assert status[name]["status"] == "done"
        ct_path = tmp_path / "cohort" / (f"{name}.nii.gz" if name.endswith(("0", "2")) else name)
        if not ct_path.is_file():
            ct_path = ct_path / "scan.nii.gz" if (ct_path / "scan.nii.gz").is_file() else ct_path
        src = read_image(ct_path)
        got = read_image(out / name / "synth_mr_t2.nii.gz")
        assert got.same_grid(src)
        record = json.loads((out / name / "synthesis.json").read_text())
        assert record["package"] == "tiny-test-package" and record["sequence"] == "t2"
    assert not (out / "broken").exists() and not (out / "mri").exists()


def _partials(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if ".partial-" in p.name] if out.exists() else []


def test_killed_cohort_resumes_without_redoing_finished_cases(package32, tmp_path) -> None:
    names = make_cohort(tmp_path / "cohort", 10, shape=(40, 80, 80))
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "edge_runtime.cli", "synthesize", str(tmp_path / "cohort"),
        "--package", str(package32), "--out", str(out), "-p", "cpu", "--batch", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        # kill as soon as at least one case is finished and the next one is being written
        while time.monotonic() < deadline:
            done = [n for n in names if (out / n / "synthesis.json").is_file()]
            if done and proc.poll() is None:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = {
        n: (out / n / "synthesis.json").stat().st_mtime_ns
        for n in names
        if (out / n / "synthesis.json").is_file()
    }
    assert 1 <= len(finished) < len(names), "the kill must land mid-cohort"
    # what is visible is complete: every case folder that exists holds its record and image
    for entry in out.iterdir():
        if entry.is_dir() and not entry.name.startswith("."):
            assert (entry / "synthesis.json").is_file() and (entry / "synth_mr_t2.nii.gz").is_file()

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} already finished (skipped)" in " ".join(rerun.stderr.split())
    for n in names:
        assert (out / n / "synth_mr_t2.nii.gz").is_file()
    for n, mtime in finished.items():  # finished cases were not redone
        assert (out / n / "synthesis.json").stat().st_mtime_ns == mtime
    assert _partials(out) == []  # the killed run's half-written case was cleaned up

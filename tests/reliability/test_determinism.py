"""Determinism: the same input, package, provider and seed give bit-identical output on CPU.

Two separate `hidiff synthesize` processes (the first with an empty model cache, so it builds
ONNX Runtime's optimised graphs; the second loads them from the cache) on the same phantom CT
with the shipped package write NIfTI files with identical bytes and identical voxels; the same
again (in this process) for a DICOM derived series: pixel data identical, its UIDs new by
design. Another seed changes the image, so the comparisons can fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from edge_runtime import cli
from edge_runtime.io import read_image

ROOT = Path(__file__).resolve().parents[2]
HIDIFF = str(Path(sys.executable).parent / "hidiff")
PACKAGE = ROOT / "compress" / "packages" / "aphidiff-tiny-t2-fp32"


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.phantom import render_case, write_case

    case = write_case(
        render_case(3, grid=128, slices=8, ssim=False, keep_extras=False),
        tmp_path_factory.mktemp("determinism") / "case",
        preview=False,
    )
    return case / "ct_portal.nii.gz"


def synthesize(ct: Path, out: Path, cache: Path, *extra: str) -> None:
    env = {**os.environ, "HIDIFF_CACHE_DIR": str(cache)}
    run = subprocess.run(
        [HIDIFF, "synthesize", str(ct), "--package", str(PACKAGE), "--out", str(out),
         "-p", "cpu", "--seed", "11", *extra],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr


def test_two_processes_give_bit_identical_nifti(ct: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    a, b = tmp_path / "a" / "mr.nii.gz", tmp_path / "b" / "mr.nii.gz"
    synthesize(ct, a, cache)
    assert any(cache.rglob("*")), "the first run should have filled the model cache"
    synthesize(ct, b, cache)
    va, vb = read_image(a).voxels, read_image(b).voxels
    assert va.std() > 0
    np.testing.assert_array_equal(va, vb)
    assert a.read_bytes() == b.read_bytes()


def in_process(ct: Path, out: Path, seed: str, *extra: str) -> None:
    args = ["synthesize", str(ct), "--package", str(PACKAGE), "--out", str(out), "-p", "cpu"]
    with pytest.raises(SystemExit) as done:
        cli.main([*args, "--seed", seed, *extra])
    assert done.value.code in (0, None)


def test_dicom_pixels_are_identical(ct: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path / "cache"))
    a, b = tmp_path / "a", tmp_path / "b"
    in_process(ct, a, "11", "--format", "dicom")
    in_process(ct, b, "11", "--format", "dicom")
    fa, fb = sorted(a.glob("*.dcm")), sorted(b.glob("*.dcm"))
    assert len(fa) == len(fb) == 8
    for x, y in zip(fa, fb, strict=True):
        dx, dy = pydicom.dcmread(x), pydicom.dcmread(y)
        assert dx.InstanceNumber == dy.InstanceNumber
        assert dx.PixelData == dy.PixelData
        assert (dx.RescaleSlope, dx.RescaleIntercept) == (dy.RescaleSlope, dy.RescaleIntercept)
        assert dx.SOPInstanceUID != dy.SOPInstanceUID  # a new derived object each time


def test_another_seed_changes_the_image(ct: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path / "cache"))
    outs = {}
    for seed in ("11", "12"):
        in_process(ct, tmp_path / seed / "mr.nii.gz", seed)
        outs[seed] = read_image(tmp_path / seed / "mr.nii.gz").voxels
    assert np.abs(outs["11"] - outs["12"]).max() > 1.0

"""Command options: --steps changes the sampler, --format dicom from a NIfTI source starts a new
study, and a provider that this machine cannot load is an error before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

from synth_helpers import ct_volume

from edge_runtime.io import read_image, write_nifti


def test_steps_and_seed_are_recorded(hidiff, package32: Path, tmp_path: Path) -> None:
    src = write_nifti(ct_volume(), tmp_path / "ct.nii.gz")
    res = hidiff(
        "synthesize", src, "--package", package32, "--out", tmp_path / "a.nii.gz",
        "-p", "cpu", "--steps", "2", "--seed", "7", "--batch", "3",
    )  # fmt: skip
    assert res.code == 0, res.err
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["stats"]["steps"] == 2 and record["seed"] == 7
    assert record["package"] == "tiny-test-package" and len(record["package_manifest_sha256"]) == 64
    res = hidiff("synthesize", src, "--package", package32, "--out", tmp_path / "b.nii.gz")
    assert res.code == 0, res.err
    assert json.loads((tmp_path / "b.json").read_text())["stats"]["steps"] == 4
    a, b = read_image(tmp_path / "a.nii.gz"), read_image(tmp_path / "b.nii.gz")
    assert abs(a.voxels - b.voxels).max() > 1.0  # 2 steps and 4 steps differ


def test_dicom_output_from_a_nifti_source(hidiff, package32: Path, tmp_path: Path) -> None:
    src = write_nifti(ct_volume(), tmp_path / "ct.nii.gz")
    out = tmp_path / "series"
    res = hidiff(
        "synthesize", src, "--package", package32, "--out", out, "--format", "dicom", "-p", "cpu"
    )
    assert res.code == 0, res.err
    got = read_image(out)
    assert got.same_grid(read_image(src)) and got.metadata.modality == "MR"


def test_unavailable_provider_is_refused(hidiff, package32: Path, tmp_path: Path) -> None:
    src = write_nifti(ct_volume(), tmp_path / "ct.nii.gz")
    out = tmp_path / "o.nii.gz"
    res = hidiff("synthesize", src, "--package", package32, "--out", out, "-p", "cuda")
    assert res.code == 2 and "error:" in res.err and "Traceback" not in res.err
    assert not out.exists()


def test_unknown_format_is_refused(hidiff, package32: Path, tmp_path: Path) -> None:
    src = write_nifti(ct_volume(), tmp_path / "ct.nii.gz")
    res = hidiff(
        "synthesize", src, "--package", package32, "--out", tmp_path / "o", "--format", "png"
    )
    assert res.code == 2 and "--format 'png'" in res.err

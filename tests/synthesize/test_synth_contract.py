"""The input contract: a scan the package was not trained for is refused before anything runs,
with a one-line message saying what was expected and what came, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synth_helpers import ct_volume

from edge_runtime.errors import InputError
from edge_runtime.io import write_ct_series, write_nifti
from edge_runtime.synthesizer import Synthesizer


def _nothing_written(out: Path) -> None:
    assert not out.exists()
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_mr_dicom_series_is_refused(hidiff, package32: Path, tmp_path: Path) -> None:
    mr = ct_volume(modality="MR")
    mr = mr.with_voxels(np.abs(mr.voxels))
    write_ct_series(mr, tmp_path / "mr", modality="MR", series_description="T2 HASTE")
    out = tmp_path / "out" / "synth"
    (tmp_path / "out").mkdir()
    res = hidiff("synthesize", tmp_path / "mr", "--package", package32, "--out", out, "-p", "cpu")
    assert res.code == 2
    assert "expects CT input, got modality 'MR'" in res.err
    assert res.err.strip().splitlines() == [
        "error: package 'tiny-test-package' expects CT input, got modality 'MR'"
    ]  # one line, nothing else: refused before any session was made
    assert "Traceback" not in res.err
    _nothing_written(out)


def test_nifti_without_modality_and_not_hu_is_refused(hidiff, package32, tmp_path) -> None:
    mr_like = ct_volume()
    mr_like = mr_like.with_voxels(np.abs(mr_like.voxels) + 5.0)  # MR magnitudes: >= 0
    src = write_nifti(mr_like, tmp_path / "scan.nii.gz")
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "t2.nii.gz"
    res = hidiff("synthesize", src, "--package", package32, "--out", out, "-p", "cpu")
    assert res.code == 2
    assert "not CT Hounsfield units" in res.err
    _nothing_written(out)


def test_wrong_ct_phase_is_refused(package32: Path) -> None:
    ct = ct_volume()
    ct.metadata.phase_hint = "arterial"
    with pytest.raises(InputError, match="trained on portal_venous CT, got phase 'arterial'"):
        Synthesizer(package32, provider="cpu").synthesize(ct)


def test_sequence_the_package_lacks_is_refused(hidiff, package32, tmp_path) -> None:
    src = write_nifti(ct_volume(), tmp_path / "ct.nii.gz")
    out = tmp_path / "o.nii.gz"
    res = hidiff("synthesize", src, "--package", package32, "--out", out, "--sequence", "t1c")
    assert res.code == 2
    assert "synthesizes t2, not 't1c'" in res.err
    assert not out.exists()


def test_existing_output_is_not_overwritten(hidiff, package32, tmp_path) -> None:
    src = write_nifti(ct_volume(), tmp_path / "ct.nii.gz")
    out = tmp_path / "o.nii.gz"
    out.write_bytes(b"precious")
    res = hidiff("synthesize", src, "--package", package32, "--out", out, "-p", "cpu")
    assert res.code == 2 and "already exists" in res.err
    assert out.read_bytes() == b"precious"

"""The derived series passes dciodvfy (Debian's dicom3tools), the standard's own IOD checker:
no errors (warnings, e.g. about rescale in a classic MR image, are allowed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from iohelpers import ct_image, oblique_direction

from edge_runtime.io import read_image, write_dicom_series

pytestmark = pytest.mark.slow
SHA = "fedcba9876543210" * 4


def dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (out.stdout + out.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")]


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy not installed: apt-get install dicom3tools (make test-slow does)",
)
@pytest.mark.parametrize("with_source_study", [True, False])
def test_derived_series_has_no_dciodvfy_errors(
    write_series, tmp_path: Path, with_source_study
) -> None:
    source = read_image(write_series(ct_image(direction=oblique_direction(8))))
    rng = np.random.default_rng(0)
    synthetic = source.with_voxels(rng.uniform(0, 900, source.voxels.shape))
    written = write_dicom_series(
        synthetic,
        source if with_source_study else None,
        tmp_path / "synth",
        package_name="hidiff-edge-demo",
        package_sha256=SHA,
    )
    for path in written.files:
        assert dciodvfy_errors(path) == [], path
    ct_files = sorted(Path(source.metadata.source_path).glob("*.dcm"))
    assert dciodvfy_errors(ct_files[0]) == []

"""`hidiff demo` end to end on a package built from a trained run: renders a phantom patient at
the package's grid, synthesizes it through the runtime, writes NIfTI + PNG, prints the time per
slice and the SSIM against the phantom's true MR."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from edge_runtime import cli
from edge_runtime.io import read_image


def test_demo_runs_and_reports(built_package: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    try:
        cli.main(["demo", "--package", str(built_package), "--out", str(out), "--seed", "11"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    printed = capsys.readouterr().out
    assert code == 0
    assert re.search(r"\d+ slices of 128x128 in \d+\.\d+ s/slice", printed)
    assert re.search(r"SSIM vs the phantom's true MR \(mr_t2_ctphase.*\): -?\d\.\d{3}", printed)
    png = (out / "comparison.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    ct, syn, true = (
        read_image(out / name)
        for name in ("ct_portal.nii.gz", "synthetic_mr_t2.nii.gz", "true_mr_t2.nii.gz")
    )
    assert syn.same_grid(ct) and true.same_grid(ct)
    assert np.isfinite(syn.voxels).all() and syn.voxels.std() > 0
    summary = json.loads((out / "demo.json").read_text())
    assert summary["phantom_seed"] == 11 and summary["slices"] == 8  # 200 mm / 25 mm slices
    assert -1.0 <= summary["ssim_body_liver_slices"] <= 1.0
    assert summary["seconds_per_slice"] > 0 and "provenance" in summary

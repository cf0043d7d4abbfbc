"""`hidiff prepare` end to end on a 64^2 phantom case: outputs, QA, resume, bad input."""

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from edge_runtime.cli import main
from edge_runtime.package.manifest import Normalisation
from models.aphidiff.config import DataConfig
from models.preprocess.prepare import PrepareConfig, prepare_cohort
from models.preprocess.registration import RegistrationConfig


def _cohort(tmp_path, case_dir, n=2):
    root = tmp_path / "cohort"
    root.mkdir()
    cases = []
    for i in range(n):
        cid = f"case-{i:04d}"
        (root / cid).symlink_to(case_dir, target_is_directory=True)
        cases.append({"id": cid, "seed": 3, "split": "test"})
    (root / "cohort.json").write_text(
        json.dumps({"format": "hidiff-phantom-cohort/1", "cases": cases})
    )
    return root


def _check_model_normalisation(case_dir, out, rec) -> None:
    """normalisation.json is the model package's block, and the written CT/MR follow it."""
    data = DataConfig()
    norm = json.loads((out / "normalisation.json").read_text())
    assert norm == {
        "ct_hu_window": [data.hu_min, data.hu_max],
        "model_range": [-1.0, 1.0],
        "mr_method": "percentile",
        "mr_percentile": data.mr_percentile,
    }
    runtime = Normalisation(
        tuple(norm["ct_hu_window"]), tuple(norm["model_range"]), norm["mr_method"], 99.5
    )
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "ct_portal.nii.gz")))
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case-0000/grid64/ct_portal.nii.gz")))
    np.testing.assert_allclose(ct, runtime.ct_to_model(hu), atol=1e-5)
    mr = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case-0000/grid64/mr_t2.nii.gz")))
    body = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "labels.nii.gz"))) > 0
    assert mr.min() >= -1.0 and mr.max() <= 1.0
    # the body's 99.5th percentile maps to the top: about 0.5% of body voxels clip there
    assert 0.001 < np.mean(mr[body] >= 1.0 - 1e-6) < 0.02
    assert set(rec["mr_scales"]) == {"mr_t1", "mr_t2", "mr_t1c"}


def test_prepare_writes_pairs_qa_and_resumes(tmp_path, phantom_case_dir):
    data, out = _cohort(tmp_path, phantom_case_dir), tmp_path / "out"
    cfg = PrepareConfig(registration=RegistrationConfig(method="syn"), grids=(32, 64))
    rows = prepare_cohort(data, out, cfg, workers=2)  # parallel across cases
    assert len(rows) == 2
    case = out / "case-0000"
    for name in (
        "qa.md",
        "qa.png",
        "qa.json",
        "field_ct_to_mr.nii.gz",
        "grid32/ct_portal.nii.gz",
        "grid64/mr_t2.nii.gz",
        "grid64/labels.nii.gz",
        "grid64/mr_labels_registered.nii.gz",
    ):
        assert (case / name).is_file(), name
    rec = json.loads((case / "qa.json").read_text())
    assert rec["qa"]["tre"]["n"] > 10 and rec["qa"]["jacobian"]["sdlogj"] >= 0
    assert len(rec["qa"]["tre_landmarks_mm"]) == rec["qa"]["tre"]["n"]  # for pooled percentiles
    assert rec["excluded"] == bool(rec["qa"]["reasons"])
    _check_model_normalisation(phantom_case_dir, out, rec)
    assert "case-0001" in (out / "summary.md").read_text()

    # an interrupted run: case-0001 never finished, a half-written folder is left behind
    import shutil

    shutil.rmtree(out / "case-0001")
    partial = out / ".case-0001.partial-99-deadbeef"
    partial.mkdir()
    stamp = os.stat(case / "qa.json").st_mtime_ns
    prepare_cohort(data, out, cfg)
    assert not partial.exists()
    assert (out / "case-0001" / "qa.json").is_file()
    assert os.stat(case / "qa.json").st_mtime_ns == stamp  # finished work is not redone


def test_cli_bad_input_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "x"])
    assert exc.value.code == 2

"""The cohort evaluation's summary (pooled landmark percentiles) and the tuning guard, on
hand-written QA records: no registration runs here."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from edge_runtime.errors import InputError
from models.preprocess.cases import read_case
from models.preprocess.evaluate import registration_table, summary_table
from models.preprocess.fields import field_from_array
from models.preprocess.tune import apply_overrides
from models.preprocess.tune import main as tune_main


def _record(cid: str, errors: list[float] | None, stats: dict) -> dict:
    qa = {
        "metric_before": -0.5,
        "metric_after": -0.6,
        "jacobian": {"min": 0.9, "max": 1.1, "folding_percent": 0.0, "sdlogj": 0.02},
        "dice_before": 0.9,
        "dice_after": 0.97,
        "tre": stats,
        "tre_before": stats,
        "field_error": {"mean": 0.5},
        "tre_landmarks_mm": errors,
        "reasons": [],
    }
    return {
        "case": cid,
        "split": "test",
        "method": "elastix",
        "seconds": 1.0,
        "excluded": False,
        "qa": qa,
        "mr_scales": {},
        "grids": [64],
    }


def _stats(e) -> dict:
    e = np.asarray(e, float)
    return {
        "mean": e.mean(),
        "median": float(np.median(e)),
        "p95": float(np.percentile(e, 95)),
        "max": e.max(),
        "n": int(e.size),
    }


def test_pooled_p95_uses_every_landmark_and_old_records_are_measured_again(
    tmp_path, phantom_case_dir
):
    data = tmp_path / "cohort"
    data.mkdir()
    for cid in ("case-0000", "case-0001"):
        (data / cid).symlink_to(phantom_case_dir, target_is_directory=True)
    (data / "cohort.json").write_text(
        json.dumps(
            {
                "format": "hidiff-phantom-cohort/1",
                "cases": [
                    {"id": c, "seed": 3, "split": "test"} for c in ("case-0000", "case-0001")
                ],
            }
        )
    )
    out = tmp_path / "out" / "elastix"
    a = list(np.linspace(0.1, 1.0, 40))
    (out / "case-0000").mkdir(parents=True)
    (out / "case-0000" / "qa.json").write_text(json.dumps(_record("case-0000", a, _stats(a))))
    # case-0001 written before qa.json carried per-landmark errors: measured from its field
    case = read_case(phantom_case_dir)
    p, q = case.landmarks
    before = np.linalg.norm(q - p, axis=1)
    (out / "case-0001").mkdir()
    zero = field_from_array(np.zeros((*case.fixed().GetSize()[::-1], 3)), case.fixed())
    sitk.WriteImage(
        sitk.Cast(zero, sitk.sitkVectorFloat32), str(out / "case-0001/field_ct_to_mr.nii.gz")
    )
    (out / "case-0001" / "qa.json").write_text(
        json.dumps(_record("case-0001", None, _stats(before)))
    )
    r = registration_table(data, tmp_path / "out", "elastix")
    pooled = np.concatenate([a, before])
    assert r["landmarks"] == pooled.size
    assert r["tre_p95_mm_pooled"] == pytest.approx(np.percentile(pooled, 95), rel=1e-5)
    assert r["tre_p95_mm_worst_case"] == pytest.approx(
        max(np.percentile(a, 95), np.percentile(before, 95))
    )
    assert [c["landmarks"] for c in r["per_case"]] == [40, before.size]
    table = summary_table({"elastix": r})
    assert "p95 pooled" in table and table.count("\n") == 3


def test_tuning_overrides_and_held_out_seeds_are_refused(tmp_path):
    from models.preprocess.registration import PARAMS_DIR

    dst = apply_overrides(PARAMS_DIR, tmp_path / "p", {"FinalGridSpacingInPhysicalUnits": "24.0"})
    text = (dst / "bspline_liver.txt").read_text()
    assert "(FinalGridSpacingInPhysicalUnits 24.0)" in text
    assert (dst / "rigid.txt").read_text() == (PARAMS_DIR / "rigid.txt").read_text()
    dst = apply_overrides(PARAMS_DIR, tmp_path / "p", {"bspline_liver:Metric2Weight": "100.0"})
    assert "(Metric2Weight 100.0)" in (dst / "bspline_liver.txt").read_text()
    assert "(Metric2Weight 100.0)" not in (dst / "rigid_liver.txt").read_text()
    with pytest.raises(InputError, match="no parameter map"):
        apply_overrides(PARAMS_DIR, tmp_path / "q", {"NoSuchKey": "1"})
    with pytest.raises(InputError, match="held-out"):
        tune_main(["--work", str(tmp_path), "--name", "x", "--seed", "5005", "--n", "3"])

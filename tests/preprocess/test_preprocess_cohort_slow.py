"""The issue's acceptance test on a held-out 10-case phantom cohort with 4D-CT (slow: minutes).

Writes benchmarks/results/registration-<grid>-<date>.json with provenance, then checks the
"Done when" numbers. Elastix and SyN run on the same cases and are reported side by side; the
accuracy targets are asserted for the method `prepare` should use on such data (`motion`), and
for Elastix separately (which does NOT meet them today: see docs/preprocess.md).
"""

import json

import pytest

from models.preprocess.evaluate import main


@pytest.mark.slow
def test_cohort_acceptance(tmp_path):
    out = main(["--grid", "128", "--work", str(tmp_path), "--results", str(tmp_path / "results")])
    res = json.loads(out.read_text())
    assert res["cohort"]["n"] >= 10
    mm = res["motion_model"]
    assert mm["phase_icc_a1_si_mm"] >= 0.95
    assert mm["compensation_max_error_mm"] <= 2.0
    assert mm["bspline_vs_dense_max_error_mm"] <= 0.5
    for method in ("motion", "elastix"):
        r = res["registration"][method]
        assert r["tre_mean_mm"] <= 1.0, (method, r["tre_mean_mm"])
        assert r["tre_p95_mm_worst_case"] <= 2.0, (method, r)
        assert r["dice_liver_after"] >= 0.95 and r["jacobian_min"] > 0, (method, r)
    assert "sdlogj_mean" in res["registration"]["syn"]

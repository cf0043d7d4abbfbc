"""The issue's acceptance test on a held-out 10-case phantom cohort with 4D-CT (slow: minutes).

Writes benchmarks/results/registration-<grid>-<date>.json with provenance, then checks the
"Done when" numbers. Elastix and SyN run on the same cases and are reported side by side; the
accuracy targets are asserted for the method `prepare` should use on such data (`motion`), and
for Elastix separately as a strict expected failure: it does NOT meet them today (mean TRE
3.8 mm on 128^2, docs/preprocess.md), and the day it does, the xfail turns red as a reminder.
"""

import json

import pytest

from models.preprocess.evaluate import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort_result(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("registration-cohort")
    out = main(["--grid", "128", "--work", str(work), "--results", str(work / "results")])
    return json.loads(out.read_text())


def _meets_registration_targets(r: dict) -> None:
    assert r["tre_mean_mm"] <= 1.0, r["tre_mean_mm"]
    assert r["tre_p95_mm_worst_case"] <= 2.0, r
    assert r["dice_liver_after"] >= 0.95 and r["jacobian_min"] > 0, r


def test_motion_model_and_motion_registration_meet_targets(cohort_result) -> None:
    assert cohort_result["cohort"]["n"] >= 10
    mm = cohort_result["motion_model"]
    assert mm["phase_icc_a1_si_mm"] >= 0.95
    assert mm["compensation_max_error_mm"] <= 2.0
    assert mm["bspline_vs_dense_max_error_mm"] <= 0.5
    _meets_registration_targets(cohort_result["registration"]["motion"])
    assert "sdlogj_mean" in cohort_result["registration"]["syn"]


@pytest.mark.xfail(
    strict=True, reason="issue 4: Elastix B-spline MI registration misses the TRE/Dice targets"
)
def test_elastix_meets_targets(cohort_result) -> None:
    _meets_registration_targets(cohort_result["registration"]["elastix"])

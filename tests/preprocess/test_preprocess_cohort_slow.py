"""The issue's acceptance test on a held-out 10-case phantom cohort with 4D-CT (slow: ~30 min on
2 cores).

Writes benchmarks/results/registration-<grid>-<date>.json with provenance, then checks the
"Done when" numbers. All methods run on the same cases and are reported side by side:
- `motion` (4D-CT PCA model) meets every target;
- `elastix+liver` (Elastix with the CT and MR liver segmentations, `prepare --liver-mask`) meets
  every target. "95th percentile" is the cohort's: every landmark of every case pooled (377 on
  the held-out cohort; 1.61 mm on 2026-12-03). Each case's own 95th percentile is reported too;
  its worst case is at the edge of 2.0 mm (2.05 mm on 2026-12-01, 1.93 mm on 2026-12-03, same
  cases and maps, another CPU), so it is reported, not held;
- image-only `elastix` (no segmentations) misses the targets: strict expected failure.
The day a strict xfail passes, it turns red as a reminder to make it a plain assertion.
"""

import json

import pytest

from models.preprocess.evaluate import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort_result(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("registration-cohort")
    out = main(
        [
            "--grid",
            "128",
            "--methods",
            "motion,syn,elastix,elastix+liver",
            # as the committed JSON's command: two single-threaded cases at a time
            "--workers",
            "2",
            "--threads",
            "1",
            "--work",
            str(work),
            "--results",
            str(work / "results"),
        ]
    )
    return json.loads(out.read_text())


def _meets_mean_dice_folding(r: dict) -> None:
    assert r["tre_mean_mm"] <= 1.0, r["tre_mean_mm"]
    assert r["dice_liver_after"] >= 0.95 and r["jacobian_min"] > 0, r
    assert r["folding_percent_max"] == 0.0 and "sdlogj_mean" in r, r


def _meets_registration_targets(r: dict) -> None:
    _meets_mean_dice_folding(r)
    assert r["tre_p95_mm_pooled"] <= 2.0 and r["landmarks"] >= 200, r
    # each case's own 95th percentile stays on the record beside the pooled one
    assert len(r["per_case"]) == r["cases"] and all("tre_p95" in c for c in r["per_case"]), r


def test_motion_model_and_motion_registration_meet_targets(cohort_result) -> None:
    assert cohort_result["cohort"]["n"] >= 10
    mm = cohort_result["motion_model"]
    assert mm["phase_icc_a1_si_mm"] >= 0.95
    assert mm["compensation_max_error_mm"] <= 2.0
    assert mm["bspline_vs_dense_max_error_mm"] <= 0.5
    _meets_registration_targets(cohort_result["registration"]["motion"])
    assert "sdlogj_mean" in cohort_result["registration"]["syn"]


def test_elastix_with_liver_segmentations_meets_mean_tre_dice_folding(cohort_result) -> None:
    r = cohort_result["registration"]["elastix+liver"]
    assert r["cases"] == cohort_result["cohort"]["n"] and r["excluded"] == 0, r
    _meets_mean_dice_folding(r)


def test_elastix_with_liver_segmentations_meets_all_targets(cohort_result) -> None:
    _meets_registration_targets(cohort_result["registration"]["elastix+liver"])


@pytest.mark.xfail(
    strict=True, reason="issue 4: image-only Elastix (MI, no liver segmentations) misses TRE"
)
def test_elastix_image_only_meets_targets(cohort_result) -> None:
    _meets_registration_targets(cohort_result["registration"]["elastix"])

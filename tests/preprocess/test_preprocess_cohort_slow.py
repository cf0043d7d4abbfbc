"""The issue's acceptance test on a held-out 10-case phantom cohort with 4D-CT (slow: ~30 min on
2 cores).

Writes benchmarks/results/registration-<grid>-<date>.json with provenance, then checks the
"Done when" numbers. All methods run on the same cases and are reported side by side:
- `motion` (4D-CT PCA model) meets every target;
- `elastix+liver` (Elastix with the CT and MR liver segmentations, `prepare --liver-mask`) meets
  mean TRE, Dice and folding; its worst case's 95th-percentile TRE (2.05 mm on 2026-12-01) is
  just above 2.0 mm, so the full target stays a strict expected failure;
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
    assert r["tre_p95_mm_worst_case"] <= 2.0, r


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


@pytest.mark.xfail(
    strict=True,
    reason="issue 4: Elastix with liver segmentations: worst case's p95 TRE 2.05 mm > 2.0 mm",
)
def test_elastix_with_liver_segmentations_meets_all_targets(cohort_result) -> None:
    _meets_registration_targets(cohort_result["registration"]["elastix+liver"])


@pytest.mark.xfail(
    strict=True, reason="issue 4: image-only Elastix (MI, no liver segmentations) misses TRE"
)
def test_elastix_image_only_meets_targets(cohort_result) -> None:
    _meets_registration_targets(cohort_result["registration"]["elastix"])

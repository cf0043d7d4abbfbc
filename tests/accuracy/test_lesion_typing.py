"""Lesion typing: CV protocol and metrics against scikit-learn, and sensitivity to lost contrast."""

import numpy as np
import pytest

from benchmarks.accuracy.lesion_typing import cross_validated_typing, lesion_features


def _features(rng, types, spread):
    centres = {"hcc": [1.5, 0.2, 0.4], "hemangioma": [3.0, 0.3, 1.2], "cyst": [4.0, 0.05, 2.0]}
    return np.array([np.asarray(centres[t]) + rng.normal(scale=spread, size=3) for t in types])


def test_separable_types_score_high_and_washed_out_prediction_low() -> None:
    rng = np.random.default_rng(0)
    types = ["hcc"] * 12 + ["hemangioma"] * 10 + ["cyst"] * 8 + ["pvtt"] * 3
    truth = _features(rng, [t if t != "pvtt" else "hcc" for t in types], 0.2)
    faithful = truth + rng.normal(scale=0.05, size=truth.shape)
    washed = np.full_like(truth, 1.5) + rng.normal(scale=0.2, size=truth.shape)
    res = cross_validated_typing(truth, {"good": faithful, "bad": washed}, types)
    assert res["status"] == "ok"
    assert res["dropped_types"] == {"pvtt": 3}
    assert res["classes"] == ["cyst", "hcc", "hemangioma"]
    t, r = res["true_mri"], res["methods"]
    assert t["auc_mean"] > 0.95 and t["kappa_mean"] > 0.8
    assert r["good"]["auc_mean"] > 0.9
    assert r["bad"]["kappa_mean"] < 0.3
    assert len(t["auc_folds"]) == 5
    assert t["auc_sd"] == pytest.approx(np.std(t["auc_folds"], ddof=1))
    # a method called "truth" does not overwrite the true MRI's row
    res2 = cross_validated_typing(truth, {"truth": washed}, types)
    assert res2["true_mri"] == t and res2["methods"]["truth"]["kappa_mean"] < 0.3


def test_split_by_patient_keeps_patients_apart() -> None:
    rng = np.random.default_rng(2)
    types = (["hcc"] * 3 + ["hemangioma"] * 3 + ["cyst"] * 3) * 4
    patients = [f"p{i % 12}" for i in range(len(types))]  # 12 patients, one lesion of each type
    truth = _features(rng, types, 0.2)
    res = cross_validated_typing(truth, {"same": truth}, types, groups=patients)
    assert res["status"] == "ok" and res["split"] == "by patient"
    assert res["true_mri"]["kappa_mean"] > 0.8
    assert res["methods"]["same"] == res["true_mri"]
    assert None not in res["true_mri"]["auc_folds"]
    few = cross_validated_typing(truth, {}, types, groups=["a", "b"] * (len(types) // 2))
    assert few["status"].startswith("not evaluable") and "patients" in few["status"]


def test_too_few_lesions_is_reported_not_crashed() -> None:
    res = cross_validated_typing(np.zeros((4, 3)), {}, ["hcc", "hcc", "cyst", "cyst"])
    assert res["status"].startswith("not evaluable")


def test_features_are_scale_free() -> None:
    rng = np.random.default_rng(1)
    img = rng.normal(100, 5, size=(8, 32, 32))
    region = np.zeros(img.shape, bool)
    region[3:6, 10:16, 10:16] = True
    img[region] += 50
    ring = np.zeros(img.shape, bool)
    ring[2:7, 7:19, 7:19] = True
    ring &= ~region
    liver = np.ones(img.shape, bool)
    f1 = lesion_features(img, region, ring, liver)
    f2 = lesion_features(img * 3.0, region, ring, liver)
    np.testing.assert_allclose(f1, f2, rtol=1e-10, atol=1e-12)
    assert f1[-2] > 0.3  # lesion brighter than its ring

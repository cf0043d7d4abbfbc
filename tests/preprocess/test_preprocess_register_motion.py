"""MR -> CT registration within the patient's 4D-CT motion model, on a 64^2 phantom case."""

import numpy as np
import pytest
import SimpleITK as sitk

from edge_runtime.errors import InputError
from models.preprocess import qa
from models.preprocess.cases import read_case
from models.preprocess.fields import warp
from models.preprocess.registration import RegistrationConfig, register


def test_motion_model_registration_meets_the_accuracy_targets(phantom_case_dir):
    case = read_case(phantom_case_dir)
    assert len(case.four_d_fields) == 10 and case.landmarks is not None
    res = register(
        case.fixed(),
        case.moving(),
        config=RegistrationConfig(method="motion"),
        four_d_fields=case.four_d_arrays(),
    )
    p, q = case.landmarks
    before = np.linalg.norm(q - p, axis=1)
    tre = qa.distance_stats(qa.target_registration_error(res.field, p, q))
    liver = sitk.GetArrayFromImage(case.labels) == case.liver_label
    warped = sitk.GetArrayFromImage(warp(case.mr_labels, res.field, interpolator="nearest"))
    jac = qa.jacobian_stats(res.field, liver)
    assert before.mean() > 2.0  # there was motion to undo
    assert tre["mean"] <= 1.0 and tre["p95"] <= 2.0, tre
    assert qa.dice(liver, warped == case.liver_label) >= 0.95
    assert jac["min"] > 0 and jac["folding_percent"] == 0.0
    assert res.metric_after < res.metric_before


def test_motion_method_without_4dct_is_a_clear_error(phantom_case_dir):
    case = read_case(phantom_case_dir)
    with pytest.raises(InputError, match="4D-CT"):
        register(case.fixed(), case.moving(), config=RegistrationConfig(method="motion"))

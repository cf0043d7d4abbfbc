"""QA maths on analytic deformations, where the right answer is known in closed form."""

import numpy as np
import pytest
import SimpleITK as sitk

from edge_runtime.errors import InputError
from models.preprocess import qa
from models.preprocess.fields import field_from_array


def _grid(shape=(12, 16, 20), spacing=(2.0, 1.5, 3.0)):
    img = sitk.Image([shape[2], shape[1], shape[0]], sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin((-10.0, 5.0, 30.0))
    return img


def _affine_field(ref: sitk.Image, a: np.ndarray) -> sitk.Image:
    """u(p) = A p on the grid of `ref`."""
    size = ref.GetSize()
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1).reshape(-1, 3)
    pts = np.array([ref.TransformIndexToPhysicalPoint(tuple(int(v) for v in i)) for i in idx])
    u = (pts @ a.T).reshape(*size, 3).transpose(2, 1, 0, 3)
    return field_from_array(u, ref)


def _interior(shape=(12, 16, 20)):
    """ITK's finite differences are one-sided (halved) on the border voxels."""
    m = np.zeros(shape, bool)
    m[1:-1, 1:-1, 1:-1] = True
    return m


def test_jacobian_of_affine_field_is_det_of_identity_plus_a():
    ref = _grid()
    a = np.array([[0.1, 0.02, 0.0], [0.0, -0.2, 0.05], [0.03, 0.0, 0.3]])
    stats = qa.jacobian_stats(_affine_field(ref, a), _interior())
    expect = np.linalg.det(np.eye(3) + a)
    assert stats["min"] == pytest.approx(expect, abs=1e-6)
    assert stats["max"] == pytest.approx(expect, abs=1e-6)
    assert stats["folding_percent"] == 0.0
    assert stats["sdlogj"] == pytest.approx(0.0, abs=1e-6)


def test_folding_detected_and_sdlogj_grows_with_nonuniform_field():
    ref = _grid()
    fold = qa.jacobian_stats(_affine_field(ref, np.diag([-1.5, 0.0, 0.0])), _interior())
    assert fold["min"] < 0 and fold["folding_percent"] == pytest.approx(100.0)
    arr = np.zeros((12, 16, 20, 3))
    arr[..., 0] = 0.8 * np.sin(np.arange(20) / 3.0)[None, None, :]
    sd = qa.jacobian_stats(field_from_array(arr, ref))["sdlogj"]
    assert sd > 0.05


def test_tre_of_translation_field():
    ref = _grid()
    arr = np.zeros((12, 16, 20, 3))
    arr[..., 2] = 4.0
    disp = field_from_array(arr, ref)
    p = np.array([[0.0, 15.0, 45.0], [4.0, 20.0, 50.0]])
    assert np.allclose(
        qa.target_registration_error(disp, p, p + np.array([0, 0, 4.0])), 0.0, atol=1e-9
    )
    assert np.allclose(qa.target_registration_error(disp, p, p), 4.0)
    err = qa.field_error(disp, field_from_array(np.zeros_like(arr), ref))
    assert err["mean"] == pytest.approx(4.0) and err["max"] == pytest.approx(4.0)


def test_dice_and_icc():
    a = np.zeros((10, 10), bool)
    a[:5] = True
    b = np.zeros((10, 10), bool)
    b[2:7] = True
    assert qa.dice(a, a) == 1.0
    assert qa.dice(a, b) == pytest.approx(0.6)
    with pytest.raises(InputError):
        qa.dice(np.zeros(3, bool), np.zeros(3, bool))
    x = np.linspace(-10, 5, 10)
    assert qa.icc_a1(x, x) == pytest.approx(1.0)
    assert qa.icc_a1(x, x + 5.0) < 0.8  # absolute agreement penalises an offset
    assert qa.icc_a1(x, x + 0.1 * np.sin(x)) > 0.99


def test_assess_flags_each_failure():
    good = qa.QARecord(
        -0.5,
        -0.7,
        {"min": 0.6, "max": 1.4, "folding_percent": 0.0, "sdlogj": 0.1},
        dice_before=0.9,
        dice_after=0.97,
    )
    assert qa.assess(good).passed
    bad = qa.QARecord(
        -0.7,
        -0.5,
        {"min": -0.1, "max": 1.4, "folding_percent": 0.2, "sdlogj": 0.1},
        dice_before=0.95,
        dice_after=0.80,
    )
    bad.tre_before = {"mean": 3.0}
    bad.tre = {"mean": 4.5}
    reasons = " ".join(qa.assess(bad).reasons)
    for word in (
        "folding",
        "metric did not improve",
        "Dice dropped",
        "below",
        "moved apart",
        "above",
    ):
        assert word in reasons

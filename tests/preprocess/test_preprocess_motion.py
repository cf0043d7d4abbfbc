"""Motion model: B-spline representation, PCA on synthetic fields, phase estimate on 4D-CT."""

import json

import numpy as np
import SimpleITK as sitk

from models.preprocess.motion import BSplineField, MotionModel, estimate_scores, si_amplitude
from models.preprocess.qa import icc_a1


def _ref(shape=(16, 24, 24), spacing=(6.0, 6.0, 8.0)):
    img = sitk.Image([shape[2], shape[1], shape[0]], sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin((-70.0, -70.0, -60.0))
    return img


def _smooth_field(ref, amp=10.0):
    z, y, x = np.meshgrid(*[np.arange(n) for n in ref.GetSize()[::-1]], indexing="ij")
    g = np.exp(-(((x - 12) / 7.0) ** 2 + ((y - 12) / 7.0) ** 2 + ((z - 8) / 5.0) ** 2))
    return np.stack([0 * g, -amp / 3 * g, -amp * g], axis=-1)


def test_bspline_fit_reproduces_a_smooth_field_and_evaluates_anywhere():
    ref = _ref()
    field = _smooth_field(ref)
    bs = BSplineField.fit(field, ref, spacing_mm=10.0)
    assert np.abs(bs.dense(ref) - field).max() < 0.5  # mm, the bound
    idx = [(3, 5, 7), (20, 11, 9)]
    pts = np.array([ref.TransformIndexToPhysicalPoint(i) for i in idx])
    dense = bs.dense(ref)
    at = np.array([dense[k, j, i] for i, j, k in idx])
    assert np.allclose(bs.evaluate(pts), at, atol=1e-9)


def test_pca_recovers_a_one_parameter_breathing_motion():
    ref = _ref()
    g = _smooth_field(ref, 1.0)
    weights = np.cos(np.pi * np.arange(10) / 10 - 0.4) ** 4
    model = MotionModel.fit([w * 12.0 * g for w in weights], n_components=2)
    assert model.explained[0] > 0.999
    signal = model.signal()
    assert abs(np.corrcoef(signal, weights)[0, 1]) > 0.999
    assert np.corrcoef(signal, weights)[0, 1] > 0  # positive score = inspiration
    held = 0.37 * 12.0 * g
    assert np.abs(model.field(model.project(held)) - held).max() < 1e-6


def test_phase_estimate_and_compensation_on_phantom_4dct(phantom_case_dir):
    d = phantom_case_dir
    ref = sitk.ReadImage(str(d / "ct_portal.nii.gz"))
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(d / "labels.nii.gz"))) == 5
    fields = [
        sitk.GetArrayFromImage(sitk.ReadImage(str(d / f"motion_ct4d_phase{k:02d}.nii.gz")))
        for k in range(10)
    ]
    scans = [sitk.ReadImage(str(d / f"ct4d_phase{k:02d}.nii.gz")) for k in range(10)]
    assert json.loads((d / "case.json").read_text())["four_dct"]
    true_si, est_si, max_err = [], [], []
    for k in range(10):  # leave-one-phase-out: the model never saw the phase it estimates
        model = MotionModel.fit([f for j, f in enumerate(fields) if j != k])
        s = estimate_scores(model, scans[k], ref)  # whole image: the dome's edge carries the phase
        pc = np.where(liver, np.abs(model.components[0][..., 2]), -1.0)
        idx = np.unravel_index(int(np.argmax(pc)), pc.shape)
        true_si.append(float(fields[k][idx][2]))
        est_si.append(si_amplitude(model, s, liver))
        max_err.append(float(np.linalg.norm(model.field(s) - fields[k], axis=-1)[liver].max()))
    icc = icc_a1(np.array(true_si), np.array(est_si))
    assert icc >= 0.95, (icc, true_si, est_si)  # measured at 64^2: 0.998
    assert max(max_err) <= 2.0, max_err  # mm; measured at 64^2: 0.37

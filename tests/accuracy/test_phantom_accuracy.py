"""The harness on the phantom: perfect truth, the SSIM ceiling, a missed nodule, a hallucinated
shunt, a 2 mm displacement, and the report's files."""

import json

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from benchmarks.accuracy.cohort import load_truth
from edge_runtime import metrics as M


def _rows(df, method):
    return df[df.method == method]


def test_truth_against_itself_is_perfect(report) -> None:
    pc = _rows(report.per_case, "truth")
    assert len(pc) == 2
    assert np.allclose(pc.ssim, 1.0, atol=1e-12)
    assert np.allclose(pc.ssim_liver_masked, 1.0, atol=1e-12)
    assert np.allclose(pc.ssim_liver_masked_2d, 1.0, atol=1e-12)
    assert np.allclose(pc.ms_ssim_body, 1.0, atol=1e-12)
    assert (pc.mae == 0).all()
    assert np.isinf(pc.psnr).all()
    assert (pc.ffbd < 1e-6).all()
    assert (pc.vessel_cldice == 1.0).all() and (pc.betti0_error == 0).all()
    assert (pc.shunt_hallucinations == 0).all() and (pc.control_hallucinations == 0).all()
    les = _rows(report.lesions, "truth")
    real = les[(les.kind == "lesion") & (les.visible_in_truth == True)]  # noqa: E712
    assert len(real) > 0 and (real.detected == True).all()  # noqa: E712
    reg = _rows(report.regions, "truth").dropna(subset=["hd95_mm"])
    assert len(reg) >= 6 and np.allclose(reg.hd95_mm, 0.0, atol=1e-9)


def test_independent_render_gives_the_ssim_ceiling(report, cohort_dir) -> None:
    pc = _rows(report.per_case, "real1")
    for _, r in pc.iterrows():
        case = json.loads((cohort_dir / r["case"] / "case.json").read_text())
        assert r["ssim"] == pytest.approx(case["ssim_ceiling"]["t2"], abs=1e-6)
        assert r["ssim"] < 0.99
    assert (pc.vessel_cldice > 0.6).all()


def test_ssim_equals_skimage_on_phantom_images(cohort_dir, prediction_dirs) -> None:
    dirs, _ = prediction_dirs
    case = load_truth(cohort_dir).case("case-0000")
    from benchmarks.accuracy.cohort import read_volume

    truth = case.truth("t2")
    other = read_volume(dirs["real1"] / "case-0000" / "mr_t2.nii.gz")[0].astype(np.float64)
    r = float(truth.max() - truth.min())
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=r)
    k = int(np.argmax(case.liver.sum(axis=(1, 2))))
    assert (
        abs(M.ssim(other[k], truth[k], r) - structural_similarity(other[k], truth[k], **kw)) < 1e-6
    )
    assert abs(M.ssim(other, truth, r) - structural_similarity(other, truth, **kw)) < 1e-6


def test_erased_satellite_is_a_miss_below_3mm(report) -> None:
    e = report.edits
    les = _rows(report.lesions, "erased")
    row = les[(les.case == e.erased_case) & (les.id == e.erased_id)].iloc[0]
    assert row.size_bin == "<3mm" and bool(row.visible_in_truth) and not bool(row.detected)
    truth_row = _rows(report.lesions, "truth")
    truth_row = truth_row[(truth_row.case == e.erased_case) & (truth_row.id == e.erased_id)].iloc[0]
    assert bool(truth_row.detected)
    det = report.summary["results"]["erased"]["lesion_detection"]["<3mm"]
    ref = report.summary["results"]["truth"]["lesion_detection"]["<3mm"]
    assert (
        det["detected"] == ref["detected"] - 1
        and det["visible_in_truth"] == ref["visible_in_truth"]
    )


def test_lesion_painted_into_a_shunt_is_a_hallucination(report) -> None:
    e = report.edits
    les = _rows(report.lesions, "painted")
    row = les[(les.case == e.painted_case) & (les.id == e.painted_id)].iloc[0]
    assert row.kind == "shunt" and bool(row.hallucinated)
    h = report.summary["results"]["painted"]["hallucination"]["shunts"]
    assert h["hallucinated"] == 1 and h["false_positive_rate"] == pytest.approx(1 / h["regions"])
    assert report.summary["results"]["truth"]["hallucination"]["shunts"]["hallucinated"] == 0
    assert report.summary["results"]["real1"]["hallucination"]["shunts"]["hallucinated"] == 0


def test_2mm_shift_shows_about_2mm_per_region(report) -> None:
    reg = _rows(report.regions, "shifted").dropna(subset=["hd95_mm"])
    well = reg[reg.coverage >= 0.2]
    assert {"liver", "body_wall", "vessels"} <= set(well.region)
    assert well.hd95_mm.median() == pytest.approx(2.0, abs=0.4)
    for region in ("liver", "body_wall", "vessels"):
        v = well[well.region == region].hd95_mm
        assert ((v > 1.4) & (v < 3.0)).all(), (region, v.tolist())


def test_report_files_and_names(report) -> None:
    s = report.summary
    assert s["provenance"]["commit"] is not None or s["provenance"]["command"]
    assert s["reference_method"] == "truth" and s["sequences"] == ["t2"]
    assert {p.split("/")[-1] for p in s["figures"]} >= {"box_plots.png", "region_error_heatmap.png"}
    assert any("worst_real1" in p for p in s["figures"])
    for p in s["figures"]:
        assert (report.out / p).stat().st_size > 1000
    ni = [c for c in s["comparisons"] if c["metric"] == "ssim" and c["b"] == "real1"]
    assert ni and ni[0]["noninferiority_margin"] == 0.01 and ni[0]["noninferior"] is False
    text = (report.out / "summary.json").read_text() + (report.out / "per_case.csv").read_text()
    assert "FID" not in text and "Frechet filter-bank distance" in text


def test_liver_masked_ssim_has_its_own_noninferiority_verdict(report) -> None:
    """A prediction that is the truth inside the liver and another realisation outside it is
    non-inferior on the liver-masked SSIM, in 3D and slice by slice, and not on the whole-image
    SSIM: the verdicts are separate tests, each with the margin."""
    s = report.summary
    assert s["noninferiority_metrics"] == ["ssim", "ssim_liver_masked", "ssim_liver_masked_2d"]
    verdict = {
        c["metric"]: c
        for c in s["comparisons"]
        if c["b"] == "outside" and c["metric"] in s["noninferiority_metrics"]
    }
    masked, whole = verdict["ssim_liver_masked"], verdict["ssim"]
    assert masked["noninferiority_margin"] == whole["noninferiority_margin"] == 0.01
    assert masked["mean_diff"] == pytest.approx(0.0, abs=1e-12) and masked["noninferior"] is True
    planar = verdict["ssim_liver_masked_2d"]
    assert planar["mean_diff"] == pytest.approx(0.0, abs=1e-12) and planar["noninferior"] is True
    assert whole["mean_diff"] < -0.01 and whole["noninferior"] is False


def test_lesion_typing_refuses_fewer_patients_than_folds(report) -> None:
    """Typing is cross-validated by patient: this 2-patient cohort cannot make 5 folds, and the
    summary says so instead of scoring lesions of a patient the classifier was trained on.
    (The by-patient protocol itself is tested in test_lesion_typing.py.)"""
    typing = report.summary["lesion_typing"]
    assert typing["status"].startswith("not evaluable"), typing
    assert "by patient" in typing["status"] and "have 2" in typing["status"]

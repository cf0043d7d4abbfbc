"""Compare page: two packages (or one twice) on the demo case; metrics checked independently."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from apphelpers import open_demo, open_page

from edge_runtime import metrics
from edge_runtime.io import read_image
from edge_runtime.synthesizer import Synthesizer

PAGE = "pages/2_Compare.py"
FULL = "aphidiff-tiny-t2-fp32-ddim50"


def plotly_array(z) -> np.ndarray:
    """A plotly JSON array: a list, or the typed-array form {"dtype", "bdata", "shape"}."""
    if isinstance(z, dict):
        import base64

        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])
    return np.asarray(z, dtype=float)


def table(at) -> dict[str, dict[str, str]]:
    df = at.dataframe[0].value
    return {col: df[col].to_dict() for col in df.columns}


def test_one_package_compared_with_itself(app_env, phantom_case, edge_package) -> None:
    at = open_demo(open_page(PAGE))
    assert "Only one model package is installed" in at.info[0].value
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    t = table(at)
    assert t["A vs B"]["SSIM"] == "1.0000"
    assert t["A vs B"]["PSNR (dB)"] == "inf (identical)"
    assert t["A vs B"]["vessel clDice"] == "1.0000"
    # A vs the phantom's true T2 (reference MRI), recomputed here from the files on disk.
    ct = read_image(phantom_case / "ct_portal.nii.gz")
    truth = read_image(phantom_case / "mr_t2_ctphase.nii.gz").voxels
    liver = read_image(phantom_case / "labels.nii.gz").voxels == 5
    pred = Synthesizer(edge_package, provider="cpu").run(ct, sequence="t2", seed=0).image.voxels
    body = ct.voxels > -500
    rng = float(np.ptp(truth[body]))
    ssim = float(np.mean(metrics.slice_ssim(pred, truth, rng, liver.any(axis=(1, 2)))))
    psnr = metrics.psnr(pred, truth, rng, body)
    assert float(t["A vs reference MRI"]["SSIM"]) == pytest.approx(ssim, abs=1e-4)
    assert float(t["A vs reference MRI"]["PSNR (dB)"]) == pytest.approx(psnr, abs=1e-3)
    assert 0 < ssim < 0.99  # a model, not a copy of the truth
    lesion_ref = float(t["A vs reference MRI"]["lesion |CNR|, reference"])
    assert lesion_ref > 1  # the true MRI shows its lesions
    # Plotly: difference heat map, linked slices, 3D anatomy with liver, vessels and lesions.
    charts = at.get("plotly_chart")
    assert len(charts) == 3

    fig3d = json.loads(charts[2].proto.spec)
    assert sorted(tr["name"] for tr in fig3d["data"]) == ["lesions", "liver", "vessels"]
    heat = json.loads(charts[0].proto.spec)["data"][0]
    assert heat["type"] == "heatmap" and np.allclose(plotly_array(heat["z"]), 0)


@pytest.mark.slow  # the full model's 50 sampler steps: ~40 s on 2 shared cores
def test_compressed_vs_full(app_env, monkeypatch, edge_package) -> None:
    full = edge_package.parent / FULL
    if not (full / "manifest.json").is_file():
        pytest.skip(f"no full-model package {full}")
    monkeypatch.setenv("HIDIFF_PACKAGES", str(edge_package.parent))
    at = open_demo(open_page(PAGE))
    assert not at.info or "Only one" not in at.info[0].value
    assert at.selectbox(key="cmp_b").value.endswith(FULL)  # most steps = the full model
    assert at.selectbox(key="cmp_a").value != at.selectbox(key="cmp_b").value
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    t = table(at)
    ssim = float(t["A vs B"]["SSIM"])
    psnr = float(t["A vs B"]["PSNR (dB)"])
    assert 0 < ssim < 1 and math.isfinite(psnr)
    speed = float(next(m.value for m in at.metric if m.label == "Speed-up A vs B").rstrip("x"))
    assert speed > 2  # fewer sampler steps must show
    a, b = at.session_state["comparison"]
    assert a.result.stats.steps < b.result.stats.steps

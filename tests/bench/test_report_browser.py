"""Slow: the whole report path on real inputs, rendered in headless Chromium with no network.

A small phantom cohort is rendered, two prediction folders are judged by the real accuracy
harness (a copy of the truth, and the truth with Gaussian noise: a real degradation), and the
report is built from that harness output, the device record and a ledger with a failed stage.
Debian's Chromium, driven by Playwright in an offline browser context, loads the single HTML
file from disk; the test waits until Plotly has drawn every figure (its `main-svg` and the
traces' paths inside every figure div: drawing is asynchronous, and a screenshot taken at
`load` could precede it), then reads the DOM, the images, the failed row's colour, and the
pixels of a screenshot of the first figure.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import SimpleITK as sitk

from benchmarks.report.build import build_report
from benchmarks.stats import verdict_text

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# True once Plotly has drawn the traces (bars, boxes, waterfall) of every figure div named.
DRAWN_JS = """ids => ids.every(id => {
    const gd = document.getElementById(id);
    return gd && gd._fullLayout && gd.querySelector('.main-svg')
        && gd.querySelectorAll('.main-svg g.trace path').length > 0;
})"""
PLOTLY_BLUE = np.array([0x63, 0x6E, 0xFA]) / 255.0


def _noisy_copy(src: Path, dst: Path, sd_fraction: float, seed: int) -> None:
    img = sitk.ReadImage(str(src))
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    if sd_fraction:
        rng = np.random.default_rng(seed)
        arr = arr + rng.normal(0.0, sd_fraction * float(np.ptp(arr)), arr.shape).astype(np.float32)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    dst.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(out, str(dst))


@pytest.fixture(scope="module")
def accuracy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmarks.accuracy.run import run_accuracy
    from models.phantom import write_cohort

    root = tmp_path_factory.mktemp("acc")
    truth = root / "truth"
    write_cohort(2, 7, truth, grid=128, slices=24, preview=False)
    preds = {"full": root / "full", "edge": root / "edge"}
    for i, case in enumerate(sorted(p for p in truth.iterdir() if p.name.startswith("case-"))):
        src = case / "mr_t2_ctphase.nii.gz"
        _noisy_copy(src, preds["full"] / case.name / "mr_t2.nii.gz", 0.01, i)
        _noisy_copy(src, preds["edge"] / case.name / "mr_t2.nii.gz", 0.03, 100 + i)
    out = root / "accuracy"
    run_accuracy(preds, truth, out, sequences=["t2"], worst=1)
    return out


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")
def test_report_renders_offline_with_the_harness_verdicts(
    accuracy_dir: Path, device_record_path: Path, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    ledger = tmp_path / "ledger.json"
    stages = [
        {"stage": "teacher", "package_mb": 2.4, "status": "ok", "reason": None},
        {"stage": "int8 static", "package_mb": 0.7, "status": "failed", "reason": "SSIM drop"},
        {"stage": "int8 dynamic", "package_mb": 0.8, "status": "ok", "reason": None},
    ]
    ledger.write_text(json.dumps({"stages": stages}))
    out = tmp_path / "report"
    made = build_report(device_record_path, out, accuracy_dir, ledger)
    summary = json.loads((accuracy_dir / "summary.json").read_text())
    md = (out / "summary.md").read_text()

    # The verdicts are the harness's own records, word for word.
    comps = [c for c in summary["comparisons"] if c["status"] == "ok"]
    assert comps and any(c["noninferior"] is not None for c in comps)
    for c in comps:
        assert verdict_text(c) in md
        assert f"{c['mean_diff']:.4g}" in md
    assert "fig-accuracy-box" in made["plotly_divs"]
    assert any(p.startswith("accuracy_worst_") for p in made["pngs"])
    assert "accuracy_box_plots.png" in made["pngs"]

    page_uri = (out / "report.html").as_uri()
    fetched: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(offline=True, viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.on("request", lambda r: fetched.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(page_uri, wait_until="load", timeout=120_000)
        page.wait_for_function(DRAWN_JS, arg=made["plotly_divs"], timeout=120_000)

        for div in made["plotly_divs"]:
            assert "js-plotly-plot" in page.eval_on_selector(f"#{div}", "e => e.className")
        images = page.eval_on_selector_all(
            "figure img", "els => els.map(e => e.complete && e.naturalWidth > 0)"
        )
        assert images and all(images)
        assert len(images) == len([p for p in made["pngs"] if p.startswith("accuracy_")])
        red = page.eval_on_selector("tr.failed td", "e => getComputedStyle(e).color")
        assert red == "rgb(176, 0, 0)"
        assert "int8 static" in page.inner_text("tr.failed")

        figure = page.locator("#fig-latency")
        figure.scroll_into_view_if_needed()
        shot = tmp_path / "latency.png"
        figure.screenshot(path=str(shot))
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        browser.close()

    assert not errors, errors
    assert not [u for u in fetched if not u.startswith(("file:", "data:"))], fetched
    pixels = mpimg.imread(shot)[..., :3]
    assert float(pixels.std()) > 0.05  # not a blank figure
    # Plotly's first bar colour (#636efa) is on screen: the bars are drawn, not just the axes.
    blue = np.all(np.abs(pixels - PLOTLY_BLUE) < 0.03, axis=-1)
    assert blue.sum() > 500, blue.sum()

"""Slow: the whole report path on real inputs, rendered in headless Chromium with no network.

A small phantom cohort is rendered, two prediction folders are judged by the real accuracy
harness (a copy of the truth, and the truth with Gaussian noise: a real degradation), and the
report is built from that harness output, the device record and a ledger. Chromium then loads
the single HTML file from disk with networking off; the test reads the rendered DOM (Plotly
adds `js-plotly-plot` and draws `main-svg` only when its inlined bundle ran) and a screenshot.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import SimpleITK as sitk

from benchmarks.report.build import build_report
from benchmarks.report.tables import verdict_text

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=15000",
]


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
    ledger = tmp_path / "ledger.json"
    ledger.write_text(
        json.dumps({"stages": [{"stage": "teacher", "mib": 2.4}, {"stage": "int8", "mib": 0.7}]})
    )
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

    page = out / "report.html"
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    for div in made["plotly_divs"]:
        start = dom.index(f'id="{div}"')
        tag = dom[dom.rindex("<", 0, start) : dom.index(">", start)]
        assert "js-plotly-plot" in tag, f"{div} was not rendered by plotly"
    assert dom.count('class="main-svg"') >= len(made["plotly_divs"])
    assert dom.count('<figure><img alt="') == len(
        [p for p in made["pngs"] if p.startswith("accuracy_")]
    )

    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
        capture_output=True,
        timeout=180,
        check=True,
    )
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    assert float(pixels.std()) > 0.05  # not a blank page
    # Plotly's default bar colour (#636efa) is on screen: the first figure is drawn.
    blue = np.all(np.abs(pixels - np.array([0x63, 0x6E, 0xFA]) / 255.0) < 0.03, axis=-1)
    assert blue.sum() > 500

"""`hidiff bench report` on a real device record: files, offline HTML, tables, refusals."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.report.build import build_report
from edge_runtime.errors import HidiffError


def _stage(name: str, mb: float | None, lat: float, ssim: float, **extra: object) -> dict:
    """A stage as the compression pipeline writes it (issue 8's ledger fields)."""
    return {
        "stage": name,
        "params": 5_000_000,
        "gflops_per_slice": 40.0,
        "sampler_steps": 50,
        "package_mb": mb,
        "cpu_latency_s_per_slice": lat,
        "peak_rss_mib": 900.0,
        "masked_ssim": ssim,
        "psnr_vs_teacher": None,
        "status": "ok",
        "reason": None,
    } | extra


LEDGER = {
    "stages": [
        _stage("teacher", None, 48.0, 0.81),
        _stage("export fp32", 20.0, 45.0, 0.81),
        _stage("prune", 9.0, 20.0, 0.80, params=2_100_000),
        _stage(
            "int8 static",
            2.6,
            3.0,
            0.62,
            status="failed",
            reason="masked SSIM 0.62 < 0.78 acceptance",
        ),
        _stage("distil 4 steps", 9.0, 1.9, 0.79, sampler_steps=4),
        _stage("int8 dynamic", 2.5, 0.45, 0.79, sampler_steps=4),
    ],
    "provenance": {"date": "2026-11-25", "commit": "abc1234"},
}


@pytest.fixture(scope="module")
def built(device_record_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    ledger = tmp_path_factory.mktemp("ledger") / "ledger.json"
    ledger.write_text(json.dumps(LEDGER))
    out = tmp_path_factory.mktemp("rep") / "report"
    made = build_report(device_record_path, out, ledger_path=ledger)
    return out, made


def test_files_and_offline_html(built: tuple[Path, dict]) -> None:
    out, made = built
    page = (out / "report.html").read_text()
    # Plotly's own bundle is inlined; no script is fetched from anywhere.
    assert "plotly.js v" in page or "Plotly" in page
    assert not re.search(r"<script[^>]+src=", page)
    assert made["plotly_divs"] == ["fig-latency", "fig-memory_size", "fig-ledger"]
    for div in made["plotly_divs"]:
        assert f'id="{div}"' in page
    for png in ("latency.png", "memory_size.png", "ledger_waterfall.png"):
        data = (out / "figures" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_tables_carry_the_records_numbers(
    built: tuple[Path, dict], device_record_path: Path
) -> None:
    out, _ = built
    rec = json.loads(device_record_path.read_text())
    md = (out / "summary.md").read_text()
    for r in rec["results"]:
        if r["status"] == "ok":
            assert f"{r['latency_slice_s']['p50'] * 1e3:.4g}" in md
    assert "edge-2 fp32" in md and "full-8 fp32" in md  # the ratio rows
    assert "teacher" in md and "int8 dynamic" in md  # the ledger


def test_headline_states_edge_vs_full(built: tuple[Path, dict], device_record_path: Path) -> None:
    out, _ = built
    rec = json.loads(device_record_path.read_text())
    md = (out / "summary.md").read_text()
    head = md.split("## Headline", 1)[1].split("##", 1)[0]
    x = next(r for r in rec["ratios"] if r["against"] == "package" and r["batch"] == 1)
    assert f"{x['speedup_p50']:.3g}x faster" in head
    assert f"({x['size_ratio']:.3g}x)" in head and "peak RSS" in head
    assert "no non-inferiority verdict" in head  # no accuracy given


def test_failed_ledger_stage_is_red_with_its_reason(built: tuple[Path, dict]) -> None:
    out, made = built
    page = (out / "report.html").read_text()
    row = re.search(r'<tr class="failed">(.*?)</tr>', page)
    assert row and "int8 static" in row.group(1) and "0.62 &lt; 0.78" in row.group(1)
    assert page.count('<tr class="failed">') == 1
    md = (out / "summary.md").read_text()
    assert "**FAILED**" in md and "masked SSIM 0.62 < 0.78 acceptance" in md
    assert any("int8 static failed: masked SSIM 0.62" in n for n in made["notes"])
    # The waterfall chains the kept stages; the failed one is a red marker with its reason.
    assert "int8 static failed: masked SSIM 0.62" in page
    assert "fig-ledger" in made["plotly_divs"]


def test_ledger_metrics_skip_the_failed_stage(tmp_path: Path) -> None:
    from benchmarks.report.inputs import read_ledger

    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(LEDGER))
    led = read_ledger(path)
    assert [s["stage"] for s in led.kept] == [
        "teacher",
        "export fp32",
        "prune",
        "distil 4 steps",
        "int8 dynamic",
    ]
    assert "package_mb" in led.metrics  # null for the teacher, numeric for the rest
    assert "psnr_vs_teacher" not in led.metrics  # null everywhere
    assert "masked_ssim" in led.metrics and "cpu_latency_s_per_slice" in led.metrics


def test_extrapolated_latencies_are_marked(extrapolated_record_path: Path, tmp_path: Path) -> None:
    made = build_report(extrapolated_record_path, tmp_path / "r")
    md = (tmp_path / "r" / "summary.md").read_text()
    assert "extrapolated from 5 timed steps" in md  # the device table's timing column
    assert "(extrapolated from timed steps)" in md.split("## Headline", 1)[1]
    assert sum("extrapolated from 5 timed denoiser steps" in n for n in made["notes"]) == 3


def test_missing_inputs_are_noted_not_faked(built: tuple[Path, dict]) -> None:
    out, made = built
    notes = " ".join(made["notes"])
    assert "accuracy: not given" in notes
    assert "torch reference: not asked" in notes
    md = (out / "summary.md").read_text()
    assert "Accuracy of compressed vs full" not in md
    assert "accuracy: not given" in md


def test_unmeasured_configurations_are_noted(device_record_path: Path, tmp_path: Path) -> None:
    rec = json.loads(device_record_path.read_text())
    keep = ("package", "package_name", "provider_asked", "precision_asked", "grid", "batch")
    r = {k: rec["results"][-1][k] for k in (*keep, "repeats", "warmup")}
    r |= {"status": "skipped", "reason": "graphs are fixed to batch 8"}
    rec["results"][-1] = r
    rec["ratios"] = [
        x for x in rec["ratios"] if not (x["grid"] == r["grid"] and x["batch"] == r["batch"])
    ]
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(rec))
    made = build_report(path, tmp_path / "r")
    assert any("skipped (graphs are fixed to batch 8)" in n for n in made["notes"])


def test_refusals(tmp_path: Path, device_record_path: Path) -> None:
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(HidiffError, match="hidiff-bench-device/1"):
        build_report(wrong, tmp_path / "a")
    broken = json.loads(device_record_path.read_text())
    del broken["results"][0]["batch"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    with pytest.raises(HidiffError, match="results/0"):
        build_report(bad, tmp_path / "b")
    ledger = tmp_path / "ledger.json"
    ledger.write_text(json.dumps({"stages": [{"size": 1}]}))
    with pytest.raises(HidiffError, match="stage 0"):
        build_report(device_record_path, tmp_path / "c", ledger_path=ledger)
    with pytest.raises(HidiffError, match="not a folder"):
        build_report(device_record_path, tmp_path / "d", accuracy_dir=tmp_path / "nope")
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_cli_writes_and_refuses_to_overwrite(tmp_path: Path, device_record_path: Path) -> None:
    cmd = [sys.executable, "-m", "edge_runtime.cli", "bench", "report"]
    cmd += ["--device", str(device_record_path), "--out", str(tmp_path / "r")]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-1500:]
    assert (tmp_path / "r" / "report.html").is_file()
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr

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

LEDGER = {
    "stages": [
        {
            "stage": "teacher",
            "package_bytes": 2_400_000,
            "cpu_latency_s": 1.10,
            "masked_ssim": 0.81,
        },
        {"stage": "distil", "package_bytes": 2_400_000, "cpu_latency_s": 0.21, "masked_ssim": 0.80},
        {"stage": "int8", "package_bytes": 700_000, "cpu_latency_s": 0.12, "masked_ssim": 0.79},
    ]
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
    assert "teacher" in md and "int8" in md  # the ledger


def test_missing_inputs_are_noted_not_faked(built: tuple[Path, dict]) -> None:
    out, made = built
    notes = " ".join(made["notes"])
    assert "accuracy: not given" in notes
    assert "torch reference: not asked" in notes
    assert "64^2" in notes and "skipped" in notes  # the grid that could not run
    md = (out / "summary.md").read_text()
    assert "Accuracy of compressed vs full" not in md
    assert "accuracy: not given" in md


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

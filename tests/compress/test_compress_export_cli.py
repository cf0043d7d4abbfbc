"""`hidiff compress export` writes the two gated graphs and the gate's numbers (slow: a second
pair of torch.onnx exports)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from compress.cli import app


@pytest.mark.slow
def test_export_command_writes_gated_graphs(short_run: Path, cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "graphs"
    res = CliRunner().invoke(
        app, ["export", str(short_run), "--data", str(cohort), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    gates = json.loads((out / "export_gate.json").read_text())
    assert gates and all(g["passed"] for g in gates)
    for role in ("encoder", "denoiser"):
        onnx.checker.check_model(onnx.load(str(out / f"{role}.onnx")), full_check=True)


def test_export_refuses_an_old_opset(short_run: Path, cohort: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "export",
            str(short_run),
            "--data",
            str(cohort),
            "--out",
            str(tmp_path / "g"),
            "--opset",
            "17",
        ],
    )
    assert res.exit_code != 0 and "opset >= 18" in str(res.exception)
    assert not (tmp_path / "g").exists()

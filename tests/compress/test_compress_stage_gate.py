"""The per-stage accuracy gate of a compression recipe (`compress.pipeline.stage_gate`), on the
rows of two real edge-cpu ledgers: the shipped package's (pruned to 50 % of the channels) passes
with the PSNR gate on, and the 2026-12-08 prune to 40 % of the channels, which kept the liver's
masked SSIM while its PSNR vs truth fell 1.9 dB below the stage before, fails on PSNR alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compress.pipeline import stage_gate
from compress.recipe import RECIPES, GateSpec, load_recipe
from edge_runtime.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "compress" / "packages" / "aphidiff-small-t2-ddim1-edge-cpu.ledger.json"
PRUNED_40 = (
    ROOT
    / "benchmarks"
    / "results"
    / "20261208-amd-epyc-2c-compress-edge-cpu-prune06-rejected.ledger.json"
)


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["stages"]


def _first_failure(gates: GateSpec, rows: list[dict]) -> tuple[str, str] | None:
    for i, row in enumerate(rows):
        reason = stage_gate(gates, rows[:i], row)
        if reason:
            return row["stage"], reason
    return None


def test_the_shipped_ledger_passes_the_edge_cpu_gates() -> None:
    assert _first_failure(load_recipe("edge-cpu").gates, _rows(SHIPPED)) is None


def test_a_prune_that_keeps_liver_ssim_but_loses_psnr_fails_on_psnr() -> None:
    rows = _rows(PRUNED_40)
    prune = next(r for r in rows if r["stage"] == "prune")
    assert prune["prune_ratio"] == 0.6
    # the SSIM gate alone lets it through: the liver's structure held
    assert _first_failure(GateSpec(max_ssim_drop=0.03), rows) is None
    failed = _first_failure(load_recipe("edge-cpu").gates, rows)
    assert failed is not None
    stage, reason = failed
    assert stage == "prune" and "PSNR vs truth" in reason and "sampler's" in reason


def test_each_gate_names_its_metric_and_limit() -> None:
    before = {"stage": "prune", "status": "ok", "masked_ssim": 0.75, "psnr_db": 24.0}
    gates = GateSpec(max_ssim_drop=0.03, max_psnr_drop_db=1.0)
    assert stage_gate(gates, [before], {"masked_ssim": 0.73, "psnr_db": 23.5}) is None
    ssim = stage_gate(gates, [before], {"masked_ssim": 0.70, "psnr_db": 24.0})
    assert ssim is not None and "masked SSIM 0.7000" in ssim and "at most 0.03" in ssim
    psnr = stage_gate(gates, [before], {"masked_ssim": 0.75, "psnr_db": 22.0})
    assert psnr is not None and "22.00 dB is 2.00 dB below prune's" in psnr
    # a failed row is not a reference; no earlier finished stage: nothing to compare with
    assert stage_gate(gates, [{**before, "status": "failed"}], {"psnr_db": 1.0}) is None
    # unset: PSNR is not gated
    assert stage_gate(GateSpec(), [before], {"masked_ssim": 0.75, "psnr_db": 2.0}) is None


def test_a_negative_psnr_limit_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load((RECIPES / "edge-cpu.yaml").read_text())
    doc["gates"]["max_psnr_drop_db"] = -1.0
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match="max_psnr_drop_db"):
        load_recipe(path)

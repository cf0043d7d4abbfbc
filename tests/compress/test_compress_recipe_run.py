"""`hidiff compress --teacher --recipe --out` end to end on the tiny short run, with a recipe
shrunk to seconds: every stage runs for real (torch-pruning, trajectory distillation, NNCF int8,
ONNX + ORT export, the edge package), the ledger has a row per stage, the package verifies
through the runtime; a rerun resumes every finished stage; an edited recipe reruns from the
stage it changed; a quantization that misses its gate fails the recipe, with the ledger showing
where and no package written (exit 2 and one line from `hidiff compress`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from compress.cli import app
from compress.edge_package import INT8_METRIC_TOLERANCE
from compress.pipeline import run_recipe
from compress.recipe import load_recipe
from edge_runtime.package.loader import load_package
from edge_runtime.package.selfcheck import verify_package

TINY_RECIPE = Path(__file__).with_name("tiny-recipe.yaml")


def _recipe(tmp_path: Path, name: str, **quantize) -> Path:
    doc = yaml.safe_load(TINY_RECIPE.read_text())
    next(st for st in doc["stages"] if "quantize" in st)["quantize"].update(quantize)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def compressed(short_run: Path, cohort: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("recipe")
    recipe = _recipe(root, "tiny")
    out = root / "pkg"
    res = CliRunner().invoke(
        app, ["--teacher", str(short_run), "--recipe", str(recipe), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    return root, recipe, out


def test_every_stage_has_a_ledger_row_and_the_package_verifies(compressed) -> None:
    _, _, out = compressed
    ledger = json.loads((out.parent / "pkg.ledger.json").read_text())
    assert ledger["status"] == "ok"
    names = [r["stage"] for r in ledger["stages"]]
    assert names == [
        "teacher",
        "sampler",
        "prune",
        "distill-steps",
        "quantize",
        "export",
        "package",
    ]
    for row in ledger["stages"]:
        assert row["status"] == "ok" and row["key"]
        for field in ("params", "gflops_per_slice", "sampler_steps", "package_mb", "masked_ssim"):
            assert row[field] is not None, (row["stage"], field)
    teacher, sampler, prune = ledger["stages"][:3]
    # the sampler stage runs the teacher itself with the recipe's steps; prune keeps them
    assert sampler["params"] == teacher["params"] and sampler["sampler_steps"] == 3
    assert prune["sampler_steps"] == 3
    assert (
        prune["params"] < teacher["params"]
        and prune["gflops_per_slice"] < (teacher["gflops_per_slice"])
    )
    assert ledger["stages"][-1]["sampler_steps"] == 2
    # the quantized graphs' latency beside the same loop's with the stage's fp32 graphs
    quant = ledger["stages"][4]
    assert quant["cpu_latency_s_per_slice_fp32"] > 0
    assert quant["speedup_vs_fp32"] == pytest.approx(
        quant["cpu_latency_s_per_slice_fp32"] / quant["cpu_latency_s_per_slice"]
    )
    assert ledger["stages"][-1]["peak_rss_mib"] > 0
    assert ledger["teacher_hash"] == ledger["teacher"]["checkpoint_sha256"]

    package = load_package(out)
    assert package.manifest.sampler.steps == 2
    # INT8 kernels differ between CPUs: an INT8 package carries the wider metric tolerance
    assert dict(package.manifest.reference.metric_tolerance) == INT8_METRIC_TOLERANCE
    assert verify_package(package, "cpu").passed
    assert any(p.name.endswith(".ort") for p in out.rglob("*"))


def test_rerun_resumes_and_an_edit_reruns_from_the_changed_stage(
    compressed, short_run: Path, hidiff
) -> None:
    root, recipe, out = compressed
    work = out.with_name("pkg.work")
    before = json.loads((out.parent / "pkg.ledger.json").read_text())["stages"]

    again = run_recipe(short_run, load_recipe(recipe), out)
    assert [r.get("seconds") for r in again["stages"]] == [r.get("seconds") for r in before]

    # Stricter quantization gate in the same work folder, through the real `hidiff` root:
    # prune and distill-steps are reused, quantize runs again and misses the gate; one error
    # line names the stage, exit 2, no package.
    strict = _recipe(root, "strict", psnr_min_db=200.0, max_fp32_layers=0)
    failed_out = root / "pkg-strict"
    args = ["compress", "--teacher", short_run, "--recipe", strict, "--out", failed_out]
    run = hidiff(*args, "--work", work)
    assert run.code == 2
    assert "stage quantize failed" in run.text and "Traceback" not in run.text
    ledger = json.loads((root / "pkg-strict.ledger.json").read_text())
    assert ledger["status"] == "failed"
    rows = {r["stage"]: r for r in ledger["stages"]}
    earlier = {r["stage"]: r for r in before}
    for stage in ("sampler", "prune", "distill-steps"):
        assert rows[stage]["seconds"] == earlier[stage]["seconds"], stage
    assert rows["quantize"]["status"] == "failed" and "dB" in rows["quantize"]["reason"]
    assert "export" not in rows and "package" not in rows
    assert not failed_out.exists()


def test_package_ships_fp32_beside_int8_and_the_cpu_runs_fp32(compressed, short_run: Path) -> None:
    """`package.precisions: [fp32, int8]` in the same work folder: only the package stage runs
    again; the package carries both graph sets, its reference is made with the first, the CPU
    profile runs fp32 and an NPU profile's choice (int8) is still there to pick."""
    from edge_runtime.providers import PROFILES, choose_precision

    root, _, out = compressed
    doc = yaml.safe_load(TINY_RECIPE.read_text())
    next(st for st in doc["stages"] if "package" in st)["package"]["precisions"] = ["fp32", "int8"]
    path = root / "both.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    both_out = root / "pkg-both"
    ledger = run_recipe(short_run, load_recipe(path), both_out, work=out.with_name("pkg.work"))
    before = json.loads((out.parent / "pkg.ledger.json").read_text())["stages"]
    for new, old in zip(ledger["stages"][:-1], before[:-1], strict=True):
        assert new.get("seconds") == old.get("seconds"), new["stage"]
    assert ledger["stages"][-1]["precisions"] == ["fp32", "int8"]
    package = load_package(both_out)
    m = package.manifest
    assert set(m.graphs) == {"fp32", "int8"} and m.reference.precision == "fp32"
    assert "-fp32-" in m.name and "fp32 + int8" in m.description
    assert choose_precision(PROFILES["cpu"], list(m.graphs)) == "fp32"
    assert choose_precision(PROFILES["openvino"], list(m.graphs)) == "int8"
    assert verify_package(package, "cpu").passed
    # INT8 carries its own reference outputs and metrics (its encoder may break near-tied VQ
    # codes the other way, so it is not held to the fp32 output at 40 dB)
    assert all(set(c.outputs) == {"int8"} for c in m.reference.cases)
    assert m.reference.metrics_for("int8").metric_tolerance == INT8_METRIC_TOLERANCE
    int8 = verify_package(package, "cpu", "int8")
    assert int8.passed and int8.compared_with == "int8"

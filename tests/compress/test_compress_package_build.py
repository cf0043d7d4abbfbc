"""The package built from a trained run: passes `hidiff verify`, carries the run's provenance,
its reference outputs are the TORCH model's, and the runtime reproduces them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx

from compress.packaging import torch_generate
from edge_runtime import cli, metrics
from edge_runtime.package import Engine, load_package
from edge_runtime.providers import RuntimeOptions
from models.aphidiff.config import SEQUENCES
from models.training.predict import load_run


def test_built_package_passes_hidiff_verify(built_package: Path, capsys) -> None:
    try:
        cli.main(["verify", str(built_package), "-p", "cpu", "--json"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["passed"]
    assert all(c["psnr_db"] >= 60 for c in report["cases"])  # onnxruntime vs torch
    assert {c["name"] for c in report["checks"]} == {"psnr_db", "mae", "ssim"}


def test_manifest_records_the_run(built_package: Path, short_run: Path, cohort: Path) -> None:
    m = load_package(built_package).manifest
    run_cfg = json.loads((short_run / "config.json").read_text())
    weights = short_run / "weights.safetensors"
    prov = m.provenance["training_run"]
    assert prov["config"] == run_cfg
    assert prov["checkpoint_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert m.provenance["teacher_sha256"] == prov["checkpoint_sha256"]
    assert prov["checkpoint"] == "weights.safetensors" and prov["step"] == 3
    assert m.provenance["recipe"]["stages"] == ["export", "package"]
    assert all(g["passed"] and g["psnr_min_db"] == 60.0 for g in m.provenance["export_gate"])
    # task, grid and normalisation are the run's
    assert m.grid.shape == (128, 128)
    np.testing.assert_allclose(m.grid.spacing_mm, (360 / 128, 360 / 128))
    assert m.grid.slice_thickness_mm == 200 / 8
    assert m.normalisation.ct_hu_window == (-360.0, 440.0)
    assert [o.sequence for o in m.task.outputs] == ["t2"]
    assert m.task.outputs[0].sequence_index == SEQUENCES.index("t2")
    assert m.task.outputs[0].mr_range[1] == run_cfg["mr_scales"]["t2"]
    assert m.sampler.kind == "ddim" and m.sampler.steps == 4
    assert m.sampler.timesteps == (999, 749, 499, 249)
    # validation against the phantom's true MR of the held-out split
    val = m.validation["by_sequence"]["t2"]
    assert val["cases"] == ["case-0002"] and val["slices"] == 3  # --validation-slices 3
    assert all(np.isfinite(v) for v in val["metrics"].values())
    assert m.validation["dataset"]["seed"] == 2 and m.validation["dataset"]["splits"] == [
        "test",
        "val",
    ]


def test_reference_outputs_come_from_torch(built_package: Path, short_run: Path) -> None:
    pkg = load_package(built_package)
    model, _, _ = load_run(short_run)
    case = pkg.manifest.reference.cases[0]
    ct, noise = pkg.load_array(case.input), pkg.load_array(case.noise)
    shipped = pkg.load_array(case.output)
    again = torch_generate(model, "t2", ct, noise, case.seed, pkg.manifest.sampler)
    np.testing.assert_allclose(again, shipped, atol=1e-5)
    engine = Engine(pkg, "cpu", options=RuntimeOptions(cache_dir=None))
    ort_out = engine.generate(ct, noise, case.seed, case.output_name)
    assert metrics.psnr(ort_out, shipped, 2.0) >= 60.0


def test_graphs_are_clean_opset18_with_static_grid(built_package: Path) -> None:
    pkg = load_package(built_package)
    for role in ("encoder", "denoiser"):
        model = onnx.load_from_string(pkg.graph_bytes("fp32", role))
        onnx.checker.check_model(model, full_check=True)
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 18
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["hidiff.role"] == role
        assert meta["hidiff.checkpoint_sha256"] == pkg.manifest.provenance["teacher_sha256"]
        for inp in model.graph.input:
            dims = inp.type.tensor_type.shape.dim
            # batch symbolic, everything else fixed
            assert dims[0].dim_param
            assert all(d.dim_value > 0 for d in dims[1:]), inp.name


def test_package_probe_reports_the_childs_own_peak(built_package: Path) -> None:
    """The ledger's peak RSS is the fresh runtime process's, not its large parent's (Linux
    carries ru_maxrss across fork + exec: a compress run holding 3 GB once 'measured' 3.3 GB)."""
    from compress.evaluate import package_probe

    ballast = np.ones(400 * 2**20 // 8)
    ballast[::4096] = 2.0  # every page resident
    probe = package_probe(built_package, threads=1, repeats=1)
    assert 0 < probe["peak_rss_mib"] < 350, probe
    assert probe["seconds"] > 0 and ballast.sum() > 0

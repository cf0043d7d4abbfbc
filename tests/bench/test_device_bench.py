"""`hidiff bench device`: real runs on real (tiny) packages, validated against the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from benchmarks.device.run import SCHEMA_PATH, _child

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "compress/packages/aphidiff-tiny-t2-fp32"


@pytest.fixture(scope="module")
def record(device_record_path: Path) -> dict:
    return json.loads(device_record_path.read_text())  # what was written, not the in-memory one


def test_record_matches_schema(record: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(record)


def test_schema_rejects_a_result_without_latency(record: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    bad = json.loads(json.dumps(record))
    ok = next(r for r in bad["results"] if r["status"] == "ok")
    del ok["latency_slice_s"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_every_configuration_is_present(record: dict) -> None:
    got = {
        (r["package_name"], r["precision_asked"], r["grid"], r["batch"]): r
        for r in record["results"]
    }
    # full ships fp32 + fp16, edge fp32; input grids 32 (the packages') and 64; batches 1, 2
    assert len(got) == (2 + 1) * 2 * 2
    for (_name, _prec, grid, _batch), r in got.items():
        assert r["status"] == "ok", r.get("reason")
        assert r["input_grid"] == grid and r["package_grid"] == [32, 32]
        assert r["resample_s_p50"] > 0
        assert r["extrapolated_from_steps"] is None  # tiny packages: whole calls timed
        assert r["provider_used"] == "CPUExecutionProvider"
        assert len(r["timings_s"]) == 3  # repeats, warm-up excluded
        assert r["latency_batch_s"]["p50"] == pytest.approx(float(np.median(r["timings_s"])))
        assert r["latency_slice_s"]["p50"] == pytest.approx(
            r["latency_batch_s"]["p50"] / r["batch"]
        )
        assert r["latency_volume_s"]["p50"] == pytest.approx(
            r["latency_batch_s"]["p50"] * -(-48 // r["batch"])
        )
        assert r["threads"] >= 1 and r["peak_rss_mib"] > r["rss_after_load_mib"] * 0.5


def test_input_grid_is_the_package_field_of_view(bench_packages: list[Path]) -> None:
    """G x G slices cover the package's field of view: at G = the package grid the resampled
    batch is the package's own CT (inside the HU window); other G give the package grid."""
    from benchmarks.device.input_grid import InputGrid
    from benchmarks.device.worker import ct_batch
    from edge_runtime.package import load_package

    pkg = load_package(bench_packages[1])
    c = pkg.manifest.task.context_slices
    # A smooth CT (the factory package's noise would not survive any resampling).
    ramp = np.linspace(-0.8, 0.8, 32, dtype=np.float32)
    ct = np.broadcast_to(ramp[None, None, :] * ramp[:, None][None], (2, 2 * c + 1, 32, 32))
    assert ct_batch(pkg, 2, 0).shape == ct.shape
    same = InputGrid.build(pkg, ct, 32)
    np.testing.assert_allclose(same.to_model()[:, c], ct[:, c], atol=1e-4)
    for size in (16, 64):
        io = InputGrid.build(pkg, ct, size)
        assert io.image.voxels.shape == (2, size, size)
        x = io.to_model()
        assert x.shape == ct.shape and np.isfinite(x).all()
        assert io.to_input(x).shape == (2, size, size)
        # Same field of view: the smooth slice comes back where it was, to a few %.
        assert float(np.abs(x[:, c] - ct[:, c]).mean()) < 0.02


def test_slow_package_is_extrapolated_from_timed_steps(extrapolated_record_path: Path) -> None:
    """Above the threshold a configuration times `repeats` single steps and encoder calls and
    says so; the latency is encoder + steps x step, and the record still validates."""
    rec = json.loads(extrapolated_record_path.read_text())
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(rec, schema)
    ok = [x for x in rec["results"] if x["status"] == "ok"]
    assert len(ok) == 3  # full fp32 + fp16, edge fp32; batch 1
    for r in ok:
        assert r["extrapolated_from_steps"] == 5 and "timings_s" not in r
        assert len(r["step_timings_s"]) == len(r["encode_timings_s"]) == 5
        want = np.median(r["encode_timings_s"]) + r["sampler_steps"] * np.median(
            r["step_timings_s"]
        )
        assert r["latency_batch_s"]["p50"] == pytest.approx(want)
        assert r["denoise_s_p50"] == pytest.approx(
            r["sampler_steps"] * np.median(r["step_timings_s"])
        )
        assert r["first_call_s"] >= r["first_step_s"] > 0
    assert rec["ratios"] and all(x["extrapolated"] for x in rec["ratios"])
    bad = json.loads(json.dumps(rec))
    del next(r for r in bad["results"] if r["status"] == "ok")["step_timings_s"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_ratios_pair_packages_of_the_same_configuration(record: dict) -> None:
    pkg = [x for x in record["ratios"] if x["against"] == "package"]
    assert {(x["package"], x["grid"], x["batch"]) for x in pkg} == {
        ("edge-2 fp32", g, b) for g in (32, 64) for b in (1, 2)
    }
    res = {
        (r["package_name"], r["precision"], r["grid"], r["batch"]): r
        for r in record["results"]
        if r["status"] == "ok"
    }
    for x in pkg:
        ref = res[("full-8", "fp32", x["grid"], x["batch"])]
        edge = res[("edge-2", "fp32", x["grid"], x["batch"])]
        want = ref["latency_batch_s"]["p50"] / edge["latency_batch_s"]["p50"]
        assert x["speedup_p50"] == pytest.approx(want)
        assert x["extrapolated"] is False
    sizes = {p["name"]: p["size_bytes"] for p in record["packages"]}
    assert pkg[0]["size_ratio"] == pytest.approx(sizes["edge-2"] / sizes["full-8"])


def test_no_torch_reference_is_stated(record: dict) -> None:
    assert record["torch_reference"]["rows"] == []
    assert "not asked" in record["torch_reference"]["note"]


def test_peak_rss_is_the_childs_own(bench_packages: list[Path]) -> None:
    """A parent holding 400 MiB must not leak into the child's peak (Linux ru_maxrss would)."""
    ballast = np.ones(400 * 2**20 // 8)
    ballast[::4096] = 2.0  # touch every page so it is resident
    cfg = {
        "package": str(bench_packages[1]),
        "provider": "cpu",
        "precision": "fp32",
        "batch": 1,
        "seed": 0,
        "warmup": 0,
        "repeats": 1,
        "percentiles": [50, 95],
        "volume_slices": 48,
        "threads": 1,
        "use_cache": False,
    }
    res = _child("benchmarks.device.worker", cfg, 300)
    assert res["status"] == "ok", res
    assert res["peak_rss_mib"] < 350, res["peak_rss_mib"]
    assert ballast.sum() > 0


def test_cli_refuses_bad_input(tmp_path: Path, bench_packages: list[Path]) -> None:
    hidiff = [sys.executable, "-m", "edge_runtime.cli", "bench", "device"]
    args = ["--package", str(bench_packages[1]), "--out", str(tmp_path / "x.json")]
    bad = subprocess.run([*hidiff, *args, "--batch", "1,x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--batch" in bad.stderr
    nopkg = subprocess.run(
        [*hidiff, "--package", str(tmp_path), "--out", str(tmp_path / "y.json")],
        capture_output=True,
        text=True,
    )
    assert nopkg.returncode == 2 and "manifest.json" in nopkg.stderr
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="committed package not present")
def test_cli_on_committed_package_with_torch_reference(tmp_path: Path) -> None:
    """The real package through the real command, with the teacher's torch row if present."""
    run = REPO / "runs/aphidiff-tiny-t2"
    out = tmp_path / "dev.json"
    cmd = [sys.executable, "-m", "edge_runtime.cli", "bench", "device", "--package", str(COMMITTED)]
    cmd += ["--batch", "1", "--repeats", "2", "--warmup", "0", "--out", str(out)]
    cmd += ["--torch-reference", str(run) if run.is_dir() else "none", "--torch-timed-steps", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads(out.read_text())
    jsonschema.validate(rec, json.loads(SCHEMA_PATH.read_text()))
    assert rec["results"][0]["status"] == "ok"
    if run.is_dir():
        row = rec["torch_reference"]["rows"][0]
        try:
            import torch  # noqa: F401
        except ImportError:
            assert row["status"] == "skipped" and "torch" in row["reason"]
        else:
            assert row["status"] == "ok" and row["extrapolated"] is True
            assert any(x["against"] == "torch" for x in rec["ratios"])


def test_torch_reference_of_a_preset_is_extrapolated_and_stated(
    bench_packages: list[Path], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from benchmarks.device.config import DeviceBenchConfig, TorchReferenceConfig
    from benchmarks.device.run import run_device_bench

    out = tmp_path / "dev.json"
    cfg = DeviceBenchConfig(repeats=1, warmup=0, batches=(1,), providers=("cpu",))
    rec = run_device_bench(
        bench_packages[1:], out, cfg, "preset:tiny", TorchReferenceConfig(timed_steps=1)
    )
    row = rec["torch_reference"]["rows"][0]
    assert row["status"] == "ok", row
    assert row["extrapolated"] is True and row["denoiser_calls_timed"] == 1
    assert "untrained" in row["run_name"] and row["grid"] == 128
    want = row["encode_s_p50"] + row["sampler"]["steps"] * row["denoise_step_s_p50"]
    assert row["latency_batch_s"]["p50"] == pytest.approx(want)
    # The package runs at 32^2, the teacher at 128^2: no ratio across grids.
    assert not [x for x in rec["ratios"] if x["against"] == "torch"]


def test_torch_row_is_skipped_with_a_reason_when_torch_is_absent() -> None:
    """`import torch` fails in the child: the row says so instead of failing the run."""
    code = (
        "import sys, runpy; sys.modules['torch'] = None; "
        "sys.argv = ['x', sys.argv[1]]; "
        "runpy.run_module('benchmarks.device.torch_reference', run_name='__main__')"
    )
    cfg = {"run": "preset:tiny", "batch": 1, "seed": 0, "volume_slices": 48, "repeats": 1}
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(cfg)], capture_output=True, text=True, check=True
    )
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row == {"status": "skipped", "reason": "torch is not installed (extra `train`)"}


@pytest.mark.parametrize(
    "path", sorted((REPO / "benchmarks/results").glob("*-device*.json")), ids=lambda p: p.name
)
def test_committed_device_records_match_the_schema(path: Path) -> None:
    rec = json.loads(path.read_text())
    jsonschema.validate(rec, json.loads(SCHEMA_PATH.read_text()))
    ok = [r for r in rec["results"] if r["status"] == "ok"]
    # medians over >= 20 runs: whole calls, or single steps and encoder calls
    assert ok and all(
        len(r["timings_s"]) >= 20
        if not r.get("extrapolated_from_steps")
        else len(r["step_timings_s"]) >= 20 and len(r["encode_timings_s"]) >= 20
        for r in ok
    )

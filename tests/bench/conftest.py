"""Fixtures for the benchmark tests: real packages from the runtime's package factory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from package_factory import PackageSpec, TinyModel, make_package


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Optimised graphs go to a temporary folder, never ~/.cache."""
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path_factory.mktemp("hidiff-cache")))


@pytest.fixture(scope="session")
def bench_packages(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A 'full' package (fp32 + fp16, 8 steps) and an 'edge' one (fp32, 2 steps), 32^2."""
    root = tmp_path_factory.mktemp("bench-pkgs")
    model = TinyModel(height=32, width=32)
    full = make_package(
        root / "full", PackageSpec(model=model, name="full-8", precisions=("fp32", "fp16"), steps=8)
    )
    edge = make_package(root / "edge", PackageSpec(model=model, name="edge-2", steps=2))
    return [full, edge]


@pytest.fixture(scope="session")
def device_record_path(
    bench_packages: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A real `run_device_bench` record of both packages: 2 input grids (32 = theirs, 64), 2 batches."""
    from benchmarks.device.config import DeviceBenchConfig
    from benchmarks.device.run import run_device_bench

    out = tmp_path_factory.mktemp("dev") / "device.json"
    cfg = DeviceBenchConfig(repeats=3, warmup=1, batches=(1, 2), grids=(32, 64), providers=("cpu",))
    run_device_bench(bench_packages, out, cfg, command=["test"])
    return out


@pytest.fixture(scope="session")
def extrapolated_record_path(
    bench_packages: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A real record in which every configuration is over the whole-call limit (set to 0 s):
    latencies extrapolated from timed single steps, as for a slow 512^2 full package."""
    from benchmarks.device.config import DeviceBenchConfig
    from benchmarks.device.run import run_device_bench

    out = tmp_path_factory.mktemp("dev-x") / "device.json"
    cfg = DeviceBenchConfig(
        repeats=5, warmup=1, batches=(1,), providers=("cpu",), extrapolate_above_s=0.0
    )
    run_device_bench(bench_packages, out, cfg, command=["test"])
    return out

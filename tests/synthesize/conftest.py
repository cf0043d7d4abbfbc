"""Fixtures of the synthesis tests: a shared small package and `hidiff` run in-process through
its real root (`edge_runtime.cli.main`: entry points, one-line errors, exit codes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from synth_helpers import PackageSpec, TinyModel, make_package

from edge_runtime import cli


@dataclass(frozen=True)
class HidiffRun:
    code: int
    out: str
    err: str


@pytest.fixture
def hidiff(capsys: pytest.CaptureFixture[str]):
    """Run `hidiff ARGS...` in-process through the real root (entry points, error contract)."""

    def run(*args: str) -> HidiffRun:
        code = 0
        try:
            cli.main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return HidiffRun(code, captured.out, captured.err)

    return run


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Optimised graphs and records go to a temporary folder, never ~/.cache."""
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path_factory.mktemp("hidiff-cache")))


@pytest.fixture(scope="session")
def package32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32x32 package (DDIM 4 steps, one T2 output), shared read-only."""
    return make_package(
        tmp_path_factory.mktemp("pkg") / "p32", PackageSpec(model=TinyModel(height=32, width=32))
    )

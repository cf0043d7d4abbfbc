"""Fixtures of the synthesis tests: a shared small package (the in-process `hidiff` runner is
in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synth_helpers import PackageSpec, TinyModel, make_package


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

"""Fixtures for the runtime tests: packages built by package_factory.py in temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from package_factory import PackageSpec, make_package


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid fp32 + fp16 package shared by tests that only read it (never modify it)."""
    return make_package(
        tmp_path_factory.mktemp("pkg") / "tiny", PackageSpec(precisions=("fp32", "fp16"))
    )


@pytest.fixture
def fresh_package(tmp_path: Path) -> Path:
    """A valid package of this test's own, free to corrupt."""
    return make_package(tmp_path / "pkg")


@pytest.fixture(autouse=True)
def private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Optimised graphs and verification records go to a temporary folder, never ~/.cache."""
    root = tmp_path_factory.mktemp("hidiff-cache")
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(root))
    return root

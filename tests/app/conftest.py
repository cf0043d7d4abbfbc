"""Fixtures of the app tests: one small phantom case, rendered once per session.

Tests may import `models` (the app may not): the case is rendered with models.phantom and
written as `hidiff phantom case` writes it, which is what the app opens.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EDGE = REPO / "compress" / "packages" / "aphidiff-tiny-t2-fp32"


@pytest.fixture(scope="session")
def phantom_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.phantom import render_case, write_case

    case = render_case(2026, grid=128, slices=16, ssim=False, keep_extras=False)
    return write_case(case, tmp_path_factory.mktemp("app") / "case-2026", preview=False)


@pytest.fixture(scope="session")
def edge_package() -> Path:
    if not (EDGE / "manifest.json").is_file():
        pytest.skip(f"the committed edge package {EDGE} is not there")
    return EDGE


@pytest.fixture
def app_env(monkeypatch, tmp_path, phantom_case, edge_package):
    """The app as `hidiff app --demo-case CASE` starts it, with one package and a fresh cache."""
    monkeypatch.setenv("HIDIFF_APP_DEMO_CASE", str(phantom_case))
    monkeypatch.setenv("HIDIFF_PACKAGES", str(edge_package))
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path

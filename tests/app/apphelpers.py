"""Driving the app in AppTest: open it from the start page, open the demo case."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

HOME = Path(__file__).resolve().parents[2] / "apps" / "Home.py"
TIMEOUT = 120  # seconds per run: synthesis and metrics on 2 shared cores, far above 3 s


def open_page(page: str | None = None) -> AppTest:
    """The app from its start page, switched to `page` (state is shared across pages)."""
    at = AppTest.from_file(str(HOME), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def open_demo(at: AppTest) -> AppTest:
    at.sidebar.button(key="open_demo").click().run()
    assert not at.exception, at.exception
    assert any("case-2026" in s.value for s in at.sidebar.success), "demo case not opened"
    return at

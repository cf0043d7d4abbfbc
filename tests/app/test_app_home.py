"""Start page: banner, links to every page, the installed packages; banner on every page."""

from __future__ import annotations

import pytest
from apphelpers import open_page

BANNER = "Synthetic images, for research only, not for diagnosis"


def test_home(app_env, edge_package) -> None:
    at = open_page()
    assert at.title[0].value == "HiDiff-Edge"
    assert any(BANNER in w.value for w in at.warning)
    captions = [c.value for c in at.caption]
    assert f"1 model package(s) installed: {edge_package.name}" in captions
    assert [r.value for r in at.sidebar.radio] == ["Demo case"]


@pytest.mark.parametrize(
    "page",
    ["pages/1_Synthesize.py", "pages/2_Compare.py", "pages/3_Device.py", "pages/4_Export.py"],
)
def test_banner_on_every_page(app_env, page) -> None:
    at = open_page(page)
    assert any(BANNER in w.value for w in at.warning)
    assert not at.exception

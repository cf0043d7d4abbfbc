"""The served app in a real browser: Debian's Chromium driven by Playwright.

AppTest does not render; this test starts `hidiff app` as a user does, opens the demo case,
synthesizes it, runs the comparison, the device checks and the export page, and keeps a
screenshot of each page under build/test-artifacts/app/ (or $HIDIFF_TEST_ARTIFACTS).
Browser downloads are impossible here: Chromium comes from apt (`apt-get install chromium`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serve import REPO, served

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BANNER = "Synthetic images, for research only, not for diagnosis"

pytestmark = pytest.mark.slow


def artefacts() -> Path:
    folder = Path(
        os.environ.get("HIDIFF_TEST_ARTIFACTS", REPO / "build" / "test-artifacts" / "app")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def demo_case(tmp_path_factory) -> Path:
    from models.phantom import render_case, write_case

    case = render_case(2026, grid=256, slices=24, ssim=False, keep_extras=False)
    return write_case(case, tmp_path_factory.mktemp("browser") / "demo-case-2026", preview=False)


def test_app_in_chromium(demo_case, tmp_path) -> None:
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    out = artefacts()
    env = {"HIDIFF_CACHE_DIR": str(tmp_path / "cache")}
    with (
        served(["--demo-case", str(demo_case)], env) as (url, _proc),
        sync_api.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1200})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.on("pageerror", lambda exc: print("page error:", exc))
        page.get_by_text(BANNER).first.wait_for()
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_role("button", name="Open demo case").click()
        sidebar.get_by_text("(phantom case)").wait_for()
        page.screenshot(path=out / "app-home.png")

        def go(name: str) -> None:
            page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
            page.get_by_role("heading", name=name).first.wait_for()
            page.get_by_text(BANNER).first.wait_for()

        go("Synthesize")
        page.get_by_role("button", name="Synthesize", exact=True).click()
        page.get_by_text("Time per slice").wait_for(timeout=180_000)
        images = page.get_by_test_id("stImage").locator("img")
        images.nth(2).wait_for()
        assert images.count() == 3  # CT | synthetic | true MRI
        assert page.get_by_text("synthetic T2WI").count() >= 1
        page.screenshot(path=out / "app-synthesize.png", full_page=True)

        go("Compare")
        page.get_by_role("button", name="Run comparison").click()
        page.get_by_text("Speed-up A vs B").wait_for(timeout=300_000)
        page.locator(".js-plotly-plot").nth(2).wait_for(timeout=120_000)
        assert page.locator(".js-plotly-plot").count() == 3  # heat map, slices, 3D
        assert page.get_by_test_id("stDataFrame").count() >= 1
        assert page.get_by_test_id("stImage").locator("img").count() == 4  # CT | A | B | A-B
        page.screenshot(path=out / "app-compare.png", full_page=True)
        page.get_by_text("Interactive views").scroll_into_view_if_needed()
        page.locator(".js-plotly-plot").nth(2).scroll_into_view_if_needed()
        page.wait_for_timeout(1500)  # let WebGL draw the 3D view
        page.screenshot(path=out / "app-compare-3d.png")

        go("Device")
        page.get_by_role("button", name="Verify").first.click()
        page.get_by_text("self-check PASSED").first.wait_for(timeout=120_000)
        page.get_by_role("button", name="Run benchmark").click()
        page.get_by_text("Latency per slice", exact=True).wait_for(timeout=120_000)
        page.screenshot(path=out / "app-device.png", full_page=True)

        go("Export")
        page.get_by_role("button", name="Prepare Slicer folder (.zip)").click()
        page.get_by_role("button", name="Slicer folder (.zip)").wait_for()
        page.get_by_text("report preview").wait_for()
        page.screenshot(path=out / "app-export.png", full_page=True)
        assert not page.get_by_test_id("stException").count()
        browser.close()
    for name in ("home", "synthesize", "compare", "compare-3d", "device", "export"):
        assert (out / f"app-{name}.png").stat().st_size > 10_000

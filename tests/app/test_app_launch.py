"""`hidiff app`: the real server, bound to 127.0.0.1, statistics off, upload limit set."""

from __future__ import annotations

import urllib.request

import psutil
import pytest
from serve import served

from apps.launch import DemoCase, app, prepare_demo, streamlit_command
from edge_runtime.errors import HidiffError


def test_command_line_settings() -> None:
    cmd = streamlit_command(8600, 512, open_browser=False)
    assert "--server.address=127.0.0.1" in cmd
    assert "--browser.gatherUsageStats=false" in cmd
    assert "--server.maxUploadSize=512" in cmd
    assert "--server.headless=true" in cmd
    assert cmd[-1].startswith("--") and any(c.endswith("Home.py") for c in cmd)


def test_bad_options_refused(tmp_path) -> None:
    with pytest.raises(HidiffError, match="not a phantom case"):
        app(port=8600, demo=False, demo_case=tmp_path, max_upload_mb=10, browser=False)
    with pytest.raises(HidiffError, match="max-upload-mb"):
        app(port=8600, demo=False, demo_case=None, max_upload_mb=0, browser=False)


def test_demo_case_folder_is_in_the_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path))
    assert DemoCase().folder().parent == tmp_path / "app"


def test_server_listens_on_loopback_only(phantom_case, tmp_path) -> None:
    env = {"HIDIFF_CACHE_DIR": str(tmp_path)}
    with served(["--demo-case", str(phantom_case), "--max-upload-mb", "300"], env) as (url, proc):
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        listening = [
            c.laddr
            for child in children
            for c in child.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
        cmdline = " ".join(children[0].cmdline())
        assert "--server.maxUploadSize=300" in cmdline
        assert "--browser.gatherUsageStats=false" in cmdline
        pids = [c.pid for c in children]
    # Stopping the launcher stops the server with it.
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def test_demo_case_prepared_once_by_the_phantom_command(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path))
    case = DemoCase(seed=3, grid=64, slices=8)
    folder = prepare_demo(case)
    assert folder == case.folder() and (folder / "ct_portal.nii.gz").is_file()
    stamp = (folder / "case.json").stat().st_mtime_ns
    assert prepare_demo(case) == folder
    assert (folder / "case.json").stat().st_mtime_ns == stamp  # not rendered again

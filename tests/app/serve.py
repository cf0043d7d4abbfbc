"""Start the app as a user does (`hidiff app`) on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher() -> list[str]:
    """`hidiff app`, exactly as a user starts it (the console script beside this Python)."""
    return [str(Path(sys.executable).with_name("hidiff")), "app"]


@contextlib.contextmanager
def served(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    cmd = [*launcher(), "--port", str(port), *args]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited early: {proc.stdout.read()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"app not up on {url} after {timeout} s")
            time.sleep(0.3)
        yield url, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

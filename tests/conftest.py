"""Shared fixtures. Helpers that render data are session-scoped so the suite stays fast."""

import os
from dataclasses import dataclass

import pytest

# Keep numerics and timing stable on CI's two cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")

from edge_runtime import cli  # after the thread setting


@dataclass(frozen=True)
class HidiffRun:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


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

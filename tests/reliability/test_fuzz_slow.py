"""The coverage-guided fuzz run (atheris), bounded in time: `make test-slow` or `pytest -m slow`.

Each reader kind is fuzzed for HIDIFF_FUZZ_SECONDS (default 60) in a child process. A crash is
copied into fuzz_crashes/ (KIND-<libFuzzer name>.bin), where test_reader_fuzz.py replays it in
every fast run from then on, and this test fails naming it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SECONDS = int(os.environ.get("HIDIFF_FUZZ_SECONDS", "60"))

pytest.importorskip("atheris", reason="atheris (the test extra) is not installed")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dicom", "nifti", "nifti_gz", "mha"])
def test_atheris_finds_no_crash(kind: str, tmp_path: Path) -> None:
    cmd = [
        sys.executable, str(HERE / "fuzz_readers.py"), kind, str(tmp_path),
        f"-max_total_time={SECONDS}", "-max_len=16384", "-rss_limit_mb=2048", "-timeout=20",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=SECONDS + 300)
    kept = []
    for crash in sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("timeout-*")):
        target = HERE / "fuzz_crashes" / f"{kind}-{crash.name}.bin"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(crash, target)
        kept.append(target.name)
    assert not kept, f"atheris found {kept}; kept in fuzz_crashes/:\n{run.stderr[-3000:]}"
    assert run.returncode == 0, run.stderr[-3000:]
    assert "DONE" in run.stderr, run.stderr[-3000:]

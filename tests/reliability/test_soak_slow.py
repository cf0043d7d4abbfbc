"""Long run: 1000 slices synthesized in one process, resident memory flat, no file left open.

A phantom portal-venous CT (128^2 x 40 slices) is read, synthesized with the shipped package
on the CPU and written as NIfTI, round after round, by one child process (soak_child.py), until
1000 slices are done (~5 min on 2 shared cores). After the warm-up (the first 120 slices: ONNX
Runtime's arenas and the caches fill) resident memory may grow by less than 5 %, and the number
of open file descriptors may not grow at all. `make test-slow` or `pytest -m slow`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_runtime.io import read_image

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parents[1] / "compress" / "packages" / "aphidiff-tiny-t2-fp32"
SLICES = 1000
WARMUP_SLICES = 120
MAX_GROWTH = 0.05


@pytest.mark.slow
def test_1000_slices_in_one_process_keep_memory_and_files_flat(tmp_path: Path) -> None:
    from models.phantom import render_case, write_case

    case = write_case(
        render_case(5, grid=128, slices=40, ssim=False, keep_extras=False),
        tmp_path / "case",
        preview=False,
    )
    ct = case / "ct_portal.nii.gz"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HIDIFF_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, str(HERE / "soak_child.py"), str(ct), str(PACKAGE), str(tmp_path),
         str(SLICES)],
        capture_output=True, text=True, env=env, timeout=3000,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    rounds = report["rounds"]
    assert rounds[-1]["slices_done"] >= SLICES
    warm = next(r for r in rounds if r["slices_done"] >= WARMUP_SLICES)
    after = [r for r in rounds if r["slices_done"] > warm["slices_done"]]
    assert len(after) >= 20, "too few rounds after the warm-up to call memory flat"
    peak = max(r["rss_kib"] for r in after)
    growth = (peak - warm["rss_kib"]) / warm["rss_kib"]
    rss_mib = [round(r["rss_kib"] / 1024) for r in rounds]
    print(f"soak: {rounds[-1]['slices_done']} slices in {report['seconds']:.0f} s; RSS MiB per "
          f"round {rss_mib}; growth after warm-up {100 * growth:.2f} %; fds "
          f"{[r['fds'] for r in rounds]}")  # fmt: skip
    assert growth < MAX_GROWTH, f"RSS grew {100 * growth:.1f} % after the warm-up: {rss_mib}"
    assert max(r["fds"] for r in after) <= warm["fds"], [r["fds"] for r in rounds]
    # the last round's output is a whole volume on the CT's grid
    assert read_image(tmp_path / "synth_mr_t2.nii.gz").same_grid(read_image(ct))

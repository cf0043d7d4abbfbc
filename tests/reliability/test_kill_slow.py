"""Faults: `hidiff synthesize` (a cohort), `hidiff prepare` and `hidiff compress` killed with
SIGKILL at random points, then run again until they finish.

Each command first runs once uninterrupted into a reference folder (its wall time T). Then, in
another folder, it is started and killed at a seeded random moment in [0.1 T, 0.6 T], up to
three times, each start resuming what the last one left. After every kill everything that looks
finished (a name without the hidden `.partial-` prefix) is re-read in full: NIfTI payloads and
gzip checksums, JSON, PNG, safetensors, ONNX graphs, the edge package's hashes. Then the command
runs to the end, and its outputs match the reference run's: synthesized images voxel for voxel,
prepared cases file for file, the compression ledger stage for stage with a package that
verifies through the runtime. About 6 minutes on 2 shared cores; `make test-slow`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from edge_runtime.io import read_image
from edge_runtime.io.nifti_scan import payload_bytes, read_nifti_header

ROOT = Path(__file__).resolve().parents[2]
HIDIFF = str(Path(sys.executable).parent / "hidiff")
PACKAGE = ROOT / "compress" / "packages" / "aphidiff-tiny-t2-fp32"
KILLS = 3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("kill-cache")
    return {**os.environ, "OMP_NUM_THREADS": "1", "HIDIFF_CACHE_DIR": str(cache)}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.phantom import write_cohort

    out = tmp_path_factory.mktemp("kill") / "cohort"
    write_cohort(3, 2, out, grid=128, slices=8, preview=False)
    return out


def visible(folder: Path) -> list[Path]:
    """What looks finished: every path under `folder` with no hidden (partial) part."""
    if not folder.exists():
        return []
    return sorted(
        p for p in folder.rglob("*") if not any(s.startswith(".") for s in p.relative_to(folder).parts)
    )  # fmt: skip


def reread(path: Path) -> None:
    """Read a finished-looking file in full; fails on a truncated or corrupt one."""
    name = path.name
    if name.endswith((".nii", ".nii.gz")):
        header = read_nifti_header(path)
        assert header is not None, path
        assert payload_bytes(path, header) == header.payload, path  # and the gzip checksum
        sitk.ReadImage(str(path))
    elif name.endswith(".json"):
        json.loads(path.read_text())
    elif name.endswith(".png"):
        from PIL import Image

        with Image.open(path) as im:
            im.load()
    elif name.endswith(".safetensors"):
        from safetensors.numpy import load_file

        assert load_file(str(path)), path
    elif name.endswith(".onnx"):
        import onnx

        onnx.checker.check_model(onnx.load(str(path)))
    elif path.is_file():
        assert path.stat().st_size > 0, path


def kill_and_resume(
    cmd: list[str], env: dict[str, str], seconds: float, check: Callable[[], None], seed: int
) -> int:
    """Start `cmd` and SIGKILL it at random moments, each start resuming; `check` after each
    kill. Returns how many kills landed before the command finished by itself."""
    rng = random.Random(seed)
    kills = 0
    for _ in range(KILLS):
        delay = rng.uniform(0.1, 0.6) * seconds  # well before the end, whatever the load
        with open(os.devnull, "wb") as null:
            proc = subprocess.Popen(cmd, env=env, stdout=null, stderr=null, cwd=ROOT)
            try:
                proc.wait(timeout=delay)
                assert proc.returncode == 0, (cmd, proc.returncode)
                break  # it finished before the kill: nothing left to interrupt
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=60)
        kills += 1
        check()
        folder = Path(cmd[cmd.index("--out") + 1]).parent
        left = [p.name for p in folder.rglob("*") if ".partial" in p.name]
        print(f"{Path(cmd[0]).name} {cmd[1]}: killed at {delay:.1f} s of {seconds:.1f} s; "
              f"{len(visible(folder))} finished paths re-read, {len(left)} partial left")  # fmt: skip
    return kills


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return time.monotonic() - t0


def finish(cmd: list[str], env: dict[str, str]) -> str:
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return " ".join((run.stdout + run.stderr).split())


def test_killed_cohort_synthesis(cohort: Path, env, tmp_path: Path) -> None:
    def cmd(out: Path) -> list[str]:
        return [HIDIFF, "synthesize", str(cohort), "--package", str(PACKAGE), "--out", str(out),
                "-p", "cpu", "--batch", "2", "--seed", "5"]  # fmt: skip

    ref, out = tmp_path / "ref" / "o", tmp_path / "out" / "o"
    seconds = timed(cmd(ref), env)
    cases = sorted(p.name for p in ref.iterdir() if p.is_dir())
    assert len(cases) == 3

    def check() -> None:
        for p in visible(out):
            reread(p)
        for case in (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
            got = read_image(case / "synth_mr_t2.nii.gz")
            assert got.same_grid(read_image(cohort / case.name / "ct_portal.nii.gz"))
            assert (case / "synthesis.json").is_file()

    assert kill_and_resume(cmd(out), env, seconds, check, seed=1) >= 1
    finish(cmd(out), env)
    for name in cases:
        np.testing.assert_array_equal(
            read_image(out / name / "synth_mr_t2.nii.gz").voxels,
            read_image(ref / name / "synth_mr_t2.nii.gz").voxels,
        )
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_killed_prepare(cohort: Path, env, tmp_path: Path) -> None:
    def cmd(out: Path) -> list[str]:
        return [HIDIFF, "prepare", "--data", str(cohort), "--out", str(out), "--method", "syn",
                "--grid", "64"]  # fmt: skip

    ref, out = tmp_path / "ref" / "o", tmp_path / "out" / "o"
    seconds = timed(cmd(ref), env)

    def check() -> None:
        for p in visible(out):
            reread(p)
        for case in (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
            names = {p.relative_to(case) for p in visible(case)}
            assert names == {p.relative_to(ref / case.name) for p in visible(ref / case.name)}

    assert kill_and_resume(cmd(out), env, seconds, check, seed=2) >= 1
    finish(cmd(out), env)
    assert [p.relative_to(out) for p in visible(out)] == [p.relative_to(ref) for p in visible(ref)]
    for p in visible(out):
        reread(p)
    for case in (p for p in ref.iterdir() if p.is_dir()):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "grid64" / "ct_portal.nii.gz")))
        b = sitk.ReadImage(str(out / case.name / "grid64" / "ct_portal.nii.gz"))
        np.testing.assert_array_equal(a, sitk.GetArrayFromImage(b))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# The compression tests' tiny recipe: every stage, seconds each.
TINY_RECIPE = Path(__file__).resolve().parents[1] / "compress" / "tiny-recipe.yaml"


def test_killed_compress(cohort: Path, env, tmp_path: Path) -> None:
    import torch

    from edge_runtime.package.loader import load_package
    from edge_runtime.package.selfcheck import verify_package
    from models.aphidiff.config import preset
    from models.training.config import TrainConfig
    from models.training.trainer import train_run

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tc = TrainConfig(
            steps=3, batch_size=2, checkpoint_every=3, threads=1, warmup_steps=1, sequences=("t2",)
        )
        train_run(preset("tiny"), tc, cohort, tmp_path / "teacher")
    finally:
        torch.set_num_threads(before)
    recipe = TINY_RECIPE

    def cmd(out: Path) -> list[str]:
        return [HIDIFF, "compress", "--teacher", str(tmp_path / "teacher"), "--recipe",
                str(recipe), "--out", str(out)]  # fmt: skip

    ref, out = tmp_path / "ref" / "pkg", tmp_path / "out" / "pkg"
    seconds = timed(cmd(ref), env)
    work = out.with_name("pkg.work")
    ledger = out.with_name("pkg.ledger.json")

    def check() -> None:
        for p in visible(out.parent):
            reread(p)
        if ledger.is_file():
            assert json.loads(ledger.read_text())["status"] in ("running", "ok")
        for stage in (p for p in work.glob("[0-9][0-9]-*") if p.is_dir()):
            assert json.loads((stage / "row.json").read_text())["status"] == "ok", stage
        if out.is_dir():  # a package that is there is whole: every hash checks
            load_package(out)

    assert kill_and_resume(cmd(out), env, seconds, check, seed=3) >= 1
    finish(cmd(out), env)
    got = json.loads(ledger.read_text())
    want = json.loads(ref.with_name("pkg.ledger.json").read_text())
    assert got["status"] == want["status"] == "ok"
    assert [r["stage"] for r in got["stages"]] == [r["stage"] for r in want["stages"]]
    assert [r["key"] for r in got["stages"]] == [r["key"] for r in want["stages"]]
    assert not [p for p in out.parent.rglob("*") if ".partial" in p.name], "debris left"
    package = load_package(out)
    assert package.manifest.sampler.steps == 2
    assert verify_package(package, "cpu").passed

"""Fixtures of the compression tests: a tiny phantom cohort, a very short `hidiff train` run on
it, and the package `hidiff compress package` builds from that run (built once per session:
the two torch.onnx exports dominate the cost)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from models.aphidiff.config import preset
from models.phantom import write_cohort
from models.training.config import TrainConfig
from models.training.trainer import train_run


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIDIFF_CACHE_DIR", str(tmp_path_factory.mktemp("hidiff-cache")))


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three patients at 128^2 x 8 slices; seed 2 puts case-0002 in the test split."""
    out = tmp_path_factory.mktemp("cohort") / "cohort"
    write_cohort(3, 2, out, grid=128, slices=8, preview=False)
    return out


@pytest.fixture(scope="session")
def short_run(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `hidiff train` run of the tiny preset (T2 only), 3 steps: an untrained but
    genuinely trained-by-the-project network with a run folder, config and checkpoints."""
    run = tmp_path_factory.mktemp("run") / "tiny"
    tc = TrainConfig(
        steps=3, batch_size=2, checkpoint_every=3, threads=1, warmup_steps=1, sequences=("t2",)
    )
    train_run(preset("tiny"), tc, cohort, run)
    return run


@pytest.fixture(scope="session")
def built_package(short_run: Path, cohort: Path, tmp_path_factory) -> Path:
    """`hidiff compress package` on the short run: gated export, torch reference, metrics."""
    from compress.cli import app

    out = tmp_path_factory.mktemp("pkg") / "aphidiff-tiny-t2-test"
    res = CliRunner().invoke(
        app,
        [
            "package",
            str(short_run),
            "--data",
            str(cohort),
            "--out",
            str(out),
            "--reference-slices",
            "2",
            "--validation-cases",
            "1",
            "--validation-slices",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out

"""Training end to end on CPU at the tiny preset: loss falls, resume is bit-exact, CLI works."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from edge_runtime.errors import HidiffError
from edge_runtime.schedules import NoiseSchedule, NoiseScheduleConfig
from models.aphidiff import runtime_glue
from models.aphidiff.config import DiffusionConfig, preset
from models.training.cli import predict, train
from models.training.config import TrainConfig
from models.training.trainer import Trainer, train_run


def _tc(**kw) -> TrainConfig:
    base = {"steps": 4, "batch_size": 2, "checkpoint_every": 2, "threads": 1, "warmup_steps": 2}
    base.update(kw)
    return TrainConfig(**base)


def _losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def test_schedule_comes_from_the_runtime():
    cfg = DiffusionConfig()
    ours = runtime_glue.alphas_cumprod(cfg)
    theirs = NoiseSchedule(NoiseScheduleConfig(beta_schedule="squaredcos_cap_v2")).alphas_cumprod
    np.testing.assert_array_equal(ours.numpy(), theirs.astype(np.float32))
    sampler = runtime_glue.make_sampler(cfg, "ddim")
    assert sampler.config.prediction_type == "v_prediction"
    assert type(sampler).__module__.startswith("edge_runtime.samplers")


def test_tiny_loss_falls(tiny_cohort, tmp_path):
    run = tmp_path / "run"
    train_run(preset("tiny"), _tc(steps=16, checkpoint_every=16, lr=2e-3), tiny_cohort, run)
    losses = _losses(run)
    assert len(losses) == 16
    assert np.mean(losses[-4:]) < 0.75 * np.mean(losses[:4]), losses


@pytest.mark.parametrize("model", ["ap-hidiff", "pix2pix"])
def test_resume_is_bit_exact(tiny_cohort, tmp_path, model):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_run(preset("tiny", model), _tc(steps=4), tiny_cohort, straight)
    train_run(preset("tiny", model), _tc(steps=2), tiny_cohort, split)
    train_run(preset("tiny", model), _tc(steps=4), tiny_cohort, split, resume=True)
    for name in ("model", "ema", "optimizer"):
        a = load_file(straight / "checkpoints/step-00000004" / f"{name}.safetensors")
        b = load_file(split / "checkpoints/step-00000004" / f"{name}.safetensors")
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after resume"
    assert _losses(straight) == _losses(split)
    # the checkpoint is safetensors + JSON only, and latest.json points at the last one
    latest = json.loads((split / "latest.json").read_text())
    assert latest == {"step": 4, "checkpoint": "checkpoints/step-00000004"}


def test_existing_run_needs_resume(tiny_cohort, tmp_path):
    run = tmp_path / "run"
    train_run(preset("tiny", "ddpm"), _tc(steps=1), tiny_cohort, run)
    with pytest.raises(HidiffError, match="--resume"):
        Trainer(preset("tiny", "ddpm"), _tc(steps=1), tiny_cohort, run)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("train")(train)
    app.command("predict")(predict)
    return app


def test_cli_train_then_predict_writes_case_folders(tiny_cohort, tmp_path):
    run, out = tmp_path / "run", tmp_path / "pred"
    runner = CliRunner()
    res = runner.invoke(
        _app(),
        [
            "train",
            "--model",
            "ap-hidiff",
            "--preset",
            "tiny",
            "--data",
            str(tiny_cohort),
            "--out",
            str(run),
            "--steps",
            "2",
            "--threads",
            "1",
            "--ablate",
            "wavelet_loss",
            "--sequence",
            "t2",
            "--warmup-steps",
            "1",
            "--ema-decay",
            "0.9",
        ],
    )
    assert res.exit_code == 0, res.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["ablation"]["wavelet_loss"] is False
    assert config["train"]["ema_decay"] == 0.9 and config["train"]["warmup_steps"] == 1
    res = runner.invoke(
        _app(),
        [
            "predict",
            "--checkpoint",
            str(run),
            "--data",
            str(tiny_cohort),
            "--out",
            str(out),
            "--steps",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    case = out / "case-0002"  # the test split
    assert sorted(p.name for p in out.iterdir()) == ["case-0002"]
    meta = json.loads((case / "prediction.json").read_text())
    assert meta["sampler"] == "ddim" and meta["steps"] == 2 and meta["sequences"] == ["t2"]
    synth = sitk.ReadImage(str(case / "synth_mr_t2.nii.gz"))
    ref = sitk.ReadImage(str(tiny_cohort / "case-0002" / "ct_portal.nii.gz"))
    assert synth.GetSize() == ref.GetSize() and synth.GetSpacing() == ref.GetSpacing()
    arr = sitk.GetArrayFromImage(synth)
    assert arr.dtype == np.float32 and np.isfinite(arr).all()


def test_cli_user_errors_are_hidiff_errors(tiny_cohort, tmp_path):
    res = CliRunner().invoke(
        _app(),
        ["train", "--data", str(tiny_cohort), "--out", str(tmp_path / "r"), "--preset", "huge"],
    )
    assert isinstance(res.exception, HidiffError) and "preset" in str(res.exception)
    res = CliRunner().invoke(
        _app(),
        ["train", "--data", str(tiny_cohort), "--out", str(tmp_path / "r"), "--ema-decay", "1"],
    )
    assert isinstance(res.exception, HidiffError) and "EMA decay" in str(res.exception)
    res = CliRunner().invoke(
        _app(),
        [
            "predict",
            "--checkpoint",
            str(tmp_path),
            "--data",
            str(tiny_cohort),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert isinstance(res.exception, HidiffError) and "config.json" in str(res.exception)


@pytest.mark.slow
def test_torchrun_ddp_two_cpu_processes(tiny_cohort, tmp_path):
    """Two processes under torchrun (gloo on CPU): DDP wraps the model, rank 0 writes."""
    import os
    import subprocess
    import sys

    run = tmp_path / "run"
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "models.training",
        "train",
        "--data",
        str(tiny_cohort),
        "--out",
        str(run),
        "--steps",
        "2",
        "--threads",
        "1",
        "--checkpoint-every",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    assert res.stdout.count("trained ap-hidiff") + res.stderr.count("trained ap-hidiff") == 1


def test_bf16_autocast_step_on_cpu(tiny_cohort, tmp_path):
    """The autocast path (what a GPU run uses) trains and checkpoints fp32 master weights."""
    run = tmp_path / "run"
    # one example, both cores: bf16 autocast is emulated on CPUs without native bf16 (slow)
    tc = _tc(steps=1, batch_size=1, threads=0, precision="bf16")
    summary = train_run(preset("tiny"), tc, tiny_cohort, run)
    assert summary["precision"] == "torch.bfloat16"
    weights = load_file(run / "weights.safetensors")
    assert all(v.dtype in (torch.float32, torch.int64) for v in weights.values())
    assert np.isfinite(_losses(run)).all()


@pytest.mark.parametrize("model", ["pix2pix", "ddpm"])
def test_baselines_predict_case_folders(tiny_cohort, tmp_path, model):
    from models.training.predict import predict_cases

    run = tmp_path / "run"
    train_run(preset("tiny", model), _tc(steps=1, sequences=("t1",)), tiny_cohort, run)
    written = predict_cases(run, tiny_cohort / "case-0002", tmp_path / "pred", steps=2)
    assert [p.name for p in written] == ["case-0002"]
    meta = json.loads((written[0] / "prediction.json").read_text())
    assert meta["model"] == model and meta["sequences"] == ["t1"]
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(written[0] / "synth_mr_t1.nii.gz")))
    assert arr.shape == (8, 128, 128) and np.isfinite(arr).all()
    # a second call skips the finished case (resumable cohort runs)
    assert predict_cases(run, tiny_cohort / "case-0002", tmp_path / "pred", steps=2) == []


def test_validation_on_the_val_split(tiny_cohort, tmp_path):
    # The same patients re-split: case-0001 becomes the val split.
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    doc = json.loads((tiny_cohort / "cohort.json").read_text())
    for c in doc["cases"]:
        (cohort / c["id"]).symlink_to(tiny_cohort / c["id"], target_is_directory=True)
        c["split"] = {"case-0001": "val", "case-0002": "test"}.get(c["id"], "train")
    (cohort / "cohort.json").write_text(json.dumps(doc))
    run = tmp_path / "run"
    tc = _tc(steps=2, val_every=2, val_slices=2, val_steps=2, sequences=("t2",))
    train_run(preset("tiny"), tc, cohort, run)
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["val_ssim"] == ""  # validated at step 2 only
    assert -1.0 <= float(rows[1]["val_ssim"]) <= 1.0 and float(rows[1]["val_mae"]) > 0

"""GPU training paths (run with `make test-gpu` on a machine with CUDA)."""

import math

import pytest
import torch

from models.aphidiff.config import preset
from models.training.config import TrainConfig
from models.training.trainer import train_run

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("model", ["ap-hidiff", "pix2pix"])
def test_gpu_autocast_training(tiny_cohort, tmp_path, model, precision):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("GPU without bf16")
    tc = TrainConfig(steps=3, batch_size=2, checkpoint_every=3, precision=precision)
    summary = train_run(preset("tiny", model), tc, tiny_cohort, tmp_path / "run")
    assert summary["device"].startswith("cuda")
    assert summary["precision"] == f"torch.{'bfloat16' if precision == 'bf16' else 'float16'}"
    assert summary["peak_memory_mib"] > 0
    assert math.isfinite(float(summary["final"]["loss"]))

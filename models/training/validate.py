"""Validation during training: SSIM of EMA-weight predictions on the cohort's "val" split.

A few slices spread evenly over the val cases' liver slices, every trained sequence, sampled
with a short DDIM run (`val_steps`); SSIM (edge_runtime.metrics, data range 2 of the [-1, 1]
normalised images) and MAE against the aligned MR. Cheap enough to run every few thousand steps,
enough to see a run improve or collapse; the real evaluation is `hidiff bench accuracy`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_runtime.metrics import ssim
from models.aphidiff.config import ModelConfig
from models.data.cases import find_cases
from models.data.slices import SliceDataset
from models.training.predict import predict_slices


def validation_set(
    data: Path, mc: ModelConfig, sequences: tuple[str, ...], slices: int
) -> tuple[SliceDataset, list[int]] | None:
    """The val split's dataset (whole slices) and the example indices to use; None if the data
    is not a cohort with a val split."""
    cohort = Path(data) / "cohort.json"
    if not cohort.is_file():
        return None
    if not any(c.get("split") == "val" for c in json.loads(cohort.read_text())["cases"]):
        return None
    cfg = dataclasses.replace(mc.data, crop=mc.data.grid)
    ds = SliceDataset(find_cases(Path(data), "val"), cfg, sequences)
    picks = np.linspace(0, len(ds.index) - 1, min(slices, len(ds.index))).round().astype(int)
    per = len(ds.sequences)
    return ds, [int(p) * per + s for p in np.unique(picks) for s in range(per)]


@torch.no_grad()
def validate(
    model: nn.Module,
    mc: ModelConfig,
    ds: SliceDataset,
    indices: list[int],
    steps: int,
    device: torch.device,
) -> dict[str, float]:
    """Mean SSIM and MAE over the chosen examples (one batch per example, seeded by index)."""
    model.eval()
    scores, errors = [], []
    for i in indices:
        ex = ds.example(i)
        ct = ex["ct"][None].to(device)
        pred = predict_slices(model, mc, ct, int(ex["sequence"]), steps, "ddim", seed=i)
        pred_np, truth = pred[0, 0].numpy(), ex["mr"][0].numpy()
        scores.append(ssim(pred_np, truth, data_range=2.0))
        errors.append(float(np.abs(pred_np - truth).mean()))
    return {"val_ssim": float(np.mean(scores)), "val_mae": float(np.mean(errors))}

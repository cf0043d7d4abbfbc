"""Predict synthetic MR volumes for case folders with a trained run (torch reference path).

Output: one folder per case, written atomically, holding `synth_mr_<seq>.nii.gz` (float32, the
CT's grid and geometry, the phantom's signal units via the run's MR scale) and
`prediction.json` (which run, sampler, steps, seed, source case, provenance). A case whose
folder already exists is skipped, so an interrupted cohort run resumes where it stopped.
Diffusion models are sampled by the runtime's own numpy sampler (`runtime_glue.sample`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn

from edge_runtime.atomic import atomic_directory, ensure_writable_dir
from edge_runtime.console import progress
from edge_runtime.errors import InputError
from edge_runtime.machine import provenance
from models.aphidiff import runtime_glue
from models.aphidiff.config import SEQUENCES, ModelConfig
from models.baselines.pix2pix import Pix2Pix
from models.data.cases import find_cases, read_case
from models.data.normalise import mr_from_unit
from models.data.slices import ct_stack
from models.training.checkpoint import latest_checkpoint, load_tensors, read_run_config
from models.training.factory import build_model

PREDICTION_FORMAT = "hidiff-prediction/1"


def load_run(run: Path) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """The run's model with its EMA weights (final weights, else the latest checkpoint's)."""
    run = Path(run)
    doc = read_run_config(run)
    mc = ModelConfig.from_dict(doc["model"])
    model = build_model(mc)
    final = run / "weights.safetensors"
    weights = load_tensors(final if final.is_file() else latest_checkpoint(run) / "ema.safetensors")
    model.load_state_dict(weights)
    return model.eval(), mc, doc


@torch.no_grad()
def predict_slices(
    model: nn.Module,
    mc: ModelConfig,
    ct: torch.Tensor,
    sequence: int,
    steps: int,
    sampler: str | None,
    seed: int,
) -> torch.Tensor:
    """Normalised CT stacks (B, C, H, W) -> normalised MR (B, 1, H, W)."""
    seq = torch.full((ct.shape[0],), sequence, dtype=torch.int64, device=ct.device)
    if isinstance(model, Pix2Pix):
        return model.generate(ct, seq).float().cpu()
    conds = model.encode(ct, seq)  # type: ignore[operator]
    shape = (ct.shape[0], 1, ct.shape[2], ct.shape[3])
    return runtime_glue.sample(
        lambda x, t: model.denoise(x, t, seq, conds),  # type: ignore[operator]
        shape,
        mc.diffusion,
        steps,
        seed,
        sampler,
        ct.device,
    )


def predict_cases(
    run: Path,
    data: Path,
    out: Path,
    steps: int | None = None,
    sampler: str | None = None,
    sequences: tuple[str, ...] | None = None,
    split: str | None = None,
    batch: int = 8,
    seed: int = 0,
) -> list[Path]:
    """Predict every case of `data` (a cohort's `split`, one case, or a folder of cases)."""
    model, mc, doc = load_run(run)
    seqs = tuple(sequences or doc["train"].get("sequences", SEQUENCES))
    scales = doc.get("mr_scales", {})
    missing = [s for s in seqs if s not in scales]
    if missing:
        raise InputError(f"{run} was not trained on sequence(s) {missing}")
    steps = steps or mc.diffusion.sample_steps
    cases = find_cases(Path(data), split)
    ensure_writable_dir(Path(out))
    written = []
    with progress() as bar:
        task = bar.add_task("predict", total=len(cases) * len(seqs))
        for case_dir in cases:
            target = Path(out) / case_dir.name
            if (target / "prediction.json").is_file():
                bar.update(task, advance=len(seqs))
                continue
            case = read_case(case_dir, mc.data.ct_phases, (), with_mr=False)
            depth = case.labels.shape[0]
            volumes = {}
            for seq in seqs:
                vol = np.zeros(case.labels.shape, np.float32)
                for z0 in range(0, depth, batch):
                    zs = range(z0, min(z0 + batch, depth))
                    ct = torch.from_numpy(np.stack([ct_stack(case, z, mc.data) for z in zs]))
                    y = predict_slices(
                        model, mc, ct, SEQUENCES.index(seq), steps, sampler, seed + z0
                    )
                    vol[z0 : z0 + len(zs)] = mr_from_unit(y[:, 0].numpy(), scales[seq])
                volumes[seq] = vol
                bar.update(task, advance=1)
            with atomic_directory(target, overwrite=True) as tmp:
                for seq, vol in volumes.items():
                    image = sitk.GetImageFromArray(vol)
                    if case.reference is not None:
                        image.CopyInformation(case.reference)
                    sitk.WriteImage(image, str(tmp / f"synth_mr_{seq}.nii.gz"), useCompression=True)
                meta = {
                    "format": PREDICTION_FORMAT,
                    "case": str(case_dir),
                    "run": str(run),
                    "model": mc.model,
                    "preset": mc.preset,
                    "sequences": list(seqs),
                    "sampler": None if mc.model == "pix2pix" else (sampler or mc.diffusion.sampler),
                    "steps": None if mc.model == "pix2pix" else steps,
                    "seed": seed,
                    "provenance": provenance(),
                }
                (tmp / "prediction.json").write_text(json.dumps(meta, indent=2) + "\n")
            written.append(target)
    return written

"""`hidiff train` and `hidiff predict` (entry points `models.training.cli:train` / `:predict`).

Both are plain functions with typer parameters, registered as single commands by the `hidiff`
root. Examples:

    hidiff train --model ap-hidiff --preset tiny --data COHORT --out runs/tiny
    hidiff train --out runs/tiny --resume --steps 400
    torchrun --nproc_per_node=4 -m models.training train --preset full --data COHORT --out runs/full
    hidiff predict --checkpoint runs/tiny --data COHORT --out preds/tiny --steps 20
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edge_runtime.console import console
from edge_runtime.errors import InputError
from models.aphidiff.config import MODEL_KINDS, PRESETS, Ablation, preset
from models.training.config import train_preset


def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder (config, checkpoints, metrics).")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Phantom cohort, case folder or folder of cases.")
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help=f"One of {', '.join(MODEL_KINDS)}.")
    ] = "ap-hidiff",
    preset_name: Annotated[
        str, typer.Option("--preset", help=f"One of {', '.join(PRESETS)}.")
    ] = "tiny",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Training steps (default: the preset's).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Slices per step per process.")
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    warmup_steps: Annotated[
        int | None, typer.Option("--warmup-steps", help="Linear LR warm-up steps.")
    ] = None,
    ema_decay: Annotated[
        float | None,
        typer.Option("--ema-decay", help="EMA decay (a short run needs a shorter memory)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of weights, examples, noise.")
    ] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="auto, fp32, bf16 or fp16.")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")] = None,
    split: Annotated[
        str, typer.Option("--split", help="Cohort split to train on ('' = all).")
    ] = "train",
    sequence: Annotated[
        list[str] | None, typer.Option("--sequence", help="MR sequence(s) (default all).")
    ] = None,
    ablate: Annotated[
        list[str] | None, typer.Option("--ablate", help="Switch an AP-HiDiff part off.")
    ] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option("--checkpoint-every", help="Steps between saves.")
    ] = None,
    gradient_checkpointing: Annotated[
        bool, typer.Option("--gradient-checkpointing", help="Recompute activations to save memory.")
    ] = False,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads (0: torch default).")] = 0,
    val_every: Annotated[
        int | None, typer.Option("--val-every", help="Validate on the val split every N steps.")
    ] = None,
) -> None:
    """Train AP-HiDiff, the plain DDPM or pix2pix on phantom case folders."""
    from models.training.trainer import train_run

    mc = preset(preset_name, model)
    if ablate:
        if model != "ap-hidiff":
            raise InputError("--ablate applies to --model ap-hidiff only")
        mc.ablation = Ablation.parse(ablate)
    tc = train_preset(preset_name)
    overrides = {
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "warmup_steps": warmup_steps,
        "ema_decay": ema_decay,
        "seed": seed,
        "precision": precision,
        "device": device,
        "checkpoint_every": checkpoint_every,
        "val_every": val_every,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(tc, key, value)
    if sequence:
        tc.sequences = tuple(sequence)
    tc.gradient_checkpointing = tc.gradient_checkpointing or gradient_checkpointing
    tc.threads = threads
    tc.__post_init__()
    if data is None:
        if not resume:
            raise InputError("--data is required (a phantom cohort or case folder)")
        from models.training.checkpoint import read_run_config

        data = Path(read_run_config(out).get("data", ""))
    summary = train_run(mc, tc, data, out, resume=resume, split=split or None)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    console.print(
        f"trained {summary['model']} to step {summary['steps']} in {summary['wall_s']} s "
        f"({summary['images_per_s']} images/s); weights in {out / 'weights.safetensors'}"
    )


def predict(
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="A run folder from hidiff train.")
    ],
    data: Annotated[Path, typer.Option("--data", help="Phantom cohort, case folder or folders.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder, one sub-folder per case.")],
    steps: Annotated[
        int | None, typer.Option("--steps", help="Sampler steps (default: the model's).")
    ] = None,
    sampler: Annotated[
        str | None, typer.Option("--sampler", help="ddpm, ddim or dpm_solver++.")
    ] = None,
    sequence: Annotated[
        list[str] | None, typer.Option("--sequence", help="MR sequence(s) to synthesise.")
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="Cohort split ('' = all); ignored for case folders.")
    ] = "test",
    batch: Annotated[int, typer.Option("--batch", help="Slices per network call.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampler's noise.")] = 0,
) -> None:
    """Write synthetic MR volumes for case folders with a trained run."""
    from models.training.predict import predict_cases

    written = predict_cases(
        checkpoint,
        data,
        out,
        steps=steps,
        sampler=sampler,
        sequences=tuple(sequence) if sequence else None,
        split=split or None,
        batch=batch,
        seed=seed,
    )
    console.print(f"wrote {len(written)} case folder(s) to {out}")

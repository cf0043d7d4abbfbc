"""Typed training configuration with per-preset defaults (each default says why)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edge_runtime.errors import InputError
from models.aphidiff.config import PRESETS, SEQUENCES

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """How to train (not what network: that is ModelConfig)."""

    # Optimiser steps; tiny: enough to see the loss fall in a test, not to learn the task.
    steps: int = 200
    # Slices per step per process; 2 keeps a tiny step well under a second on 2 CPU cores.
    batch_size: int = 2
    # AdamW learning rate: 1e-3 suits the tiny nets; bigger presets use DDPM's 2e-4 range.
    lr: float = 1e-3
    # AdamW weight decay; diffusion U-Nets are usually trained without.
    weight_decay: float = 0.0
    # Linear warm-up steps: avoids early Adam blow-ups with GroupNorm nets.
    warmup_steps: int = 10
    # Global gradient-norm clip: GAN and VQ terms spike occasionally.
    grad_clip: float = 1.0
    # EMA of the weights used for prediction (Ho et al. 2020 use 0.9999 over 800k steps;
    # shorter runs need a shorter memory).
    ema_decay: float = 0.99
    # Save a checkpoint every this many steps (and at the end).
    checkpoint_every: int = 50
    # Checkpoints kept on disk (older ones are removed).
    keep_checkpoints: int = 2
    # Validate (EMA weights, the cohort's "val" split) every this many steps; 0: never.
    val_every: int = 0
    # Validation slices (spread evenly over the val cases' liver slices) x every sequence.
    val_slices: int = 8
    # Sampler steps of validation (DDIM): enough to see trends, cheap enough to run often.
    val_steps: int = 10
    # Write a metrics row every this many steps.
    log_every: int = 1
    # "auto": fp32 on CPU, bf16 autocast on a GPU that has it, fp16 + GradScaler otherwise.
    precision: str = "auto"
    # "auto": the GPU of this process (LOCAL_RANK under torchrun) when CUDA is there, else CPU.
    device: str = "auto"
    # Seeds weights, example choice, crops, noise and timesteps: a run is reproducible.
    seed: int = 0
    # MR sequences trained (one network, the sequence is a condition).
    sequences: tuple[str, ...] = SEQUENCES
    # Recompute U-Net activations in backward: 512^2 crops fit in memory at ~30 % more time.
    gradient_checkpointing: bool = False
    # Torch threads on CPU (0: torch's default).
    threads: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; choose from {PRECISIONS}")
        bad = [s for s in self.sequences if s not in SEQUENCES]
        if bad:
            raise InputError(f"unknown sequence(s) {bad}; choose from {SEQUENCES}")
        if self.steps < 1 or self.batch_size < 1:
            raise InputError("steps and batch size must be >= 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"EMA decay must be in [0, 1), got {self.ema_decay}")
        if self.warmup_steps < 0:
            raise InputError(f"warm-up steps must be >= 0, got {self.warmup_steps}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        )


def train_preset(name: str) -> TrainConfig:
    """Training defaults for a model preset."""
    if name == "tiny":
        return TrainConfig()
    if name == "small":
        # ~20k steps of batch 8 on 128^2 crops: hours on a CPU, ~15 min on one GPU.
        return TrainConfig(
            steps=20000,
            batch_size=8,
            lr=2e-4,
            warmup_steps=500,
            ema_decay=0.999,
            checkpoint_every=1000,
            log_every=10,
            val_every=1000,
        )
    if name == "full":
        return TrainConfig(
            steps=200000,
            batch_size=8,
            lr=1e-4,
            warmup_steps=2000,
            ema_decay=0.9999,
            checkpoint_every=5000,
            log_every=50,
            val_every=5000,
            gradient_checkpointing=True,
        )
    raise InputError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")

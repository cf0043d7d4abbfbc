"""The training loop: one CPU, one GPU (autocast) or many GPUs (torchrun + DDP), resumable.

Reproducibility by construction: every random draw of step s on rank r (which examples, which
crops, which timesteps and noise) comes from a generator seeded with (seed, s, r), never from a
global state. A step is therefore a function of (weights, optimiser state, s), all of which a
checkpoint holds, and `--resume` continues exactly as an uninterrupted run would have (a test
compares the weights bit for bit).

Many GPUs: run under `torchrun --nproc_per_node=N -m models.training train ...`; each process
takes its GPU from LOCAL_RANK, the model is wrapped in DistributedDataParallel, each rank draws its own examples (rank in the seed), and rank 0 alone
writes checkpoints, metrics and progress. The effective batch is N x batch_size.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from edge_runtime.atomic import atomic_write_json, atomic_write_text, ensure_writable_dir
from edge_runtime.console import console, progress
from edge_runtime.errors import HidiffError, InputError
from edge_runtime.machine import provenance
from models.aphidiff.config import ModelConfig
from models.baselines.pix2pix import Pix2Pix
from models.data.cases import find_cases
from models.data.slices import SliceDataset
from models.training.checkpoint import (
    RUN_FORMAT,
    latest_checkpoint,
    read_checkpoint,
    read_run_config,
    save_tensors,
    write_checkpoint,
)
from models.training.config import TrainConfig
from models.training.ema import EMA
from models.training.factory import LossModule, build_model, phase_parameters
from models.training.validate import validate, validation_set


@dataclass
class Placement:
    """Where this process runs and with which numerics."""

    device: torch.device
    rank: int
    world: int
    amp_dtype: torch.dtype | None  # None: fp32, no autocast

    @property
    def main(self) -> bool:
        return self.rank == 0


def place(tc: TrainConfig) -> Placement:
    """Device, DDP rank/world (from torchrun's environment) and autocast dtype."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available() and tc.device in ("auto", "cuda")
    if tc.device == "cuda" and not torch.cuda.is_available():
        raise HidiffError("--device cuda asked for, but torch sees no CUDA GPU")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    precision = tc.precision
    if precision == "auto":
        precision = "fp32" if not cuda else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if amp is torch.float16 and not cuda:
        raise HidiffError("fp16 autocast needs a GPU; use --precision bf16 or fp32 on CPU")
    if tc.threads > 0 and not cuda:
        torch.set_num_threads(tc.threads)
    return Placement(device=device, rank=rank, world=world, amp_dtype=amp)


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The only source of randomness of step `step` on rank `rank`."""
    state = np.random.SeedSequence([seed, step, rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def learning_rate(step: int, tc: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak at the last step."""
    if step <= tc.warmup_steps:
        return tc.lr * step / max(tc.warmup_steps, 1)
    frac = (step - tc.warmup_steps) / max(tc.steps - tc.warmup_steps, 1)
    return tc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocator peak on a GPU, max RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _read_metrics(path: Path, upto: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [r for r in csv.DictReader(fh) if int(r["step"]) <= upto]


class Trainer:
    """Holds the model, optimisers, EMA and data of one run; `run()` trains to `steps`."""

    def __init__(
        self,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        data: Path,
        out: Path,
        resume: bool = False,
        split: str | None = "train",
    ) -> None:
        self.out = Path(out)
        if resume:
            doc = read_run_config(self.out)
            steps = train_cfg.steps
            model_cfg = ModelConfig.from_dict(doc["model"])
            train_cfg = TrainConfig.from_dict(doc["train"])
            train_cfg.steps = max(steps, train_cfg.steps)
        elif (self.out / "config.json").exists():
            raise InputError(f"{self.out} already holds a run; pass --resume or another --out")
        if train_cfg.gradient_checkpointing:
            model_cfg.unet.gradient_checkpointing = True
        self.mc, self.tc = model_cfg, train_cfg
        self.where = place(train_cfg)
        self.data = Path(data)
        cases = find_cases(self.data, split)
        self.dataset = SliceDataset(cases, model_cfg.data, train_cfg.sequences)
        torch.manual_seed(train_cfg.seed)
        self.model = build_model(model_cfg).to(self.where.device)
        self.model.train()
        self.optimizers = {
            name: torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
            for name, params in phase_parameters(self.model).items()
        }
        self.ema = EMA(self.model, train_cfg.ema_decay)
        use_scaler = self.where.amp_dtype is torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        loss_module: nn.Module = LossModule(self.model)
        if self.where.world > 1:
            loss_module = DistributedDataParallel(
                loss_module,
                device_ids=[self.where.device.index] if self.where.device.type == "cuda" else None,
                find_unused_parameters=isinstance(self.model, Pix2Pix),
            )
        self.loss_module = loss_module
        self.step = 0
        self.rows: list[dict[str, Any]] = []
        self.mr_scales = self.dataset.reference_scales()
        if resume:
            self._resume()
        elif self.where.main:
            ensure_writable_dir(self.out)
            atomic_write_json(self.out / "config.json", self.run_config())
        self.val = None
        if self.where.main and train_cfg.val_every > 0:
            self.val = validation_set(
                self.data, model_cfg, train_cfg.sequences, train_cfg.val_slices
            )
        self.tb = None
        if self.where.main and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out / "tensorboard"))

    def run_config(self) -> dict[str, Any]:
        return {
            "format": RUN_FORMAT,
            "model": self.mc.to_dict(),
            "train": self.tc.to_dict(),
            "mr_scales": self.mr_scales,
            "data": str(self.data),
        }

    def _resume(self) -> None:
        path = latest_checkpoint(self.out)
        model_sd, ema_sd, state = read_checkpoint(path, self.optimizers)
        self.model.load_state_dict(model_sd)
        self.ema.load_state_dict(ema_sd)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.mr_scales = read_run_config(self.out).get("mr_scales", self.mr_scales)
        self.rows = _read_metrics(self.out / "metrics.csv", self.step)
        if self.where.main:
            console.print(f"resumed {self.out} at step {self.step}")

    def _autocast(self) -> Any:
        dtype = self.where.amp_dtype
        return torch.autocast(self.where.device.type, dtype=dtype, enabled=dtype is not None)

    def train_step(self, step: int) -> dict[str, float]:
        """One optimiser step of every phase; returns the loss terms as floats."""
        gen = step_generator(self.tc.seed, step, self.where.rank)
        batch = self.dataset.sample_batch(self.tc.batch_size, gen)
        batch = {k: v.to(self.where.device, non_blocking=True) for k, v in batch.items()}
        lr = learning_rate(step, self.tc)
        out: dict[str, float] = {}
        for phase, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            with self._autocast():
                terms = self.loss_module(batch, phase, gen)
            loss = terms["loss"]
            if not torch.isfinite(loss):
                raise HidiffError(f"loss became {loss.item()} at step {step} (phase {phase})")
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.tc.grad_clip)
            self.scaler.step(opt)
            self.scaler.update()
            suffix = "" if len(self.optimizers) == 1 else f"_{phase}"
            for k, v in terms.items():
                out[k if k != "loss" else f"loss{suffix}"] = float(v.detach())
        if "loss" not in out:
            out["loss"] = out[f"loss_{next(reversed(self.optimizers))}"]
        out["lr"] = lr
        self.ema.update(self.model, step)
        return out

    def validate(self) -> dict[str, float]:
        """Validation figures of the EMA weights (empty without a val split)."""
        if self.val is None:
            return {}
        ema_model = build_model(self.mc).to(self.where.device)
        ema_model.load_state_dict(self.ema.weights_for(self.model))
        ds, indices = self.val
        return validate(ema_model, self.mc, ds, indices, self.tc.val_steps, self.where.device)

    def checkpoint(self) -> None:
        if not self.where.main:
            return
        state = {"scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None}
        write_checkpoint(
            self.out,
            self.step,
            self.model.state_dict(),
            self.ema.state_dict(),
            self.optimizers,
            state,
            self.tc.keep_checkpoints,
        )
        _write_metrics(self.out / "metrics.csv", self.rows)

    def run(self) -> dict[str, Any]:
        """Train from the current step to `steps`; return a summary (also summary.json)."""
        tc = self.tc
        start, t_start = self.step, time.perf_counter()
        images = 0
        bar = progress() if self.where.main else None
        task = None
        if bar is not None:
            bar.start()
            task = bar.add_task(f"train {self.mc.model}", total=tc.steps, completed=start)
        try:
            for step in range(start + 1, tc.steps + 1):
                t0 = time.perf_counter()
                terms = self.train_step(step)
                self.step = step
                dt = time.perf_counter() - t0
                images += tc.batch_size * self.where.world
                if tc.val_every > 0 and (step % tc.val_every == 0 or step == tc.steps):
                    terms.update(self.validate())
                if step % tc.log_every == 0 or step == tc.steps:
                    row = {"step": step, **{k: f"{v:.6g}" for k, v in terms.items()}}
                    row["images_per_s"] = f"{tc.batch_size * self.where.world / dt:.4g}"
                    row["seconds"] = f"{time.perf_counter() - t_start:.3f}"
                    self.rows.append(row)
                    if self.tb is not None:
                        for k, v in terms.items():
                            self.tb.add_scalar(k, v, step)
                if bar is not None and task is not None:
                    bar.update(
                        task,
                        advance=1,
                        description=f"train {self.mc.model} loss {terms['loss']:.4f}",
                    )
                if step % tc.checkpoint_every == 0 or step == tc.steps:
                    self.checkpoint()
        finally:
            if bar is not None:
                bar.stop()
        wall = time.perf_counter() - t_start
        summary = {
            "model": self.mc.model,
            "preset": self.mc.preset,
            "steps": self.step,
            "steps_this_run": self.step - start,
            "wall_s": round(wall, 3),
            "images_per_s": round(images / wall, 4) if wall > 0 else None,
            "peak_memory_mib": round(peak_memory_mib(self.where.device), 1),
            "device": str(self.where.device),
            "world_size": self.where.world,
            "precision": str(self.where.amp_dtype or "fp32"),
            "final": self.rows[-1] if self.rows else None,
            "provenance": provenance(),
        }
        if self.where.main:
            save_tensors(self.out / "weights.safetensors", self.ema.weights_for(self.model))
            atomic_write_json(self.out / "summary.json", summary)
        if self.tb is not None:
            self.tb.close()
        return summary


def train_run(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: Path,
    out: Path,
    resume: bool = False,
    split: str | None = "train",
) -> dict[str, Any]:
    """Build a Trainer and run it; tears DDP down at the end."""
    try:
        return Trainer(model_cfg, train_cfg, data, out, resume, split).run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()

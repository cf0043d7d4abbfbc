"""Run folders and checkpoints: safetensors for tensors, JSON for everything else, no pickle.

A run folder (`--out RUN`):
    config.json            {"format": "hidiff-run/1", "model": ModelConfig, "train": TrainConfig,
                            "mr_scales": {seq: scale}}: written once, atomically
    checkpoints/step-NNNNNNNN/   one atomic folder per checkpoint:
        model.safetensors      raw weights and buffers
        ema.safetensors        EMA weights (what prediction uses)
        optimizer.safetensors  every tensor of each optimiser's state
        state.json             step, optimiser hyper-parameters, grad-scaler state, metrics rows
    latest.json            {"step": N, "checkpoint": "checkpoints/step-NNNNNNNN"}: the pointer
                            to the last complete checkpoint, replaced atomically after it
    metrics.csv            step, every loss term, lr, images/s, seconds
    weights.safetensors    final EMA weights, for `hidiff predict` and export

Every load goes through `safetensors.torch.load_file` and `json.loads`: a checkpoint file can
never execute code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from edge_runtime.atomic import atomic_directory, atomic_write_bytes, atomic_write_json
from edge_runtime.errors import InputError

RUN_FORMAT = "hidiff-run/1"


def tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """safetensors bytes of CPU, contiguous copies of `tensors`."""
    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write_bytes(path, tensors_bytes(tensors))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"{path}: missing")
    return load_file(str(path))


def optimizer_to_parts(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's state into tensors (safetensors) and plain data (JSON)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain_state: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
            else:
                plain_state.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain_state}


def optimizer_from_parts(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], plain: dict
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, st in plain.get("plain_state", {}).items():
        state.setdefault(int(idx), {}).update(st)
    opt.load_state_dict({"state": state, "param_groups": plain["param_groups"]})


def write_checkpoint(
    run: Path,
    step: int,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint `step` atomically, move latest.json to it, prune old ones."""
    name = f"checkpoints/step-{step:08d}"
    final = run / name
    opt_tensors: dict[str, torch.Tensor] = {}
    opt_plain: dict[str, Any] = {}
    for oname, opt in optimizers.items():
        t, p = optimizer_to_parts(opt)
        opt_tensors.update({f"{oname}/{k}": v for k, v in t.items()})
        opt_plain[oname] = p
    with atomic_directory(final, overwrite=True) as tmp:
        (tmp / "model.safetensors").write_bytes(tensors_bytes(model))
        (tmp / "ema.safetensors").write_bytes(tensors_bytes(ema))
        (tmp / "optimizer.safetensors").write_bytes(tensors_bytes(opt_tensors))
        (tmp / "state.json").write_text(
            json.dumps({"step": step, "optimizers": opt_plain, **state}, indent=1) + "\n"
        )
    atomic_write_json(run / "latest.json", {"step": step, "checkpoint": name})
    done = sorted((run / "checkpoints").glob("step-*"))
    for old in done[:-keep] if keep > 0 else []:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run: Path) -> Path:
    """The folder latest.json points to."""
    pointer = run / "latest.json"
    if not pointer.is_file():
        raise InputError(f"{run}: no checkpoint to resume from (no latest.json)")
    path = run / json.loads(pointer.read_text())["checkpoint"]
    if not path.is_dir():
        raise InputError(f"{run}: latest.json points to missing {path.name}")
    return path


def read_checkpoint(
    path: Path, optimizers: dict[str, torch.optim.Optimizer]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(model tensors, EMA tensors, state.json) and the optimisers' states loaded in place."""
    state = json.loads((path / "state.json").read_text())
    opt_tensors = load_tensors(path / "optimizer.safetensors")
    for oname, opt in optimizers.items():
        prefix = f"{oname}/"
        mine = {k[len(prefix) :]: v for k, v in opt_tensors.items() if k.startswith(prefix)}
        optimizer_from_parts(opt, mine, state["optimizers"][oname])
    return load_tensors(path / "model.safetensors"), load_tensors(path / "ema.safetensors"), state


def read_run_config(run: Path) -> dict[str, Any]:
    path = run / "config.json"
    if not path.is_file():
        raise InputError(f"{run}: not a training run (no config.json)")
    doc = json.loads(path.read_text())
    if doc.get("format") != RUN_FORMAT:
        raise InputError(f"{path}: unknown format {doc.get('format')!r}, expected {RUN_FORMAT}")
    return doc

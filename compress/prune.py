"""`prune`: structured channel pruning of encoder and denoiser together, then distillation.

torch-pruning traces encode + one denoise step (`student.EncodeDenoise`), so every channel
group is found across the whole inference path: residual adds, skip concatenations, the
condition pyramid feeding the U-Net levels, the time embedding feeding every block. Channels
are ranked per group by magnitude (L2) or Taylor (|w * dL/dw| on distillation batches) and the
same fraction removed from each group. GroupNorm layers make torch-pruning prune the same
number of channels inside each norm group, so channel counts stay divisible by the group count.
Fixed outputs (anatomy code, modality prior, prediction head) are never pruned.

The target is a ratio, or a FLOPs budget: the ratio is then found by bisection on copies
(pruning the small preset takes half a second) so the denoiser step keeps at most that fraction
of the teacher's FLOPs. Afterwards the pruned network is distilled from the teacher
(`distil.distil_outputs`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from compress.distil import distil_outputs, output_loss
from compress.recipe import PruneSpec
from compress.student import (
    EncodeDenoise,
    Student,
    encoder_denoiser_gflops,
    example_inputs,
    fixed_layers,
    jsonable_history,
)
from edge_runtime.errors import InputError
from models.aphidiff.model import APHiDiff
from models.aphidiff.runtime_glue import alphas_cumprod
from models.data.slices import SliceDataset

# Grid at which FLOPs are counted for the budget (any size gives the same fraction).
_FLOPS_SIZE = 128


@dataclass
class PruneResult:
    student: Student
    ratio: float
    losses: list[float]

    def info(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "loss_first": self.losses[:1], "loss_last": self.losses[-1:]}


def _importance(kind: str) -> tp.importance.Importance:
    if kind == "taylor":
        return tp.importance.GroupTaylorImportance()
    return tp.importance.GroupMagnitudeImportance(p=2)


def full_resolution_convs(model: APHiDiff) -> list[nn.Conv2d]:
    """The convolutions whose output has the input slice's height and width (the U-Net's top
    level, the encoder's stem level), found by running encode + one denoise step once."""
    ct, x, t, seq = example_inputs(model.cfg)
    found: list[nn.Conv2d] = []

    def record(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        if output.shape[-2:] == ct.shape[-2:]:
            found.append(module)  # type: ignore[arg-type]

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks = [m.register_forward_hook(record) for m in convs]
    was_training = model.training
    try:
        with torch.no_grad():
            EncodeDenoise(model).eval()(ct, x, t, seq)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(found))


def prune_model(
    model: APHiDiff,
    ratio: float,
    importance: str = "magnitude",
    taylor_loss: torch.Tensor | None = None,
    full_res_ratio: float | None = None,
) -> list[list[Any]]:
    """Prune `model` in place by `ratio` per channel group (by `full_res_ratio` for the groups
    of full-resolution layers, when given); its JSON-able pruning history.

    Taylor importance needs `taylor_loss`, a loss computed with `model` (its gradients rank the
    channels)."""
    if ratio <= 0 and not full_res_ratio:
        return []
    fixed = fixed_layers(model)
    per_layer: dict[nn.Module, float] = {}
    if full_res_ratio is not None:
        per_layer = {m: full_res_ratio for m in full_resolution_convs(model) if m not in fixed}
    wrapper = EncodeDenoise(model)
    pruner = tp.pruner.BasePruner(
        wrapper,
        list(example_inputs(model.cfg)),
        _importance(importance),
        pruning_ratio=ratio,
        pruning_ratio_dict=per_layer or None,
        ignored_layers=fixed,
    )
    if importance == "taylor":
        if taylor_loss is None:
            raise ValueError("taylor importance needs a loss to rank channels by")
        model.zero_grad(set_to_none=True)
        taylor_loss.backward()
    pruner.step()
    model.zero_grad(set_to_none=True)
    return jsonable_history(pruner.pruning_history())


def ratio_for_flops(model: APHiDiff, keep: float, full_res_ratio: float | None = None) -> float:
    """The smallest per-group ratio, on a 0.05 grid, whose pruned denoiser keeps <= `keep` of
    the FLOPs (magnitude ranking for the search).

    A scan, not a bisection: kept FLOPs are not monotonic in the ratio. A GroupNorm layer needs
    a channel per group, so torch-pruning leaves a narrow layer whole once the ratio would take
    it below that, and a higher ratio can keep more FLOPs than a lower one."""
    mc = model.cfg
    base = encoder_denoiser_gflops(model, mc, _FLOPS_SIZE)[1]
    best = (1.0, 0.0)
    for ratio in np.round(np.arange(0.05, 0.951, 0.05), 2):
        trial = copy.deepcopy(model)
        prune_model(trial, float(ratio), "magnitude", full_res_ratio=full_res_ratio)
        kept = encoder_denoiser_gflops(trial, mc, _FLOPS_SIZE)[1] / base
        if kept <= keep:
            return float(ratio)
        best = min(best, (kept, float(ratio)))
    raise InputError(
        f"prune.flops {keep}: unreachable, the most this network can be pruned keeps "
        f"{best[0]:.3f} of its FLOPs (at ratio {best[1]}; GroupNorm groups need a channel each)"
    )


def prune_stage(
    teacher: Student,
    data: SliceDataset,
    spec: PruneSpec,
    sampler: dict[str, Any] | None = None,
    seed: int = 0,
) -> PruneResult:
    """Prune a copy of the teacher as `spec` says and distil it from the teacher. `sampler` (the
    package's, from a `sampler` stage) goes with the student, and the repair trains at its
    timesteps when `spec.timesteps` is "sampler"."""
    student_model = copy.deepcopy(teacher.model)
    mc = teacher.mc
    repair_t = None
    if spec.timesteps == "sampler":
        if sampler is None:
            raise InputError("prune.timesteps: sampler needs a sampler stage before prune")
        repair_t = torch.as_tensor(sampler["timesteps"], dtype=torch.long)
    ratio = (
        spec.ratio
        if spec.flops is None
        else ratio_for_flops(student_model, spec.flops, spec.full_res_ratio)
    )
    loss = None
    if spec.importance == "taylor":
        gen = torch.Generator().manual_seed(seed)
        ab = alphas_cumprod(mc.diffusion)
        loss = output_loss(
            student_model, teacher.model, data.sample_batch(spec.batch, gen), ab, gen, 1.0
        )
    history = prune_model(student_model, ratio, spec.importance, loss, spec.full_res_ratio)
    losses = distil_outputs(
        student_model,
        teacher.model,
        data,
        mc,
        spec.steps,
        spec.batch,
        spec.lr,
        spec.truth_weight,
        seed,
        repair_t,
    )
    student = Student(student_model, mc, teacher.mr_scales, teacher.teacher, history, sampler)
    return PruneResult(student, ratio, losses)

"""Structured pruning (torch-pruning) of the tiny teacher: the saved student (config + pruning
history + safetensors, no pickle) reloads to the very same network, and params/FLOPs drop as
the ratio or FLOPs budget asks while GroupNorm channel counts stay divisible by their groups."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from compress.prune import full_resolution_convs, prune_model, ratio_for_flops
from compress.stage_io import teacher_student
from compress.student import (
    EncodeDenoise,
    count_params,
    encoder_denoiser_gflops,
    example_inputs,
    load_student,
)
from edge_runtime.errors import InputError


def test_pruned_student_reloads_identically(short_run: Path, tmp_path: Path) -> None:
    teacher, _ = teacher_student(short_run)
    student = copy.deepcopy(teacher)
    student.pruning_history = prune_model(student.model, 0.5)
    assert student.pruning_history and all(
        isinstance(i, int) for entry in student.pruning_history for i in entry[2]
    )
    student.save(tmp_path / "student")
    assert not list((tmp_path / "student").glob("*.pt")), "no pickled modules"
    back = load_student(tmp_path / "student")
    inputs = example_inputs(teacher.mc, 128)
    with torch.no_grad():
        want = EncodeDenoise(student.model.eval())(*inputs)
        got = EncodeDenoise(back.model)(*inputs)
    assert torch.equal(want, got)
    assert count_params(back.model) == count_params(student.model)


def test_ratio_and_flops_targets(short_run: Path) -> None:
    teacher, _ = teacher_student(short_run)
    mc = teacher.mc
    base_params = count_params(teacher.model)
    base_flops = encoder_denoiser_gflops(teacher.model, mc, 128)[1]

    half = copy.deepcopy(teacher.model)
    prune_model(half, 0.5)
    assert count_params(half) < 0.45 * base_params
    assert encoder_denoiser_gflops(half, mc, 128)[1] < 0.4 * base_flops
    for m in half.modules():
        if isinstance(m, nn.GroupNorm):
            assert m.num_channels % m.num_groups == 0

    ratio = ratio_for_flops(teacher.model, 0.5)
    budget = copy.deepcopy(teacher.model)
    prune_model(budget, ratio)
    assert encoder_denoiser_gflops(budget, mc, 128)[1] <= 0.5 * base_flops
    assert 0.0 < ratio < 0.95
    with pytest.raises(InputError, match="unreachable"):
        ratio_for_flops(teacher.model, 0.01)


def test_taylor_importance_prunes(short_run: Path) -> None:
    teacher, _ = teacher_student(short_run)
    model = copy.deepcopy(teacher.model)
    inputs = example_inputs(teacher.mc, 64)
    loss = EncodeDenoise(model)(*inputs).square().mean()
    history = prune_model(model, 0.5, "taylor", loss)
    assert history and count_params(model) < count_params(teacher.model)


def test_repair_at_the_samplers_timesteps_draws_only_those() -> None:
    """prune.timesteps: sampler trains the pruned network at the package sampler's t only."""
    from compress.distil import output_loss

    seen: list[torch.Tensor] = []

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def encode(self, ct, seq):
            return ct

        def denoise(self, x_t, t, seq, cond):
            seen.append(t)
            return self.w * x_t

    batch = {
        "ct": torch.zeros(6, 3, 8, 8),
        "mr": torch.ones(6, 1, 8, 8),
        "sequence": torch.zeros(6),
    }
    ab = torch.linspace(0.999, 0.001, 1000)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        output_loss(Net(), Net(), batch, ab, gen, 0.5, torch.tensor([999, 499]))
    assert set(torch.cat(seen).long().tolist()) == {999, 499}
    seen.clear()
    output_loss(Net(), Net(), batch, ab, gen, 0.0)
    assert len(set(torch.cat(seen).long().tolist())) > 2


SMALL_TEACHER = Path(__file__).resolve().parents[2] / "models" / "teachers" / "aphidiff-small-t2"


def _widths(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def test_full_resolution_layers_take_their_own_ratio() -> None:
    """`full_res_ratio`: the U-Net's top level keeps the width a uniform prune at that ratio
    gives it, while the levels below are pruned as hard as `ratio` says. On the shipped small
    teacher (32 channels in 8 GroupNorm groups at the top: the tiny one's are too few to show
    it), whose edge-cpu recipe uses this."""
    teacher, _ = teacher_student(SMALL_TEACHER)
    chosen = set(full_resolution_convs(teacher.model))
    full_res = {n for n, m in teacher.model.named_modules() if m in chosen}
    assert "unet.down_blocks.0.0.conv1" in full_res
    assert not any(n.startswith(("unet.down_blocks.1", "unet.mid")) for n in full_res)

    pruned = {}
    for name, ratio, full in (("hard", 0.75, None), ("mixed", 0.75, 0.5), ("half", 0.5, None)):
        pruned[name] = copy.deepcopy(teacher.model)
        prune_model(pruned[name], ratio, full_res_ratio=full)
    hard, mixed, half = (_widths(pruned[k]) for k in ("hard", "mixed", "half"))
    top = [n for n in full_res if n.startswith("unet.down_blocks.0")]
    assert top and all(mixed[n] == half[n] > hard[n] for n in top)
    below = [n for n in mixed if n.startswith(("unet.down_blocks.2", "unet.mid"))]
    assert below and all(mixed[n] == hard[n] < half[n] for n in below)
    params = [count_params(pruned[k]) for k in ("hard", "mixed", "half")]
    assert params == sorted(params) and len(set(params)) == 3

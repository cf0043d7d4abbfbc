"""Teacher -> student training on phantom training crops: the two distillations of the recipe.

1. Output distillation (after pruning): at random timesteps the pruned student's prediction is
   pulled to the teacher's on the same noisy crop, plus (weighted) the plain diffusion loss
   against the phantom's true MR, so the thinner network relearns what the teacher does.
2. Trajectory distillation (`distill-steps`): the teacher's many-step DDIM sampler is run once
   on training crops from fixed noise x_T, giving pairs (x_T, x_0*). A deterministic few-step
   sampler whose x_0 estimate is exactly x_0* visits x_k = a_k x_0* + s_k eps_0 at each of its
   timesteps t_k (eps_0 = (x_T - a_0 x_0*) / s_0; a = sqrt(alpha-bar), s = sqrt(1 - alpha-bar)):
   DDIM (and DPM-Solver++) keep a constant-x_0 trajectory on that line. The student is trained
   at exactly those states to predict v = a_k eps_0 - s_k x_0*, i.e. to land on the teacher's
   sample from the teacher's noise in its few steps (Luhman & Luhman 2021's noise-to-sample
   distillation, spread over the student's timesteps). |dv|^2 = |dx_0|^2 + |d eps|^2, so the
   loss weighs image error and noise error alike at every step.
Both read crops through `models.data.slices.SliceDataset` with a seeded generator: a stage is
a function of (weights, data, seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compress.packaging import torch_generate
from edge_runtime.console import progress
from edge_runtime.package.manifest import SamplerSpec
from models.aphidiff.config import SEQUENCES, ModelConfig
from models.aphidiff.runtime_glue import alphas_cumprod
from models.data.slices import SliceDataset


def _coefficients(ab: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = ab[t].sqrt()[:, None, None, None]
    return a, (1.0 - ab[t]).sqrt()[:, None, None, None]


def _optimiser(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)


def output_loss(
    student: nn.Module,
    teacher: nn.Module,
    batch: dict[str, torch.Tensor],
    ab: torch.Tensor,
    gen: torch.Generator,
    truth_weight: float,
    timesteps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Student vs teacher prediction at random t on one batch (+ truth_weight x diffusion loss);
    t is drawn from `timesteps` when given (a few-step sampler's), else from the whole schedule."""
    ct, mr, seq = batch["ct"], batch["mr"], batch["sequence"]
    if timesteps is None:
        t = torch.randint(0, ab.numel(), (mr.shape[0],), generator=gen)
    else:
        t = timesteps[torch.randint(0, timesteps.numel(), (mr.shape[0],), generator=gen)]
    noise = torch.randn(mr.shape, generator=gen)
    a, s = _coefficients(ab, t)
    x_t = a * mr + s * noise
    with torch.no_grad():
        want = teacher.denoise(x_t, t.float(), seq, teacher.encode(ct, seq))
    got = student.denoise(x_t, t.float(), seq, student.encode(ct, seq))
    loss = F.mse_loss(got, want)
    if truth_weight > 0:
        loss = loss + truth_weight * F.mse_loss(got, a * noise - s * mr)
    return loss


def distil_outputs(
    student: nn.Module,
    teacher: nn.Module,
    data: SliceDataset,
    mc: ModelConfig,
    steps: int,
    batch: int,
    lr: float,
    truth_weight: float,
    seed: int = 0,
    timesteps: torch.Tensor | None = None,
) -> list[float]:
    """Train `student` towards `teacher`'s predictions (at `timesteps` only, when given); the
    loss of every step."""
    ab = alphas_cumprod(mc.diffusion)
    opt = _optimiser(student, lr)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    student.train()
    with progress() as bar:
        task = bar.add_task("distil (pruned -> teacher)", total=steps)
        for _ in range(steps):
            loss = output_loss(
                student, teacher, data.sample_batch(batch, gen), ab, gen, truth_weight, timesteps
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            bar.update(task, advance=1)
    student.eval()
    return losses


@dataclass
class Trajectories:
    """Teacher samples on training crops: conditioning CT, sequence, x_T and x_0*."""

    ct: torch.Tensor
    sequence: torch.Tensor
    noise: torch.Tensor
    sample: torch.Tensor

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "ct": self.ct,
            "sequence": self.sequence,
            "noise": self.noise,
            "sample": self.sample,
        }


def teacher_trajectories(
    teacher: nn.Module,
    data: SliceDataset,
    spec: SamplerSpec,
    count: int,
    batch: int,
    seed: int = 0,
) -> Trajectories:
    """`count` crops sampled by the teacher with `spec` (its full sampler) from seeded noise."""
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"ct": [], "sequence": [], "noise": [], "sample": []}
    with progress() as bar:
        task = bar.add_task(f"teacher trajectories ({spec.kind} {spec.steps})", total=count)
        done = 0
        while done < count:
            n = min(batch, count - done)
            b = data.sample_batch(n, gen)
            noise = torch.randn(b["mr"].shape, generator=gen)
            seqs = b["sequence"].tolist()
            if len(set(seqs)) != 1:
                raise ValueError("teacher trajectories are made per sequence")
            x0 = torch_generate(
                teacher, SEQUENCES[seqs[0]], b["ct"].numpy(), noise.numpy(), seed + done, spec
            )
            for k, v in (("ct", b["ct"]), ("sequence", b["sequence"]), ("noise", noise)):
                parts[k].append(v)
            parts["sample"].append(torch.from_numpy(x0))
            done += n
            bar.update(task, advance=n)
    return Trajectories(**{k: torch.cat(v) for k, v in parts.items()})


def trajectory_loss(
    student: nn.Module,
    traj: Trajectories,
    idx: torch.Tensor,
    timesteps: torch.Tensor,
    t_first: int,
    ab: torch.Tensor,
) -> torch.Tensor:
    """v-loss of the student at `timesteps` (one per example) on the constant-x_0 line from the
    teacher's noise (entering at the sampler's first timestep `t_first`) to the teacher's sample
    (module docstring)."""
    ct, seq, x_T, x0 = traj.ct[idx], traj.sequence[idx], traj.noise[idx], traj.sample[idx]
    a0, s0 = _coefficients(ab, torch.full_like(timesteps, t_first))
    eps0 = (x_T - a0 * x0) / s0
    a, s = _coefficients(ab, timesteps)
    x_t = a * x0 + s * eps0
    got = student.denoise(x_t, timesteps.float(), seq, student.encode(ct, seq))
    return F.mse_loss(got, a * eps0 - s * x0)


def distil_trajectories(
    student: nn.Module,
    traj: Trajectories,
    mc: ModelConfig,
    student_timesteps: np.ndarray,
    steps: int,
    batch: int,
    lr: float,
    seed: int = 0,
) -> list[float]:
    """Train `student` on the teacher's trajectories at `student_timesteps`; the step losses."""
    ab = alphas_cumprod(mc.diffusion)
    ts = torch.as_tensor(np.asarray(student_timesteps, dtype=np.int64))
    t_first = int(ts.max())
    opt = _optimiser(student, lr)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    n = traj.sample.shape[0]
    student.train()
    with progress() as bar:
        task = bar.add_task(f"distil-steps ({ts.numel()} steps)", total=steps)
        for _ in range(steps):
            idx = torch.randint(0, n, (batch,), generator=gen)
            t = ts[torch.randint(0, ts.numel(), (batch,), generator=gen)]
            loss = trajectory_loss(student, traj, idx, t, t_first, ab)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            bar.update(task, advance=1)
    student.eval()
    return losses

"""The ledger's measurements: every stage scored the same way on the same fixed slices.

- Evaluation slices: `slices` liver slices spread over the held-out cases (test, then val) at
  the model's full grid, each with fixed initial noise. The teacher's outputs on them are
  computed once and cached (the costly part: its many-step sampler at full grid).
- Accuracy: masked SSIM inside the liver against the phantom's true MR (model space, data range
  2), PSNR against the truth and against the teacher's output. Vessel clDice and the < 3 mm
  miss rate need the benchmark harness (`hidiff bench accuracy`), which compress may not import.
- Speed at one full-grid slice on `threads` threads: torch stages as encoder + steps x the
  median of timed denoiser steps ("extrapolated from N timed steps"); ONNX stages run the whole
  sampler loop through onnxruntime, median of repeats; a package is also timed in a fresh
  process that imports only the runtime (`package_probe`), which gives its peak RSS.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from compress.packaging import held_out_cases, torch_generate
from edge_runtime import metrics
from edge_runtime.console import progress
from edge_runtime.errors import InputError
from edge_runtime.package.manifest import (
    DENOISER_SAMPLE,
    DENOISER_TIMESTEP,
    ENCODER_INPUT,
    SEQUENCE_INPUT,
    SamplerSpec,
)
from models.aphidiff.config import SEQUENCES, ModelConfig
from models.aphidiff.graphs import DenoiserGraph, EncoderGraph
from models.data.cases import read_case
from models.data.normalise import mr_scale, mr_to_unit
from models.data.slices import ct_stack


@dataclass(frozen=True)
class EvalSet:
    """Fixed held-out liver slices in model space with their noise and liver masks."""

    sequence: str
    ct: np.ndarray  # (N, C, H, W)
    target: np.ndarray  # (N, 1, H, W)
    liver: np.ndarray  # (N, H, W) bool
    noise: np.ndarray  # (N, 1, H, W)
    where: tuple[str, ...]  # "case-id:z" per slice
    seed: int

    def describe(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "slices": list(self.where), "seed": self.seed}


def eval_set(
    data: Path,
    mc: ModelConfig,
    sequence: str,
    count: int,
    seed: int,
    splits: tuple[str, ...] = ("test", "val"),
) -> EvalSet:
    """`count` liver slices, spread over (at most `count`) cases of `splits`, evenly in z."""
    dirs = held_out_cases(Path(data), splits)[:count]
    per = [count // len(dirs) + (i < count % len(dirs)) for i in range(len(dirs))]
    ct, target, liver, where = [], [], [], []
    for d, n in zip(dirs, per, strict=True):
        case = read_case(d, mc.data.ct_phases, (sequence,))
        if case.labels.shape[1:] != (mc.data.grid, mc.data.grid):
            raise InputError(f"case {case.case_id}: not on the model's {mc.data.grid} grid")
        lid = case.label_table.get("liver")
        zs = np.flatnonzero((case.labels == lid).any(axis=(1, 2)))
        if lid is None or zs.size == 0:
            raise InputError(f"case {case.case_id}: no liver slices to evaluate on")
        zs = zs[np.linspace(0, zs.size - 1, n + 2).round().astype(int)[1:-1]]
        scale = mr_scale(case.mr[sequence], case.labels > 0, mc.data.mr_percentile)
        for z in zs:
            ct.append(ct_stack(case, int(z), mc.data))
            target.append(mr_to_unit(case.mr[sequence][z], scale)[None])
            liver.append(case.labels[z] == lid)
            where.append(f"{case.case_id}:{int(z)}")
    target_a = np.stack(target).astype(np.float32)
    noise = np.random.default_rng(seed).standard_normal(target_a.shape, dtype=np.float32)
    return EvalSet(
        sequence,
        np.stack(ct).astype(np.float32),
        target_a,
        np.stack(liver),
        noise,
        tuple(where),
        seed,
    )


@contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_outputs(model: nn.Module, es: EvalSet, spec: SamplerSpec, batch: int = 2) -> np.ndarray:
    """The torch model through the runtime's sampler on every evaluation slice."""
    out = []
    n = es.ct.shape[0]
    with progress() as bar:
        task = bar.add_task(f"torch {spec.kind} {spec.steps} on {n} evaluation slices", total=n)
        for i in range(0, n, batch):
            sl = slice(i, i + batch)
            out.append(
                torch_generate(model, es.sequence, es.ct[sl], es.noise[sl], es.seed + i, spec)
            )
            bar.update(task, advance=out[-1].shape[0])
    return np.concatenate(out)


class OnnxPair:
    """An encoder/denoiser pair of serialised graphs on the CPU provider, run with a sampler
    exactly as `edge_runtime.package.Engine.denoise` runs a package (the reference loop)."""

    def __init__(self, encoder: bytes, denoiser: bytes, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        cpu = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(encoder, opts, providers=cpu)
        self.denoiser = ort.InferenceSession(denoiser, opts, providers=cpu)
        self.cond_names = [o.name for o in self.encoder.get_outputs()]

    def encode(self, ct: np.ndarray, sequence: int) -> dict[str, np.ndarray]:
        seq = np.full((ct.shape[0],), sequence, dtype=np.int64)
        conds = self.encoder.run(self.cond_names, {ENCODER_INPUT: ct, SEQUENCE_INPUT: seq})
        return {SEQUENCE_INPUT: seq, **dict(zip(self.cond_names, conds, strict=True))}

    def generate(
        self, ct: np.ndarray, sequence: int, noise: np.ndarray, seed: int, spec: SamplerSpec
    ) -> np.ndarray:
        cond = self.encode(np.ascontiguousarray(ct, dtype=np.float32), sequence)
        sampler = spec.build()
        rng = np.random.default_rng(seed)
        x = np.asarray(noise, dtype=np.float32) * np.float32(sampler.init_noise_sigma)
        for t in sampler.timesteps:
            t = int(t)
            feeds = {
                DENOISER_SAMPLE: np.ascontiguousarray(sampler.scale_model_input(x, t), np.float32),
                DENOISER_TIMESTEP: np.full((x.shape[0],), t, dtype=np.float32),
                **cond,
            }
            pred = self.denoiser.run(None, feeds)[0].astype(np.float32)
            x = sampler.step(pred, t, x, generator=rng).prev_sample.astype(np.float32)
        return x

    def outputs(self, es: EvalSet, spec: SamplerSpec) -> np.ndarray:
        seq = SEQUENCES.index(es.sequence)
        return np.concatenate(
            [
                self.generate(es.ct[i : i + 1], seq, es.noise[i : i + 1], es.seed + i, spec)
                for i in range(es.ct.shape[0])
            ]
        )

    def latency(self, es: EvalSet, spec: SamplerSpec, repeats: int) -> float:
        """Median seconds for one full-grid slice, whole sampler loop (after one warm-up)."""
        seq = SEQUENCES.index(es.sequence)
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            self.generate(es.ct[:1], seq, es.noise[:1], es.seed, spec)
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:])


def accuracy(pred: np.ndarray, es: EvalSet, teacher: np.ndarray | None) -> dict[str, float]:
    """Masked (liver) SSIM and PSNR vs the phantom truth; PSNR vs the teacher's outputs."""
    ssim = [
        metrics.masked_ssim(p[0], t[0], m, 2.0)
        for p, t, m in zip(pred, es.target, es.liver, strict=True)
    ]
    row = {
        "masked_ssim": float(np.mean(ssim)),
        "masked_ssim_min": float(np.min(ssim)),
        "psnr_db": float(metrics.psnr(pred, es.target, 2.0)),
    }
    if teacher is not None:
        row["psnr_vs_teacher"] = float(metrics.psnr(pred, teacher, 2.0))
    return row


@torch.no_grad()
def torch_latency(model: nn.Module, es: EvalSet, steps: int, timed: int) -> dict[str, Any]:
    """Encoder once + `steps` x median of `timed` denoiser steps, one full-grid slice."""
    enc, den = EncoderGraph(model).eval(), DenoiserGraph(model).eval()
    ct = torch.from_numpy(es.ct[:1])
    seq = torch.full((1,), SEQUENCES.index(es.sequence), dtype=torch.int64)
    start = time.perf_counter()
    conds = enc(ct, seq)
    t_enc = time.perf_counter() - start
    x = torch.from_numpy(es.noise[:1])
    times = []
    for i in range(timed + 1):
        start = time.perf_counter()
        den(x, torch.full((1,), 999.0 - i), seq, *conds)
        times.append(time.perf_counter() - start)
    step = statistics.median(times[1:])
    return {
        "cpu_latency_s_per_slice": t_enc + steps * step,
        "encoder_s": t_enc,
        "denoiser_step_s": step,
        "latency_method": f"torch eager: encoder + {steps} x median of {timed} timed steps "
        f"(extrapolated from {timed} timed steps)",
    }


_PROBE = """
import json, statistics, sys, time
import numpy as np
from edge_runtime.machine import peak_rss_mib
from edge_runtime.package import load_package
from edge_runtime.package.engine import Engine
from edge_runtime.providers import RuntimeOptions
pkg = load_package(sys.argv[1])
threads, repeats = int(sys.argv[2]), int(sys.argv[3])
opts = RuntimeOptions(cache_dir=None, intra_op_threads=threads)
engine = Engine(pkg, "cpu", None, opts)
case = pkg.manifest.reference.cases[0]
ct = pkg.load_array(case.input)[:1].astype(np.float32)
noise = pkg.load_array(case.noise)[:1].astype(np.float32)
times = []
for _ in range(repeats + 1):
    start = time.perf_counter()
    engine.generate(ct, noise, case.seed, case.output_name)
    times.append(time.perf_counter() - start)
print(json.dumps({
    "seconds": statistics.median(times[1:]),
    "peak_rss_mib": peak_rss_mib(),
    "precision": engine.precision,
}))
"""


def package_probe(package: Path, threads: int, repeats: int) -> dict[str, Any]:
    """Latency of one full-grid slice and the peak RSS of a fresh process that imports only
    the runtime, loads `package` and synthesizes (median of `repeats` after a warm-up)."""
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, str(package), str(threads), str(repeats)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)},
    )
    if res.returncode != 0:
        raise InputError(f"timing {package} failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])

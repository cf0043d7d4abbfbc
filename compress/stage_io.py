"""The stages' work as plain functions shared by the recipe pipeline and the single-stage
commands: load the teacher as a `Student`, distil steps, export + quantize a student.

Each reads a checkpoint and writes one (a student folder, or a folder of graphs), so a stage
can be run, inspected and re-run on its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

from compress.distil import Trajectories, distil_trajectories, teacher_trajectories
from compress.evaluate import eval_set
from compress.export_onnx import ExportConfig, ExportGateError, export_graphs
from compress.packaging import (
    PackagingConfig,
    checkpoint_file,
    load_weights,
    sampler_manifest,
    sha256_bytes,
)
from compress.quantize import quantize_int8, sampler_feeds, stack_feeds, to_fp16
from compress.recipe import DistillStepsSpec, QuantizeSpec
from compress.student import Student, inference_core
from edge_runtime.atomic import atomic_directory
from edge_runtime.errors import InputError
from edge_runtime.package.manifest import SamplerSpec
from models.aphidiff.graphs import DenoiserGraph, EncoderGraph
from models.data.cases import find_cases
from models.data.slices import SliceDataset


def teacher_student(run: Path) -> tuple[Student, dict[str, Any]]:
    """A `hidiff train` run's EMA weights as a stripped `Student` (no pruning), and its config.
    The bytes hashed are the bytes loaded (a run still training may write a newer one)."""
    run = Path(run)
    weights = checkpoint_file(run)
    data = weights.read_bytes()
    model, mc, doc = load_weights(run, data)
    info = {
        "run": run.name,
        "checkpoint": weights.relative_to(run).as_posix(),
        "checkpoint_sha256": sha256_bytes(data),
        "model": mc.model,
        "preset": mc.preset,
    }
    return Student(inference_core(model), mc, doc.get("mr_scales", {}), info), doc


def train_data(teacher: Student, data: Path, sequence: str) -> SliceDataset:
    """Training crops of the cohort's train split for one sequence."""
    if sequence not in teacher.mr_scales:
        raise InputError(f"the teacher was not trained on sequence {sequence}")
    return SliceDataset(find_cases(Path(data), "train"), teacher.mc.data, (sequence,))


def sampler_dict(student: Student, kind: str, steps: int) -> dict[str, Any]:
    """The manifest's sampler entry for `kind` with `steps` on the model's schedule."""
    return sampler_manifest(student.mc, PackagingConfig(sampler=kind, steps=steps))


def spec_of(sampler: dict[str, Any]) -> SamplerSpec:
    return SamplerSpec(
        sampler["kind"], sampler["steps"], tuple(sampler["timesteps"]), sampler["config"]
    )


def distill_steps(
    student: Student,
    teacher: Student,
    data: SliceDataset,
    spec: DistillStepsSpec,
    out: Path,
    cache: Path | None = None,
) -> list[float]:
    """Trajectory-distil `student` to `spec.steps` steps, save it at `out`; the losses. The
    teacher's trajectories are kept in `cache` (safetensors) when given, so a rerun skips them."""
    sampler = sampler_dict(student, spec.sampler, spec.steps)
    if cache is not None and cache.is_file():
        traj = Trajectories(**torch_load_file(str(cache)))
    else:
        teacher_spec = spec_of(sampler_dict(teacher, "ddim", spec.teacher_steps))
        traj = teacher_trajectories(
            teacher.model, data, teacher_spec, spec.trajectories, spec.batch
        )
        if cache is not None:
            tmp = cache.with_name(cache.name + ".partial")
            torch_save_file(traj.tensors(), str(tmp))
            tmp.replace(cache)
    losses = distil_trajectories(
        student.model,
        traj,
        student.mc,
        np.asarray(sampler["timesteps"]),
        spec.train_steps,
        spec.batch,
        spec.lr,
    )
    student.sampler = sampler
    student.save(out)
    return losses


def quantize_student(
    student: Student,
    data: Path,
    sequence: str,
    spec: QuantizeSpec,
    out: Path,
    export_psnr_db: float = 60.0,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Export `student` to fp32 ONNX (gated), quantize to `spec.precision` (gated), and write
    `out/graphs/{fp32,<precision>}/{encoder,denoiser}.onnx` and `out/quantize.json`.

    Calibration: `spec.calibration` training slices at the model's grid; gate feeds: two
    held-out slices (never the calibration ones)."""
    sampler = student.sampler or sampler_dict(
        student, student.mc.diffusion.sampler, student.mc.diffusion.sample_steps
    )
    sspec = spec_of(sampler)
    check = eval_set(Path(data), student.mc, sequence, 2, 0)
    calib = eval_set(Path(data), student.mc, sequence, spec.calibration, 1, ("train",))
    fp32 = export_graphs(
        student.model,
        (sequence,),
        check.ct,
        metadata or {},
        ExportConfig(psnr_min_db=export_psnr_db),
    )
    enc_cal, den_cal = sampler_feeds(student.model, sequence, calib.ct, calib.noise, sspec, 1)
    enc_chk, den_chk = sampler_feeds(student.model, sequence, check.ct, check.noise, sspec, 0)
    enc_mod, den_mod = EncoderGraph(student.model).eval(), DenoiserGraph(student.model).eval()
    info: dict[str, Any] = {
        "precision": spec.precision,
        "calibration": calib.describe(),
        "gate_slices": check.describe(),
        "export_gate_worst_db": min(g.worst_db for g in fp32.gates),
    }
    if spec.precision == "fp16":
        qe = to_fp16("encoder", fp32.encoder, enc_mod, stack_feeds(enc_chk), spec.psnr_min_db)
        qd = to_fp16("denoiser", fp32.denoiser, den_mod, stack_feeds(den_chk), spec.psnr_min_db)
        enc_bytes, den_bytes = qe.graph, qd.graph
        info["graphs"] = [qe.info(), qd.info()]
    else:
        qd = quantize_int8(
            "denoiser",
            fp32.denoiser,
            den_mod,
            den_cal,
            stack_feeds(den_chk),
            spec.psnr_min_db,
            spec.margin_db,
            spec.max_fp32_layers,
        )
        den_bytes = qd.graph
        info["graphs"] = [qd.info()]
        try:
            qe = quantize_int8(
                "encoder",
                fp32.encoder,
                enc_mod,
                enc_cal,
                stack_feeds(enc_chk),
                spec.psnr_min_db,
                spec.margin_db,
                spec.max_fp32_layers,
            )
            enc_bytes = qe.graph
            info["graphs"].append(qe.info())
        except ExportGateError as exc:
            # Measured, not guessed: the encoder's vector quantiser (argmin over the codebook)
            # flips codes under int8 activations; it runs once per slice, so it stays fp32.
            enc_bytes = fp32.encoder
            info["encoder_kept_fp32"] = str(exc)
    info["gates"] = {g["role"]: g["gate"]["psnr_db"] for g in info["graphs"]}
    with atomic_directory(Path(out), overwrite=True) as tmp:
        for name, blob in (
            ("fp32/encoder.onnx", fp32.encoder),
            ("fp32/denoiser.onnx", fp32.denoiser),
            (f"{spec.precision}/encoder.onnx", enc_bytes),
            (f"{spec.precision}/denoiser.onnx", den_bytes),
        ):
            (tmp / "graphs" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "graphs" / name).write_bytes(blob)
        (tmp / "quantize.json").write_text(json.dumps(info, indent=1) + "\n")
    return info

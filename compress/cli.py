"""`hidiff compress`: a whole recipe, or one stage, as commands.

    hidiff compress --teacher RUN --recipe compress/recipes/edge-cpu.yaml --out PACKAGE
                    [--data COHORT] [--work DIR]
    hidiff compress prune         RUN --out STUDENT [--ratio 0.75] [--importance magnitude]
    hidiff compress distill-steps STUDENT --teacher RUN --out STUDENT [--steps 4]
    hidiff compress quantize      STUDENT --out GRAPHS [--precision int8]
    hidiff compress export  RUN --data COHORT --out graphs/ [--sequence t2]
    hidiff compress package RUN --data COHORT --out PACKAGE [--sequence t2] [--sampler ddim]
                            [--steps 4] [--name NAME]

The recipe run (compress.pipeline) is resumable per stage and writes `PACKAGE.ledger.json`;
a stage that breaks a gate exits 2 naming the stage, with no package written.

`export` writes the two gated ONNX graphs and `export_gate.json`; `package` exports, computes the
torch reference and validation metrics, writes the package and verifies it through the
runtime. Both read a `hidiff train` run and a phantom cohort (held-out split) and refuse a
graph that does not match torch (exit 2, nothing written).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from compress.export_onnx import ExportConfig, export_graphs
from compress.packaging import (
    PackagingConfig,
    build_package,
    checkpoint_file,
    held_out,
    sha256_bytes,
)
from compress.student import load_student
from edge_runtime.atomic import atomic_directory, atomic_write_json
from edge_runtime.console import console
from edge_runtime.errors import InputError
from models.data.cases import find_cases, read_case
from models.training.predict import load_run

app = typer.Typer(
    help="Compression pipeline: a recipe end to end (--teacher/--recipe/--out) or one stage.",
    add_completion=False,
)

RunArg = Annotated[Path, typer.Argument(help="A `hidiff train` run folder.")]
DataOpt = Annotated[
    Path, typer.Option("--data", help="Phantom cohort (its held-out split is used).")
]


@app.callback(invoke_without_command=True)
def compress(
    ctx: typer.Context,
    teacher: Annotated[
        Path | None, typer.Option("--teacher", help="The teacher: a `hidiff train` run.")
    ] = None,
    recipe: Annotated[
        str | None, typer.Option("--recipe", help="Recipe YAML (or edge-cpu/hospital-gpu/apple).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Package folder to write.")] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Phantom cohort (default: the teacher's).")
    ] = None,
    work: Annotated[
        Path | None, typer.Option("--work", help="Stage folders (default: OUT.work).")
    ] = None,
) -> None:
    """Run a compression recipe on a teacher: resumable per stage, ledger beside the package."""
    if ctx.invoked_subcommand is not None:
        return
    if teacher is None or recipe is None or out is None:
        console.print(ctx.get_help())
        if teacher or recipe or out:
            raise InputError("hidiff compress needs --teacher, --recipe and --out together")
        raise typer.Exit(0)
    from compress.pipeline import run_recipe
    from compress.recipe import load_recipe

    ledger = run_recipe(teacher, load_recipe(recipe), out, data, work)
    last = ledger["stages"][-1]
    console.print(
        f"package {out}: {last.get('package_mb', 0):.2f} MB, {last.get('sampler_steps')} steps, "
        f"{last.get('cpu_latency_s_per_slice', 0):.3f} s/slice, masked SSIM "
        f"{last.get('masked_ssim', 0):.4f} (teacher {ledger['stages'][0]['masked_ssim']:.4f})"
    )
    console.print(f"ledger: {Path(out).with_name(Path(out).name + '.ledger.json')}")


@app.command("prune")
def prune_cmd(
    run: RunArg,
    out: Annotated[Path, typer.Option("--out", help="Student checkpoint folder to write.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Cohort (default: the run's).")
    ] = None,
    ratio: Annotated[float, typer.Option("--ratio", help="Channels removed per group.")] = 0.75,
    flops: Annotated[
        float | None, typer.Option("--flops", help="Instead of --ratio: FLOPs fraction kept.")
    ] = None,
    importance: Annotated[
        str, typer.Option("--importance", help="magnitude or taylor.")
    ] = "magnitude",
    steps: Annotated[int, typer.Option("--steps", help="Distillation steps after pruning.")] = 300,
    sequence: Annotated[str, typer.Option("--sequence", help="MR sequence.")] = "t2",
) -> None:
    """Prune a run's encoder and denoiser (torch-pruning) and distil it from the run."""
    from compress.prune import prune_stage
    from compress.recipe import PruneSpec
    from compress.stage_io import teacher_student, train_data

    spec = PruneSpec(importance=importance, ratio=ratio, flops=flops, steps=steps)
    teacher, doc = teacher_student(run)
    res = prune_stage(teacher, train_data(teacher, data or Path(doc["data"]), sequence), spec)
    res.student.save(out)
    console.print(f"pruned student -> {out} (ratio {res.ratio:.3f}, {len(res.losses)} steps)")


@app.command("distill-steps")
def distill_steps_cmd(
    student: Annotated[Path, typer.Argument(help="Student checkpoint (from prune).")],
    teacher: Annotated[Path, typer.Option("--teacher", help="The teacher run.")],
    out: Annotated[Path, typer.Option("--out", help="Student checkpoint folder to write.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Cohort (default: the teacher's).")
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Student sampler steps (1-4).")] = 4,
    trajectories: Annotated[int, typer.Option("--trajectories", help="Teacher samples.")] = 64,
    train_steps: Annotated[int, typer.Option("--train-steps", help="Optimiser steps.")] = 400,
    sequence: Annotated[str, typer.Option("--sequence", help="MR sequence.")] = "t2",
) -> None:
    """Distil the teacher's 50-step DDIM into a <= 4-step DDIM student (trajectory distillation)."""
    from compress.recipe import DistillStepsSpec
    from compress.stage_io import distill_steps, teacher_student, train_data

    spec = DistillStepsSpec(steps=steps, trajectories=trajectories, train_steps=train_steps)
    t, doc = teacher_student(teacher)
    losses = distill_steps(
        load_student(student), t, train_data(t, data or Path(doc["data"]), sequence), spec, out
    )
    console.print(f"{steps}-step student -> {out} (loss {losses[0]:.4f} -> {losses[-1]:.4f})")


@app.command("quantize")
def quantize_cmd(
    student: Annotated[Path, typer.Argument(help="Student checkpoint (from distill-steps).")],
    data: Annotated[Path, typer.Option("--data", help="Phantom cohort (calibration, gate).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the graphs (new).")],
    precision: Annotated[str, typer.Option("--precision", help="int8 or fp16.")] = "int8",
    sequence: Annotated[str, typer.Option("--sequence", help="MR sequence.")] = "t2",
) -> None:
    """Export a student to ONNX and quantize it (NNCF int8 or fp16), gated at 35 dB vs torch."""
    from compress.recipe import QuantizeSpec
    from compress.stage_io import quantize_student

    info = quantize_student(
        load_student(student), data, sequence, QuantizeSpec(precision=precision), out
    )
    console.print(f"{precision} graphs -> {out}: {json.dumps(info['gates'])}")


@app.command()
def export(
    run: RunArg,
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the two graphs (new).")],
    sequence: Annotated[
        list[str] | None,
        typer.Option("--sequence", help="MR sequence(s) the gate checks (default: all)."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="Split the gate's slices come from.")
    ] = "test",
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (>= 18).")] = 18,
) -> None:
    """Export a run's encoder and denoiser to ONNX, refused below 60 dB PSNR vs torch."""
    if opset < 18:
        raise InputError(f"--opset {opset}: the export needs opset >= 18")
    model, mc, doc = load_run(run)
    seqs = tuple(sequence or doc.get("mr_scales", {}))
    cfg = PackagingConfig(sequences=seqs)
    case = read_case(find_cases(data, split)[0], mc.data.ct_phases, seqs[:1])
    ct = held_out(case, mc, seqs[0], cfg.gate_slices).ct
    weights_sha = sha256_bytes(checkpoint_file(run).read_bytes())
    graphs = export_graphs(
        model,
        seqs,
        ct,
        {"hidiff.run": Path(run).name, "hidiff.checkpoint_sha256": weights_sha},
        ExportConfig(opset=opset),
    )
    with atomic_directory(out) as tmp:
        (tmp / "encoder.onnx").write_bytes(graphs.encoder)
        (tmp / "denoiser.onnx").write_bytes(graphs.denoiser)
        atomic_write_json(tmp / "export_gate.json", [g.to_dict() for g in graphs.gates])
    worst = min(g.worst_db for g in graphs.gates)
    console.print(f"exported {out}: gate passed, worst output {worst:.1f} dB vs torch")


@app.command()
def package(
    run: RunArg,
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Package folder to write (new).")],
    sequence: Annotated[
        list[str] | None,
        typer.Option("--sequence", help="MR sequence(s) offered (default: all the run learned)."),
    ] = None,
    sampler: Annotated[str, typer.Option("--sampler", help="ddim, ddpm or dpm_solver++.")] = "ddim",
    steps: Annotated[int, typer.Option("--steps", help="Sampler steps.")] = 4,
    name: Annotated[str | None, typer.Option("--name", help="Package name.")] = None,
    reference_slices: Annotated[
        int, typer.Option("--reference-slices", help="Self-check slices per reference case.")
    ] = 4,
    validation_cases: Annotated[
        int, typer.Option("--validation-cases", help="Held-out cases scored.")
    ] = 2,
    validation_slices: Annotated[
        int | None,
        typer.Option(
            "--validation-slices", help="Liver slices scored per case, evenly spaced (all)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out.")] = False,
) -> None:
    """Build a verified fp32 edge package from a run: graphs, manifest, reference, metrics."""
    cfg = PackagingConfig(
        sequences=tuple(sequence) if sequence else None,
        sampler=sampler,
        steps=steps,
        name=name,
        reference_slices=reference_slices,
        validation_cases=validation_cases,
        validation_slices=validation_slices,
    )
    pkg, summary = build_package(run, data, out, cfg, overwrite=overwrite)
    console.print(f"package {pkg.name} -> {out} ({summary['bytes'] / 1e6:.1f} MB): verify passed")
    for seq, val in summary["validation"].items():
        v = val["metrics"]
        console.print(
            f"  {seq}: SSIM {v['ssim']:.3f}, body SSIM {v['ssim_body']:.3f}, PSNR "
            f"{v['psnr_db']:.2f} dB over {val['slices']} held-out slices (torch model)"
        )
    print(json.dumps({k: summary[k] for k in ("name", "package", "bytes", "seconds")}))

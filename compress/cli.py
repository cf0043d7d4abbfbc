"""`hidiff compress export|package`: the export and packaging stages as commands.

    hidiff compress export  RUN --data COHORT --out graphs/ [--sequence t2]
    hidiff compress package RUN --data COHORT --out PACKAGE [--sequence t2] [--sampler ddim]
                            [--steps 4] [--name NAME]

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
from edge_runtime.atomic import atomic_directory, atomic_write_json
from edge_runtime.console import console
from edge_runtime.errors import InputError
from models.data.cases import find_cases, read_case
from models.training.predict import load_run

app = typer.Typer(
    help="Compression pipeline stages: export (ONNX, gated) and package (edge package).",
    no_args_is_help=True,
    add_completion=False,
)

RunArg = Annotated[Path, typer.Argument(help="A `hidiff train` run folder.")]
DataOpt = Annotated[
    Path, typer.Option("--data", help="Phantom cohort (its held-out split is used).")
]


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

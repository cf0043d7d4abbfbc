"""`hidiff bench device` and `hidiff bench report`, registered on the `bench` group.

`benchmarks/cli.py` calls `register(app)`; heavy imports stay inside the commands so that
`hidiff --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    from edge_runtime.errors import InputError

    if not text:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{option}: comma-separated integers, got {text!r}") from None


def _names(values: list[str] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


def device(
    package: Annotated[
        list[Path],
        typer.Option(
            "--package",
            help="Model package folder; repeat. The first is the "
            "reference of the ratios (give the full model first).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Result JSON (written atomically).")],
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            help="auto, cpu, cuda, openvino[:GPU|NPU], qnn, coreml, "
            "directml; repeat or comma-separate.",
        ),
    ] = None,
    precision: Annotated[
        list[str] | None,
        typer.Option("--precision", help="fp32, fp16, int8 (default: every one shipped)."),
    ] = None,
    grid: Annotated[
        str | None,
        typer.Option(
            "--grid",
            help="Comma-separated input slice sizes, e.g. 256,512: G x G CT slices at the "
            "package's field of view, resampled by the runtime to the package grid and back "
            "inside the timed call (default: the engine alone on each package's own grid).",
        ),
    ] = None,
    batch: Annotated[str, typer.Option("--batch", help="Comma-separated batch sizes.")] = "1,4",
    repeats: Annotated[int, typer.Option("--repeats", help="Timed calls (median over them).")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls after the first.")] = 3,
    threads: Annotated[
        int | None, typer.Option("--threads", help="Intra-op threads (default: all cores).")
    ] = None,
    extrapolate_above: Annotated[
        float | None,
        typer.Option(
            "--extrapolate-above",
            help="Seconds: a configuration whose call would take longer (predicted from the "
            "first call) is timed as --repeats encoder calls + --repeats single denoiser steps "
            "and extrapolated to the sampler's steps (flagged in the JSON and the report). "
            "Default: DeviceBenchConfig.extrapolate_above_s (benchmarks/device/config.py).",
        ),
    ] = None,
    torch_reference: Annotated[
        str,
        typer.Option(
            "--torch-reference",
            help="Training run folder of the teacher, timed in "
            "PyTorch eager with its default sampler; preset:NAME for an untrained model of a "
            "preset's shape (e.g. preset:full); or `none`.",
        ),
    ] = "none",
    torch_timed_steps: Annotated[
        int | None,
        typer.Option(
            "--torch-timed-steps",
            help="Time only K denoiser steps of the teacher and "
            "extrapolate (for teachers too slow to run whole).",
        ),
    ] = None,
    torch_repeats: Annotated[
        int, typer.Option("--torch-repeats", help="Whole teacher loops timed.")
    ] = 3,
) -> None:
    """Latency, throughput, memory and size of packages on this device (one JSON record)."""
    from benchmarks.device.config import DeviceBenchConfig, TorchReferenceConfig
    from benchmarks.device.run import run_device_bench

    cfg = DeviceBenchConfig(
        repeats=repeats,
        warmup=warmup,
        batches=_ints(batch, "--batch") or (1,),
        grids=_ints(grid, "--grid"),
        providers=_names(provider) or ("auto",),
        precisions=_names(precision),
        threads=threads,
        **({} if extrapolate_above is None else {"extrapolate_above_s": extrapolate_above}),
    )
    ref = torch_reference.strip()
    run: Path | str | None = None
    if ref.lower() != "none":
        run = ref if ref.startswith("preset:") else Path(ref)
    tcfg = TorchReferenceConfig(timed_steps=torch_timed_steps, repeats=torch_repeats)
    record = run_device_bench(package, out, cfg, run, tcfg, command=["hidiff", *sys.argv[1:]])
    for r in record["results"]:
        head = f"{r['package_name']} {r['provider_asked']} {r['precision_asked']} "
        head += f"{r['grid']}^2 b{r['batch']}: "
        if r.get("extrapolated_from_steps"):
            head += f"(extrapolated from {r['extrapolated_from_steps']} steps) "
        if r["status"] != "ok":
            typer.echo(head + f"{r['status']} ({r['reason']})")
            continue
        typer.echo(
            head + f"{r['latency_slice_s']['p50'] * 1e3:.1f} ms/slice p50, "
            f"{r['throughput_slices_per_s']:.2f} slices/s, peak RSS {r['peak_rss_mib']:.0f} MiB "
            f"on {r['provider_used']}"
        )
    for t in record["torch_reference"]["rows"]:
        if t["status"] == "ok":
            typer.echo(
                f"torch {t['run_name']} b{t['batch']}: {t['latency_slice_s']['p50'] * 1e3:.0f} "
                f"ms/slice p50{' (extrapolated)' if t['extrapolated'] else ''}"
            )
        else:
            typer.echo(f"torch reference: {t['status']} ({t['reason']})")
    typer.echo(str(out))


def report(
    device_json: Annotated[Path, typer.Option("--device", help="`hidiff bench device` JSON.")],
    out: Annotated[Path, typer.Option("--out", help="Report folder (written atomically).")],
    accuracy: Annotated[
        Path | None,
        typer.Option("--accuracy", help="`hidiff bench accuracy` output folder (summary.json)."),
    ] = None,
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="Compression ledger JSON (per stage).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out.")] = False,
) -> None:
    """One offline HTML report, PNG figures and a markdown summary of the benchmarks."""
    from benchmarks.report.build import build_report

    made = build_report(device_json, out, accuracy, ledger, overwrite=overwrite)
    for line in made["notes"]:
        typer.echo(f"note: {line}")
    typer.echo(str(Path(out) / "report.html"))


def register(app: typer.Typer) -> None:
    """Add `device` and `report` to the `hidiff bench` group."""
    app.command("device")(device)
    app.command("report")(report)

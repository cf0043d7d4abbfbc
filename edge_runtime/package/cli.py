"""`hidiff package inspect PATH` and `hidiff verify PACKAGE`.

`inspect` shows what a package is (its manifest, readably) and whether it is intact (every
file's sha256); `verify` proves it runs correctly on this device by reproducing its shipped
reference outputs. Tables go to stdout; exit code 0 when all is well, 2 when not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import onnxruntime as ort
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edge_runtime.errors import PackageError
from edge_runtime.package.loader import check_file, load_package, read_manifest
from edge_runtime.package.manifest import Manifest
from edge_runtime.package.selfcheck import (
    VerifyReport,
    last_record,
    save_record,
    verify_package,
)
from edge_runtime.providers import PROFILE_NAMES, RuntimeOptions

EXIT_FAILED = 2

app = typer.Typer(
    help="Inspect HiDiff-Edge model packages.",
    no_args_is_help=True,
    add_completion=False,
)


def _out() -> Console:
    return Console(soft_wrap=False, width=120)


def _pairs(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for k, v in rows:
        table.add_row(escape(k), escape(v))
    return table


def _fmt(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def manifest_tables(m: Manifest) -> list[Table]:
    """The manifest as rich tables: overview, files, provenance and validation, reference."""
    t = m.task
    s = m.sampler
    overview = _pairs(
        f"package {m.name}",
        [
            ("format", str(m.format_version)),
            ("description", m.description or "-"),
            ("inputs", ", ".join(f"{i.name} ({i.modality}, {i.phase})" for i in t.inputs)),
            (
                "outputs",
                ", ".join(
                    f"{o.name} ({o.modality} {o.sequence}, {o.mr_range[0]:g}..{o.mr_range[1]:g})"
                    for o in t.outputs
                ),
            ),
            ("context slices", f"{t.context_slices} each side -> {t.in_channels} channels"),
            (
                "grid",
                f"{m.grid.shape[0]} x {m.grid.shape[1]} px at "
                f"{m.grid.spacing_mm[0]:g} x {m.grid.spacing_mm[1]:g} mm"
                + (
                    f", slices {m.grid.slice_thickness_mm:g} mm"
                    if m.grid.slice_thickness_mm
                    else ""
                ),
            ),
            (
                "normalisation",
                f"CT window {m.normalisation.ct_hu_window} HU -> {m.normalisation.model_range}; "
                f"MR scaling {m.normalisation.mr_method}"
                + (
                    f" (percentile {m.normalisation.mr_percentile:g})"
                    if m.normalisation.mr_percentile
                    else ""
                ),
            ),
            (
                "sampler",
                f"{s.kind}, {s.steps} steps"
                + (f", timesteps {list(s.timesteps)}" if s.timesteps else "")
                + (f", {_fmt(dict(s.config))}" if s.config else ""),
            ),
            ("precisions", ", ".join(m.precisions)),
            *[(f"coreml {role}", path) for role, path in m.coreml.items()],
        ],
    )
    files = Table(title="files", title_justify="left")
    for col in ("path", "bytes", "sha256"):
        files.add_column(col, justify="right" if col == "bytes" else "left")
    for e in m.files:
        files.add_row(escape(e.path), f"{e.bytes:,}", e.sha256[:16] + "...")
    prov = _pairs("provenance", [(k, _fmt(v)) for k, v in m.provenance.items()] or [("-", "-")])
    val = _pairs("validation", [(k, _fmt(v)) for k, v in m.validation.items()] or [("-", "-")])
    r = m.reference
    ref = _pairs(
        "reference self-check",
        [
            ("cases", ", ".join(c.name for c in r.cases)),
            ("made with", ", ".join((r.precision, *r.cases[0].outputs))),
            ("pass if", f"PSNR >= {r.psnr_min_db:g} dB (range {r.data_range:g})"),
            *[
                (f"metric {k}", f"{v:.4g} +/- {r.metric_tolerance[k]:g}")
                for k, v in r.metrics.items()
            ],
            *[
                (f"metric {k} ({p})", f"{v:.4g} +/- {own.metric_tolerance[k]:g}")
                for p, own in r.by_precision.items()
                for k, v in own.metrics.items()
            ],
        ],
    )
    return [overview, files, prov, val, ref]


def report_table(report: VerifyReport) -> Table:
    table = Table(
        title=f"verify {report.package} on {report.provider} ({report.precision})",
        title_justify="left",
    )
    for col in ("check", "measured", "required", "time", "result"):
        table.add_column(col)

    def verdict(ok: bool) -> str:
        return "[green]pass[/]" if ok else "[bold red]FAIL[/]"

    for c in report.cases:
        table.add_row(
            escape(f"{c.name}: PSNR vs shipped {report.compared_with} output"),
            f"{c.psnr_db:.1f} dB",
            f">= {c.psnr_min_db:g} dB",
            f"{c.seconds:.2f} s",
            verdict(c.passed),
        )
    for m in report.checks:
        table.add_row(
            f"{m.name} vs reference targets",
            f"{m.value:.4g}",
            f"{m.shipped:.4g} +/- {m.tolerance:g}",
            "",
            verdict(m.passed),
        )
    return table


@app.command("inspect")
def inspect(
    path: Annotated[Path, typer.Argument(help="Package folder (holding manifest.json).")],
    self_check: Annotated[
        bool,
        typer.Option("--self-check", help="Also run the reference self-check (`hidiff verify`)."),
    ] = False,
    provider: Annotated[str, typer.Option("--provider", "-p", help="For --self-check.")] = "auto",
) -> None:
    """Print a package's manifest and whether its files are intact."""
    package = read_manifest(path)
    root, manifest = package.root, package.manifest
    out = _out()
    for table in manifest_tables(manifest):
        out.print(table)
    problems = []
    for entry in manifest.files:
        try:
            check_file(root, entry)
        except PackageError as exc:
            problems.append(str(exc))
    unlisted = package.unlisted_files()
    if unlisted:
        out.print(f"[yellow]not in the manifest (ignored):[/] {escape(', '.join(unlisted))}")
    if problems:
        out.print("[bold red]integrity: FAILED[/]")
        for p in problems:
            out.print(f"  - {escape(p)}")
        raise typer.Exit(EXIT_FAILED)
    out.print(f"[green]integrity: ok[/] ({len(manifest.files)} files match their sha256)")
    if self_check:
        report = verify_package(load_package(root), provider)
        save_record(report, package)
        out.print(report_table(report))
        if not report.passed:
            raise typer.Exit(EXIT_FAILED)
        return
    out.print(describe_record(last_record(package)))


def describe_record(record: dict | None) -> str:
    """One line on the last self-check of this package on this device."""
    if record is None:
        return "self-check on this device: never run; run `hidiff verify PACKAGE`"
    verdict = "[green]passed[/]" if record.get("passed") else "[bold red]FAILED[/]"
    line = verdict + escape(
        f" {record.get('date')} on {record.get('provider')} ({record.get('precision')}, "
        f"onnxruntime {record.get('onnxruntime')})"
    )
    line = "self-check on this device: " + line
    if record.get("onnxruntime") != ort.__version__:
        line += f"; onnxruntime is now {ort.__version__}: run `hidiff verify` again"
    return line


def verify(
    package: Annotated[Path, typer.Argument(help="Package folder (holding manifest.json).")],
    provider: Annotated[
        str,
        typer.Option("--provider", "-p", help=f"One of {', '.join(PROFILE_NAMES)} (openvino:NPU)."),
    ] = "auto",
    precision: Annotated[
        str | None,
        typer.Option("--precision", help="fp32, fp16 or int8 (default: the provider's best)."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not cache optimised graphs.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of a table.")
    ] = False,
) -> None:
    """Run a package's reference cases on this device and compare with its shipped outputs."""
    pkg = load_package(package)
    options = RuntimeOptions(cache_dir=None) if no_cache else RuntimeOptions()
    report = verify_package(pkg, provider, precision, options)
    save_record(report, pkg)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        if not report.passed:
            raise typer.Exit(EXIT_FAILED)
        return
    out = _out()
    out.print(report_table(report))
    if report.passed:
        out.print(f"[green]verified[/]: {pkg.name} reproduces its reference on {report.provider}")
        return
    out.print(f"[bold red]verification FAILED[/]: {pkg.name} on {report.provider}")
    raise typer.Exit(EXIT_FAILED)

"""`hidiff synthesize INPUT --package P --sequence t2 --out OUT`: one scan or a whole cohort.

One scan: INPUT is an image file or a DICOM series folder; OUT is the NIfTI file to write
(`.nii.gz`; a folder gets `synth_mr_<seq>.nii.gz` inside) or, with `--format dicom`, the folder
of the derived series. Cohort: INPUT is a folder of cases (`edge_runtime.cohort`); OUT gets one
folder per case, written atomically, finished cases skipped on a rerun, failures listed at the
end (exit code 2 if any). Everything is checked (package, sequence, input contract) before
anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edge_runtime.cohort import (
    FORMATS,
    RECORD_NAME,
    is_cohort,
    output_name,
    read_case_input,
    record,
    run_cohort,
    write_result,
)
from edge_runtime.console import console, progress
from edge_runtime.errors import InputError
from edge_runtime.package.loader import load_package
from edge_runtime.providers import PROFILE_NAMES
from edge_runtime.synthesizer import Synthesizer, check_input

EXIT_FAILED = 2


def _single_target(out: Path, sequence: str, fmt: str) -> Path:
    name = out.name.lower()
    if fmt == "nifti" and (name.endswith(".nii.gz") or name.endswith(".nii")):
        return out
    if fmt == "nifti" and out.suffix:
        raise InputError(f"--out {out}: a NIfTI output ends in .nii.gz (or give a folder)")
    if fmt == "dicom":
        return out
    return out / output_name(sequence, fmt)


def synthesize(
    input: Annotated[
        Path, typer.Argument(help="CT image file, DICOM series folder, or a folder of cases.")
    ],
    package: Annotated[Path, typer.Option("--package", help="Model package folder.")],
    out: Annotated[Path, typer.Option("--out", help="Output file/folder (see above).")],
    sequence: Annotated[
        str, typer.Option("--sequence", help="MR sequence to synthesize: t2, t1 or t1c.")
    ] = "t2",
    fmt: Annotated[str, typer.Option("--format", help="nifti or dicom.")] = "nifti",
    provider: Annotated[
        str, typer.Option("--provider", "-p", help=f"One of {', '.join(PROFILE_NAMES)}.")
    ] = "auto",
    precision: Annotated[
        str | None, typer.Option("--precision", help="fp32, fp16 or int8 (default: best).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Sampler steps (default: the package's).")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Slices per model call.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the initial noise.")] = 0,
) -> None:
    """Synthesize an MR volume in the CT's geometry, for one scan or a cohort of cases."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    if not input.exists():
        raise InputError(f"{input}: no such file or folder")
    pkg = load_package(package)
    phase = pkg.manifest.task.inputs[0].phase
    if is_cohort(input, phase):
        synth = Synthesizer(pkg, provider=provider, precision=precision, batch=batch)
        _cohort(synth, input, out, sequence, fmt, steps, seed)
        return
    # One scan: every check before any session is made or anything is written.
    ct = read_case_input(input, phase)
    check_input(pkg.manifest, ct)
    target = _single_target(out, sequence, fmt)
    if target.exists():
        raise InputError(f"{target} already exists; remove it or choose another --out")
    synth = Synthesizer(pkg, provider=provider, precision=precision, batch=batch)
    synth.output_for(sequence)
    with progress(transient=True) as bar:
        task = bar.add_task(f"synthesize {sequence}", total=None)
        result = synth.run(
            ct, sequence, steps, seed, on_slice=lambda d, n: bar.update(task, completed=d, total=n)
        )
    write_result(result.image, ct, target, fmt, synth)
    if fmt == "nifti":
        # The record sits beside the image: what made it, from what, how fast.
        from edge_runtime.atomic import atomic_write_json

        atomic_write_json(
            target.with_name(target.name.split(".")[0] + ".json"),
            record(result, input, synth, sequence, seed),
        )
    s = result.stats
    console.print(
        f"synthesized {escape(str(target))}: {s.slices} slices, model grid "
        f"{s.model_grid[1]}x{s.model_grid[2]} ({s.tiles_per_slice} tile(s)/slice), "
        f"{s.seconds_per_slice:.3f} s/slice on {s.provider} ({s.precision}, {s.steps} steps)"
    )


def _cohort(
    synth: Synthesizer,
    cohort: Path,
    out: Path,
    sequence: str,
    fmt: str,
    steps: int | None,
    seed: int,
) -> None:
    with progress() as bar:
        task = bar.add_task("cohort", total=None)

        def on_case(name: str, i: int, n: int) -> None:
            bar.update(task, completed=i, total=n, description=f"case {escape(name)}")

        outcomes = run_cohort(synth, cohort, out, sequence, fmt, steps, seed, on_case)
        bar.update(task, completed=len(outcomes), description="cohort")
    done = sum(o.status == "done" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    console.print(
        f"cohort {escape(str(cohort))} -> {escape(str(out))}: {done} synthesized, "
        f"{skipped} already finished (skipped), {len(failed)} failed"
    )
    if failed:
        table = Table(title="failed cases", title_justify="left")
        table.add_column("case")
        table.add_column("why")
        for o in failed:
            table.add_row(escape(o.case), escape(o.reason))
        console.print(table)
        console.print(f"each finished case holds {RECORD_NAME}; rerun to retry the failed ones")
        raise typer.Exit(EXIT_FAILED)

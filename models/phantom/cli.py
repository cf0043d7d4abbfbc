"""`hidiff phantom`: render one case, a cohort, or time the renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_runtime.console import console, progress
from edge_runtime.errors import InputError
from models.phantom.config import PRIMARY_LESION_TYPES, SUPPORTED_GRIDS, load_config

app = typer.Typer(
    name="phantom",
    help="The procedural liver phantom: paired multi-phase CT and multi-sequence MRI with every "
    "label and the true breathing motion (docs/phantom.md).",
    no_args_is_help=True,
)

_CONFIG_HELP = "JSON file of config overrides (nested like case.json's config)."
_TYPES_HELP = (
    f"Comma-separated primary lesion types to draw, from {', '.join(PRIMARY_LESION_TYPES)}."
)
_GRID_HELP = f"In-plane size, one of {', '.join(map(str, SUPPORTED_GRIDS))} (FOV 360 mm)."


def _check_sizes(grid: int, slices: int) -> None:
    if grid not in SUPPORTED_GRIDS:
        raise InputError(f"unsupported --grid {grid}; choose one of {list(SUPPORTED_GRIDS)}")
    if slices < 4:
        raise InputError(f"--slices must be at least 4, got {slices}")


@app.command()
def case(
    seed: Annotated[int, typer.Option("--seed", help="Patient seed (>= 0).")],
    out: Annotated[Path, typer.Option("--out", help="Case folder to write.")],
    grid: Annotated[int, typer.Option("--grid", help=_GRID_HELP)] = 256,
    slices: Annotated[
        int, typer.Option("--slices", help="Number of slices over the 200 mm z-FOV.")
    ] = 48,
    four_dct: Annotated[
        bool, typer.Option("--4dct", help="Also write ten 4D-CT phases and fields.")
    ] = False,
    realisation: Annotated[
        int, typer.Option("--realisation", help="Acquisition realisation (noise).")
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing folder.")
    ] = False,
    config: Annotated[Path | None, typer.Option("--config", help=_CONFIG_HELP)] = None,
    lesion_types: Annotated[str | None, typer.Option("--lesion-types", help=_TYPES_HELP)] = None,
) -> None:
    """Render one synthetic patient into a case folder."""
    from models.phantom.case import render_case
    from models.phantom.io import check_output, write_case

    _check_sizes(grid, slices)
    cfg = load_config(config, lesion_types)
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")
    if realisation < 0:
        raise InputError(f"--realisation must be >= 0, got {realisation}")
    if out.exists() and not overwrite:
        raise InputError(f"{out} already exists; pass --overwrite or choose another folder")
    check_output(out)
    with console.status(f"rendering phantom seed {seed} at {grid}^2 x {slices}"):
        c = render_case(
            seed,
            cfg,
            grid=grid,
            slices=slices,
            realisation=realisation,
            four_dct=four_dct,
            keep_extras=False,
        )
        write_case(c, out, overwrite=overwrite)
    ceil = c.meta["ssim_ceiling"].get("t2", float("nan"))
    console.print(
        f"wrote {out}  (liver {c.meta['liver_volume_ml']:.0f} mL, {len(c.lesion_table)} lesions, "
        f"T2 SSIM ceiling {ceil:.3f})"
    )


@app.command()
def cohort(
    n: Annotated[int, typer.Option("--n", help="Number of patients.")],
    seed: Annotated[int, typer.Option("--seed", help="Cohort seed (case seeds, split).")],
    out: Annotated[Path, typer.Option("--out", help="Cohort folder (resumable).")],
    grid: Annotated[int, typer.Option("--grid", help=_GRID_HELP)] = 256,
    slices: Annotated[
        int, typer.Option("--slices", help="Number of slices over the 200 mm z-FOV.")
    ] = 48,
    config: Annotated[Path | None, typer.Option("--config", help=_CONFIG_HELP)] = None,
    lesion_types: Annotated[str | None, typer.Option("--lesion-types", help=_TYPES_HELP)] = None,
) -> None:
    """Render a cohort with a manifest and a fixed train/val/test split; resumes if interrupted."""
    from models.phantom.cohort import write_cohort

    _check_sizes(grid, slices)
    cfg = load_config(config, lesion_types)
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    with progress() as bar:
        task = bar.add_task("phantom cohort", total=n)

        def step(case_id: str, rendered: bool) -> None:
            bar.update(
                task,
                advance=1,
                description=f"{case_id} {'rendered' if rendered else 'done before'}",
            )

        write_cohort(n, seed, out, grid=grid, slices=slices, config=cfg, on_case=step)
    console.print(f"cohort of {n} in {out} (manifest: {out / 'cohort.json'})")


@app.command()
def bench(
    out: Annotated[Path, typer.Option("--out", help="Folder for the JSON.")] = Path(
        "benchmarks/results"
    ),
    repeats: Annotated[
        int, typer.Option("--repeats", help="Renders per size (median reported).")
    ] = 3,
) -> None:
    """Seconds to render 256^2 x 48 and 512^2 x 64 cases on one core (targets 10 s, 60 s)."""
    from models.phantom.bench import run_bench

    if repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {repeats}")
    with console.status("timing the phantom renderer on one core"):
        path = run_bench(out, repeats=repeats)
    console.print(f"wrote {path}")
    typer.echo(path.read_text())

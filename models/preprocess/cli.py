"""The `hidiff prepare` command (entry point `models.preprocess.cli:prepare`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edge_runtime.errors import InputError
from models.preprocess.prepare import PrepareConfig, prepare_cohort
from models.preprocess.registration import METHODS, RegistrationConfig


def _grids(text: str) -> tuple[int, ...]:
    try:
        grids = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise InputError(f"--grid must be comma-separated integers, got {text!r}") from exc
    if not grids:
        raise InputError("--grid is empty")
    return grids


def prepare(
    data: Annotated[
        Path, typer.Option("--data", help="Cohort folder (cohort.json) or one case folder.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder; re-running resumes.")],
    method: Annotated[
        str, typer.Option("--method", help="elastix, syn, or motion (needs a 4D-CT).")
    ] = "elastix",
    grid: Annotated[str, typer.Option("--grid", help="In-plane grids to write.")] = "128,256,512",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Cases in parallel.")] = 1,
    liver_mask: Annotated[
        bool,
        typer.Option(
            "--liver-mask",
            help="Use the CT and MR liver labels: metric in the CT liver + 5 mm; Elastix also "
            "matches the two livers' distance maps (the accurate mode, docs/preprocess.md).",
        ),
    ] = False,
) -> None:
    """Register MR to CT, check, normalise and write training pairs with QA reports."""
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cfg = PrepareConfig(
        registration=RegistrationConfig(method=method), grids=_grids(grid), liver_mask=liver_mask
    )
    rows = prepare_cohort(data, out, cfg, workers=workers)
    excluded = sum(r["excluded"] for r in rows)
    typer.echo(f"{len(rows)} cases in {out} ({excluded} excluded by QA; see summary.md)")

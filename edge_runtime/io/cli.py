"""`hidiff info PATH`: what a scan is, before anything is done with it.

Prints modality, size, spacing, orientation code, value range, the series found (DICOM folders)
and any warnings; all of it is computed before anything is printed, so a bad input gives one
error line (exit 2) and no partial report. Never prints patient identity.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from edge_runtime.io.read import inspect_image


def info(
    path: Annotated[Path, typer.Argument(help="DICOM folder or file, NIfTI, MHA/MHD or NRRD.")],
    series: Annotated[
        str | None,
        typer.Option("--series", help="SeriesInstanceUID or SeriesDescription, if several."),
    ] = None,
    min_slices: Annotated[
        int, typer.Option("--min-slices", min=1, help="Slices a volume needs (1: one image).")
    ] = 2,
    one_series: Annotated[
        bool,
        typer.Option("--one-series", help="Read all images of the folder as one series."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Describe an image: modality, size, spacing, orientation, value range, series, warnings."""
    image, found = inspect_image(
        path, series=series, min_slices=min_slices, merge_series=one_series
    )
    meta = image.metadata
    report = {
        "path": str(path),
        "format": meta.source_format,
        "modality": meta.modality or "unknown",
        "size_xyz": list(image.size),
        "spacing_mm": [round(s, 6) for s in image.spacing],
        "origin_mm": [round(o, 4) for o in image.origin],
        "orientation": image.orientation_code,
        "value_range": [float(np.min(image.voxels)), float(np.max(image.voxels))],
        "series_description": meta.series_description,
        "phase_hint": meta.phase_hint,
        "series_found": [
            {
                "uid": s.uid,
                "description": s.description,
                "modality": s.modality,
                "files": s.n_images,
            }
            for s in found
        ],
        "warnings": list(meta.warnings),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    lo, hi = report["value_range"]
    lines = [
        f"path:         {path}",
        f"format:       {report['format']}",
        f"modality:     {report['modality']}",
        "size (x,y,z): " + " x ".join(str(s) for s in image.size),
        "spacing (mm): " + " x ".join(f"{s:.4g}" for s in image.spacing),
        f"orientation:  {report['orientation']}",
        f"value range:  {lo:.6g} .. {hi:.6g}",
    ]
    if meta.series_description:
        lines.append(f"series:       {meta.series_description}")
    if meta.phase_hint:
        lines.append(f"phase hint:   {meta.phase_hint}")
    if found:
        lines.append(f"series found: {len(found)}")
        lines.extend(f"  - {s.label()}" for s in found)
    for w in meta.warnings:
        lines.append(f"warning:      {w}")
    typer.echo("\n".join(lines))

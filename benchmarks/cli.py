"""`hidiff bench`: the benchmark commands: accuracy, device (speed, memory, size) and report.

Registered through the `hidiff.commands` entry point `bench = "benchmarks.cli:app"`; the
runtime's root command loads it without importing it by name. Heavy imports happen inside the
commands so `hidiff --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="bench",
    help="Benchmarks: accuracy against the truth, on-device speed and memory, the report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Benchmarks of accuracy, speed and memory; every result is JSON with provenance."""


@app.command("accuracy")
def accuracy(
    pred: Annotated[
        list[str],
        typer.Option(
            "--pred",
            help="NAME=DIR of predictions: DIR/<case-id>/mr_<t1|t2|t1c>.nii.gz on the truth's "
            "grid. Repeat for several methods; the first is the reference of the paired tests.",
        ),
    ],
    truth: Annotated[
        Path, typer.Option("--truth", help="Phantom cohort folder (or one case folder).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder: CSVs, summary.json, figures.")],
    split: Annotated[
        str | None, typer.Option("--split", help="Only the cases of this cohort split.")
    ] = None,
    sequences: Annotated[
        str | None,
        typer.Option("--sequences", help="Comma-separated subset of t1,t2,t1c (default: all)."),
    ] = None,
    margin: Annotated[
        float,
        typer.Option(
            "--margin",
            help="Non-inferiority margin on the mean paired SSIM, whole-image and liver-masked.",
        ),
    ] = 0.01,
    worst: Annotated[int, typer.Option("--worst", min=0, help="Worst cases shown per method.")] = 2,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out.")
    ] = False,
    sequence_check: Annotated[
        str,
        typer.Option(
            "--sequence-check",
            help="refuse: a prediction whose tissue contrast matches another sequence is an "
            "error (a mislabelled file); warn: log it and judge the file as named (predictions a "
            "package wrote itself).",
        ),
    ] = "refuse",
) -> None:
    """Judge prediction folders against the truth: per-case CSV, summary JSON, figures."""
    from benchmarks.accuracy.cohort import SEQUENCE_CHECKS, SEQUENCES, CohortConfig
    from benchmarks.accuracy.evaluate import AccuracyConfig
    from benchmarks.accuracy.run import parse_predictions, run_accuracy
    from edge_runtime.errors import InputError

    if sequence_check not in SEQUENCE_CHECKS:
        raise InputError(
            f"--sequence-check: {sequence_check!r}; use {' or '.join(SEQUENCE_CHECKS)}"
        )

    seqs = None
    if sequences:
        seqs = [s.strip().lower() for s in sequences.split(",") if s.strip()]
        unknown = [s for s in seqs if s not in SEQUENCES]
        if unknown:
            raise InputError(f"--sequences: unknown {', '.join(unknown)}; use t1, t2, t1c")
    summary = run_accuracy(
        parse_predictions(pred),
        truth,
        out,
        split=split,
        sequences=seqs,
        margin=margin,
        worst=worst,
        overwrite=overwrite,
        cfg=AccuracyConfig(cohort=CohortConfig(sequence_check=sequence_check)),  # type: ignore[arg-type]
    )
    typer.echo(str(Path(out) / "summary.json"))
    for m, res in summary["results"].items():
        parts = [
            f"{seq} SSIM {v['ssim']['mean']:.4f}"
            for seq, v in res["by_sequence"].items()
            if v["ssim"]["mean"] is not None
        ]
        typer.echo(f"{m}: " + ", ".join(parts))
    from benchmarks.stats import verdict_text

    for c in summary["comparisons"]:
        if c.get("status") == "ok" and c.get("noninferior") is not None:
            ci = f"{c['ci_level']:.0%} CI [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"
            typer.echo(
                f"{c['metric']}: {c['b']} - {c['a']} = {c['mean_diff']:+.4f} ({ci}, "
                f"n = {c['n']}): {verdict_text(c)}"
            )


from benchmarks.device.cli import register as _register_device  # noqa: E402

_register_device(app)

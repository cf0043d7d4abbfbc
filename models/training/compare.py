"""Issue #6's comparison as one resumable command: AP-HiDiff vs plain DDPM vs pix2pix vs ablations.

Every variant is trained with the same data, steps, batch and seed (`hidiff train`), the held-out
cases are predicted with each run's default sampler (`hidiff predict`), and all predictions are
judged in one `hidiff bench accuracy` call with AP-HiDiff first, so it is the reference of the
paired tests. The markdown table (`comparison_table.py`) is then written next to the harness's
summary.json. Each stage is the real command in a child process, so the log shows exactly what ran
and every run frees its memory. Interrupt it at any point and run it again: a finished run is
skipped, a run with a checkpoint resumes, prediction skips finished cases, and an existing results
folder is only re-tabulated. Example (the tiny preset on a shared CPU, docs/model.md):

    nice -n 10 python -m models.training.compare --train-data runs/cmp/cohort --train-split '' \
        --test-data runs/cmp/heldout --test-split '' --work runs/cmp --steps 300 --batch-size 4 \
        --predict-steps 20 --out benchmarks/results/model-comparison-tiny-20261125
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from edge_runtime.atomic import atomic_write_json, atomic_write_text
from edge_runtime.console import console, setup_logging
from edge_runtime.errors import HidiffError, InputError
from edge_runtime.machine import provenance
from models.aphidiff.config import Ablation
from models.training.comparison_table import comparison_markdown


@dataclasses.dataclass(frozen=True)
class Variant:
    """One trained method of the comparison."""

    name: str
    model: str
    ablate: str | None = None


VARIANTS: tuple[Variant, ...] = (
    Variant("ap-hidiff", "ap-hidiff"),
    Variant("ddpm", "ddpm"),
    Variant("pix2pix", "pix2pix"),
    *(Variant(f"no-{f.name}", "ap-hidiff", f.name) for f in dataclasses.fields(Ablation)),
)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What every run shares; a run folder made with other settings is refused, never mixed."""

    preset: str
    train_data: Path
    train_split: str
    test_data: Path
    test_split: str
    work: Path
    out: Path
    steps: int
    batch_size: int
    seed: int
    sequences: tuple[str, ...]
    threads: int
    predict_steps: int | None
    variants: tuple[Variant, ...] = VARIANTS

    def train_args(self, v: Variant) -> list[str]:
        args = [
            "-m", "models.training", "train", "--model", v.model, "--preset", self.preset,
            "--data", str(self.train_data), "--split", self.train_split,
            "--out", str(self.run_dir(v)), "--steps", str(self.steps),
            "--batch-size", str(self.batch_size), "--seed", str(self.seed),
            "--threads", str(self.threads), "--checkpoint-every", str(max(1, self.steps // 4)),
        ]  # fmt: skip
        args += [a for s in self.sequences for a in ("--sequence", s)]
        return args + (["--ablate", v.ablate] if v.ablate else [])

    def predict_args(self, v: Variant) -> list[str]:
        args = [
            "-m", "models.training", "predict", "--checkpoint", str(self.run_dir(v)),
            "--data", str(self.test_data), "--split", self.test_split,
            "--out", str(self.pred_dir(v)),
        ]  # fmt: skip
        return args + (["--steps", str(self.predict_steps)] if self.predict_steps else [])

    def bench_args(self) -> list[str]:
        args = ["-m", "edge_runtime.cli", "bench", "accuracy"]
        args += [a for v in self.variants for a in ("--pred", f"{v.name}={self.pred_dir(v)}")]
        args += ["--truth", str(self.test_data), "--sequences", ",".join(self.sequences)]
        args += ["--split", self.test_split] if self.test_split else []
        return [*args, "--out", str(self.out)]

    def run_dir(self, v: Variant) -> Path:
        return self.work / "runs" / v.name

    def pred_dir(self, v: Variant) -> Path:
        return self.work / "preds" / v.name


def _run(args: list[str], threads: int) -> None:
    """Run `python ARGS` as a child with `threads` OpenMP threads; a failure stops the driver."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    console.print("$ python " + " ".join(repr(a) if a == "" else a for a in args))
    if subprocess.run([sys.executable, *args], env=env, check=False).returncode != 0:
        raise HidiffError(f"the command above failed: python {' '.join(args)}")


def _check_run(plan: Plan, v: Variant) -> str:
    """'done', 'resume' or 'new' for a run folder; refuse one trained with other settings."""
    run = plan.run_dir(v)
    config = run / "config.json"
    if not config.is_file():
        return "new"
    train = json.loads(config.read_text())["train"]
    want = {"steps": plan.steps, "batch_size": plan.batch_size, "seed": plan.seed}
    got = {k: train.get(k) for k in want}
    if got != want or tuple(train.get("sequences", ())) != plan.sequences:
        raise InputError(
            f"{run} was trained with {got}, not {want}; remove it or use another --work"
        )
    if (run / "summary.json").is_file():
        return "done"
    return "resume" if (run / "latest.json").is_file() else "new"


def _training_summaries(plan: Plan) -> dict[str, Any]:
    out = {}
    for v in plan.variants:
        s = json.loads((plan.run_dir(v) / "summary.json").read_text())
        keep = ("model", "steps", "wall_s", "images_per_s", "peak_memory_mib", "device")
        out[v.name] = {
            **{k: s.get(k) for k in keep},
            "final_loss": (s.get("final") or {}).get("loss"),
        }
    return out


def run_comparison(plan: Plan) -> Path:
    """Train, predict and judge every variant (resuming what exists); return the table's path."""
    for v in plan.variants:
        state = _check_run(plan, v)
        if state != "done":
            _run(plan.train_args(v) + (["--resume"] if state == "resume" else []), plan.threads)
        _run(plan.predict_args(v), plan.threads)
    if not (plan.out / "summary.json").is_file():
        _run(plan.bench_args(), plan.threads)
    summary = json.loads((plan.out / "summary.json").read_text())
    training = _training_summaries(plan)
    record = {
        "kind": "hidiff-model-comparison/1",
        "provenance": provenance(sys.argv),
        "plan": {k: str(v) if isinstance(v, Path) else v for k, v in vars(plan).items()},
        "variants": [dataclasses.asdict(v) for v in plan.variants],
        "not_run": [v.name for v in VARIANTS if v not in plan.variants],
        "commands": {
            "train": ["python", *plan.train_args(plan.variants[0])],
            "predict": ["python", *plan.predict_args(plan.variants[0])],
            "bench": ["python", *plan.bench_args()],
        },
        "training": training,
    }
    atomic_write_json(plan.out / "comparison.json", record)
    table = plan.out / "table.md"
    atomic_write_text(table, comparison_markdown(summary, record))
    return table


def main(
    train_data: Annotated[Path, typer.Option("--train-data", help="Training cohort.")],
    test_data: Annotated[Path, typer.Option("--test-data", help="Held-out cohort (the truth).")],
    out: Annotated[Path, typer.Option("--out", help="Results folder (bench accuracy + table).")],
    work: Annotated[Path, typer.Option("--work", help="Folder of the runs and predictions.")],
    train_split: Annotated[str, typer.Option(help="Training split ('' = all cases).")] = "train",
    test_split: Annotated[str, typer.Option(help="Held-out split ('' = all cases).")] = "test",
    preset_name: Annotated[str, typer.Option("--preset", help="Model preset.")] = "tiny",
    steps: Annotated[int, typer.Option(help="Training steps of every run.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Slices per step of every run.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of every run.")] = 0,
    sequence: Annotated[list[str] | None, typer.Option(help="MR sequence(s).")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads of every child process.")] = 1,
    predict_steps: Annotated[
        int | None, typer.Option(help="Sampler steps (default: each model's own).")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Only these variants (default all; the first stays the reference)."),
    ] = None,
) -> None:
    """Train, predict and judge AP-HiDiff, both baselines and every ablation; write the table."""
    names = [v.name for v in VARIANTS]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise InputError(f"--only: unknown variant(s) {unknown}; choose from {names}")
    plan = Plan(
        preset_name, train_data, train_split, test_data, test_split, work, out, steps,
        batch_size, seed, tuple(sequence or ("t2",)), threads, predict_steps,
        tuple(v for v in VARIANTS if not only or v.name in only),
    )  # fmt: skip
    console.print(f"table: {run_comparison(plan)}")


if __name__ == "__main__":
    setup_logging()
    try:
        typer.run(main)
    except HidiffError as exc:
        console.print(f"error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)

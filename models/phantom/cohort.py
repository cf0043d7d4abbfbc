"""A cohort of phantom patients: one folder per case, a manifest, a fixed split by patient.

The manifest (cohort.json) is written first and fully determined by (n, seed, grid, slices,
config); each case is written atomically, so an interrupted run leaves only finished cases
(plus hidden partial folders that the next run removes) and resuming skips what is done.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.atomic import (
    atomic_directory,
    atomic_write_json,
    ensure_writable_dir,
    remove_partials,
)
from edge_runtime.errors import InputError
from models.phantom.case import make_grid, render_case
from models.phantom.config import PhantomConfig
from models.phantom.io import check_output, read_json, write_case_files

COHORT_FORMAT = "hidiff-phantom-cohort/1"
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)  # train / val / test, by patient


def case_id(i: int) -> str:
    return f"case-{i:04d}"


def manifest(n: int, seed: int, grid: int, slices: int, cfg: PhantomConfig) -> dict[str, Any]:
    """Case seeds and the train/val/test split, both drawn from the cohort seed."""
    ss = np.random.SeedSequence([int(seed), 777])
    rng = np.random.default_rng(ss)
    seeds = rng.integers(0, 2**31 - 1, size=n)
    order = rng.permutation(n)
    n_train = round(SPLIT_FRACTIONS[0] * n)
    n_val = round(SPLIT_FRACTIONS[1] * n)
    split = np.empty(n, dtype=object)
    split[order[:n_train]] = "train"
    split[order[n_train : n_train + n_val]] = "val"
    split[order[n_train + n_val :]] = "test"
    return {
        "format": COHORT_FORMAT,
        "seed": int(seed),
        "grid": int(grid),
        "slices": int(slices),
        "config": cfg.to_dict(),
        "cases": [
            {"id": case_id(i), "seed": int(seeds[i]), "split": str(split[i])} for i in range(n)
        ],
    }


def write_cohort(
    n: int,
    seed: int,
    out_dir: Path,
    *,
    grid: int = 256,
    slices: int = 48,
    config: PhantomConfig | None = None,
    preview: bool = True,
    on_case: Callable[[str, bool], None] | None = None,
) -> dict[str, Any]:
    """Render the cohort into out_dir; finished cases are skipped. `on_case(id, rendered)` is
    called after each case (for progress bars)."""
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}")
    cfg = (config or PhantomConfig()).validate()
    make_grid(cfg, grid, slices)  # validates grid and slices before anything is written
    out_dir = ensure_writable_dir(check_output(Path(out_dir)))
    man = manifest(n, seed, grid, slices, cfg)
    path = out_dir / "cohort.json"
    if path.exists():
        old = read_json(path)
        new = json.loads(json.dumps(man))  # compare as JSON (tuples become lists)
        keys = ("format", "seed", "grid", "slices", "config")
        if {k: old.get(k) for k in keys} != {k: new[k] for k in keys} or old.get("cases") != new[
            "cases"
        ][: len(old.get("cases", []))]:
            raise InputError(
                f"{path} belongs to a different cohort (seed, grid, slices or config differ); "
                "choose another output folder"
            )
    atomic_write_json(path, man)
    remove_partials(out_dir)
    for entry in man["cases"]:
        final = out_dir / entry["id"]
        if (final / "case.json").exists():
            if on_case:
                on_case(entry["id"], False)
            continue
        case = render_case(entry["seed"], cfg, grid=grid, slices=slices, keep_extras=False)
        with atomic_directory(final, overwrite=final.exists()) as tmp:
            write_case_files(case, tmp, preview=preview)
        if on_case:
            on_case(entry["id"], True)
    return man

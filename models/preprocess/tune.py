"""Tune the Elastix maps on a tuning cohort that is not the held-out one.

`python -m models.preprocess.tune --work DIR --name NAME [--set Key=value ...]` renders phantom
cases seeds 6000..6009 (no 4D-CT, split `tune`), copies `params/` with the overrides applied to
every map that has the key, or to one map (e.g. `--set FinalGridSpacingInPhysicalUnits=24.0`,
`--set bspline_liver:Metric2Weight=100.0`), registers the cohort with `--method` (default `elastix+liver`) and appends
one line to `DIR/tune.jsonl`: the overrides, mean TRE, per-case and pooled 95th percentiles,
Dice, min J, time. Seeds of the held-out cohort (evaluate's 5000..5009) are refused.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

from edge_runtime.errors import InputError
from models.preprocess.evaluate import HELD_OUT_SEED, registration_table, write_4dct_cohort
from models.preprocess.registration import PARAMS_DIR

TUNE_SEED = 6000
HELD_OUT_N = 10


def apply_overrides(src: Path, dst: Path, overrides: dict[str, str]) -> Path:
    """Copy the parameter maps of `src` to `dst`, each `(Key ...)` line of `overrides` replaced.

    A key `stage:Key` (e.g. `bspline_liver:Metric2Weight`) changes that map only; a plain key
    changes every map that has it.
    """
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    seen = set()
    for path in sorted(Path(src).glob("*.txt")):
        lines = []
        for line in path.read_text().splitlines():
            m = re.match(r"\((\w+)\s", line)
            key = m and next(
                (k for k in (f"{path.stem}:{m.group(1)}", m.group(1)) if k in overrides), None
            )
            if key:
                seen.add(key)
                line = f"({m.group(1)} {overrides[key]})"
            lines.append(line)
        (dst / path.name).write_text("\n".join(lines) + "\n")
    missing = set(overrides) - seen
    if missing:
        raise InputError(f"no parameter map has {sorted(missing)}: add them to the map first")
    return dst


def _value(v: str) -> str:
    """`24.0` -> `24.0`, `Random` -> `"Random"`; several words are kept as given."""
    parts = v.split()
    if len(parts) > 1 or v.startswith('"'):
        return v
    try:
        float(v)
        return v
    except ValueError:
        return f'"{v}"'


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--method", default="elastix+liver")
    ap.add_argument("--seed", type=int, default=TUNE_SEED)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--grid", type=int, default=128)
    ap.add_argument("--slices", type=int, default=48)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.seed < HELD_OUT_SEED + HELD_OUT_N and args.seed + args.n > HELD_OUT_SEED:
        raise InputError(
            f"seeds {args.seed}..{args.seed + args.n - 1} overlap the held-out cohort "
            f"({HELD_OUT_SEED}..{HELD_OUT_SEED + HELD_OUT_N - 1}): never tune on it"
        )
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = _value(value)
    data = write_4dct_cohort(
        args.n,
        args.seed,
        args.work / f"cohort-{args.seed}-n{args.n}-{args.grid}",
        args.grid,
        args.slices,
        four_dct=False,
        split="tune",
    )
    params = apply_overrides(PARAMS_DIR, args.work / "params" / args.name, overrides)
    r = registration_table(
        data,
        args.work / "out" / args.name,
        args.method,
        workers=args.workers,
        threads=args.threads,
        params_dir=params,
    )
    keys = (
        "tre_mean_mm",
        "tre_p95_mm_mean_over_cases",
        "tre_p95_mm_pooled",
        "tre_p95_mm_worst_case",
        "tre_max_mm",
        "dice_liver_after",
        "jacobian_min",
        "sdlogj_mean",
        "excluded",
        "seconds_mean",
    )
    line = {"name": args.name, "method": args.method, "set": overrides, "seeds": args.seed}
    line |= {k: r[k] for k in keys} | {"p95_per_case": [c["tre_p95"] for c in r["per_case"]]}
    with open(args.work / "tune.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()

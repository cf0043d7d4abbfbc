"""Reading and checking the report's inputs; each reader refuses a malformed file in one line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from benchmarks.device.config import RECORD_KIND
from benchmarks.device.run import SCHEMA_PATH
from edge_runtime.errors import InputError

ACCURACY_KIND = "hidiff-accuracy/1"


def _json(path: Path, what: str) -> Any:
    if not Path(path).is_file():
        raise InputError(f"{what} {path} does not exist")
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} {path} is not JSON: {exc}") from exc


def read_device(path: Path) -> dict[str, Any]:
    """A `hidiff bench device` record, checked against its schema."""
    rec = _json(path, "device record")
    if not isinstance(rec, dict) or rec.get("kind") != RECORD_KIND:
        raise InputError(f"{path} is not a {RECORD_KIND} record (from `hidiff bench device`)")
    try:
        jsonschema.validate(rec, json.loads(SCHEMA_PATH.read_text()))
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "top level"
        raise InputError(f"{path}: {where}: {exc.message}") from None
    return rec


@dataclass
class Accuracy:
    """The accuracy harness's output folder: its summary and the figures it drew."""

    root: Path
    summary: dict[str, Any]
    per_case_csv: Path | None
    figures: list[Path] = field(default_factory=list)


def read_accuracy(root: Path) -> Accuracy:
    """`hidiff bench accuracy --out` folder: summary.json (kind hidiff-accuracy/1) + figures."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"--accuracy {root} is not a folder (the `hidiff bench accuracy` --out)")
    summary = _json(root / "summary.json", "accuracy summary")
    if not isinstance(summary, dict) or summary.get("kind") != ACCURACY_KIND:
        raise InputError(f"{root}/summary.json is not a {ACCURACY_KIND} summary")
    figs = [root / f for f in summary.get("figures", []) if (root / f).is_file()]
    csv = root / "per_case.csv"
    return Accuracy(root, summary, csv if csv.is_file() else None, figs)


@dataclass
class Ledger:
    """The compression ledger: one row per stage, in order, with numeric metrics."""

    path: Path
    stages: list[dict[str, Any]]
    metrics: list[str]


def read_ledger(path: Path) -> Ledger:
    """A ledger JSON: `{"stages": [{"stage": NAME, METRIC: number, ...}, ...]}` or that list.

    The compression pipeline (issue 8) writes per stage: parameters, FLOPs, package size, CPU
    latency per slice and accuracy metrics; every numeric key present in the first stage and
    in at least one other becomes a waterfall.
    """
    doc = _json(path, "ledger")
    stages = doc.get("stages") if isinstance(doc, dict) else doc
    if not isinstance(stages, list) or len(stages) < 1:
        raise InputError(f"ledger {path}: expected a list of stages (or {{'stages': [...]}})")
    rows = []
    for i, st in enumerate(stages):
        if not isinstance(st, dict) or not isinstance(st.get("stage", st.get("name")), str):
            raise InputError(f"ledger {path}: stage {i} has no 'stage' name")
        rows.append({"stage": st.get("stage", st.get("name")), **st})
    first = rows[0]
    metrics = [
        k
        for k, v in first.items()
        if k not in ("stage", "name")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and any(isinstance(r.get(k), int | float) for r in rows[1:])
    ]
    if not metrics and len(rows) > 1:
        raise InputError(f"ledger {path}: no numeric metric shared by the stages")
    return Ledger(Path(path), rows, metrics)

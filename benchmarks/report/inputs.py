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


# Ledger statuses of a stage that did not make it into the pipeline (its successor starts from
# the stage before it); any other status, or none, is a stage the pipeline kept.
FAILED_STATUSES = ("failed", "rejected", "error")


@dataclass
class Ledger:
    """The compression ledger: one row per stage, in order, with numeric metrics."""

    path: Path
    stages: list[dict[str, Any]]
    metrics: list[str]
    provenance: dict[str, Any] | None = None

    @staticmethod
    def failed(stage: dict[str, Any]) -> bool:
        return str(stage.get("status") or "").lower() in FAILED_STATUSES

    @property
    def kept(self) -> list[dict[str, Any]]:
        """The stages the pipeline went through (failed ones left out), in order."""
        return [s for s in self.stages if not self.failed(s)]


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def read_ledger(path: Path) -> Ledger:
    """A ledger JSON: `{"stages": [{"stage": NAME, METRIC: number, ...}, ...], ...}` or that
    list.

    The compression pipeline (issue 8) writes per stage: params, gflops_per_slice,
    sampler_steps, package_mb, cpu_latency_s_per_slice, peak_rss_mib, masked_ssim,
    psnr_vs_teacher, `status` and `reason` (null where a stage has no such number, e.g. no
    package for a torch stage). Every numeric key that at least two kept stages have becomes a
    waterfall; a failed stage (status failed / rejected / error) is shown with its reason.
    """
    doc = _json(path, "ledger")
    stages = doc.get("stages") if isinstance(doc, dict) else doc
    if not isinstance(stages, list) or len(stages) < 1:
        raise InputError(f"ledger {path}: expected a list of stages (or {{'stages': [...]}})")
    rows = []
    for i, st in enumerate(stages):
        if not isinstance(st, dict) or not isinstance(st.get("stage", st.get("name")), str):
            raise InputError(f"ledger {path}: stage {i} has no 'stage' name")
        for key in ("status", "reason"):
            if st.get(key) is not None and not isinstance(st[key], str):
                raise InputError(f"ledger {path}: stage {i} {key!r} is not a string")
        rows.append({"stage": st.get("stage", st.get("name")), **st})
    kept = [r for r in rows if not Ledger.failed(r)]
    metrics = list(
        dict.fromkeys(
            k
            for r in kept
            for k, v in r.items()
            if k not in ("stage", "name")
            and _number(v)
            and sum(_number(x.get(k)) for x in kept) > 1
        )
    )
    if not metrics and len(kept) > 1:
        raise InputError(f"ledger {path}: no numeric metric shared by the stages")
    prov = doc.get("provenance") if isinstance(doc, dict) else None
    return Ledger(Path(path), rows, metrics, prov if isinstance(prov, dict) else None)

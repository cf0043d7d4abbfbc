"""`open_dataset(path, kind=None)`: the adapter for a folder, by name or by what it holds."""

from __future__ import annotations

from pathlib import Path

from edge_runtime.errors import InputError
from models.datasets.amos import AMOS
from models.datasets.base import CaseDataset
from models.datasets.chaos import CHAOS
from models.datasets.learn2reg import Learn2RegAbdomenMRCT
from models.datasets.phantom import PhantomCohort
from models.datasets.synthrad import SynthRAD2025Abdomen

ADAPTERS: dict[str, type[CaseDataset]] = {
    "phantom": PhantomCohort,
    "chaos": CHAOS,
    "amos": AMOS,
    "learn2reg-abdomenmrct": Learn2RegAbdomenMRCT,
    "synthrad2025-ab": SynthRAD2025Abdomen,
}


def open_dataset(path: str | Path, kind: str | None = None) -> CaseDataset:
    """Open `path` with the named adapter, or with the one whose layout it matches."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"--data {root}: not a folder")
    if kind is not None:
        key = kind.lower()
        if key not in ADAPTERS:
            raise InputError(f"unknown dataset kind {kind!r}; known: {', '.join(ADAPTERS)}")
        return ADAPTERS[key](root)
    matches = [name for name, cls in ADAPTERS.items() if cls.detect(root)]
    if len(matches) == 1:
        return ADAPTERS[matches[0]](root)
    if not matches:
        raise InputError(
            f"--data {root}: not a dataset this project knows (phantom cohort, CHAOS, AMOS, "
            "Learn2Reg AbdomenMRCT, SynthRAD2025 Task1/AB); see docs/datasets.md for the layouts"
        )
    raise InputError(f"--data {root}: looks like several datasets ({', '.join(matches)}); name one")

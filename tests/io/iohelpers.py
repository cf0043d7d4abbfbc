"""Helpers for the I/O tests: small CT volumes, series written to disk, and a CLI runner.

Series are written with the project's own writer and then damaged file by file with pydicom,
so each bad-input test holds exactly one defect.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom

from edge_runtime.io import MedicalImage

HIDIFF = str(Path(sys.executable).parent / "hidiff")
PATIENT = {
    "PatientName": "Doe^Jane",
    "PatientID": "SECRET123",
    "PatientBirthDate": "19450101",
}
SECRETS = ("Doe", "Jane", "SECRET123", "19450101")


def ct_image(
    shape: tuple[int, int, int] = (8, 24, 20),
    spacing: tuple[float, float, float] = (0.8, 0.7, 2.5),
    origin: tuple[float, float, float] = (-100.0, -80.0, 40.0),
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    seed: int = 0,
) -> MedicalImage:
    """A CT-like volume in HU whose every voxel differs, so any reordering shows."""
    rng = np.random.default_rng(seed)
    vol = rng.integers(-1000, 1500, size=shape).astype(np.float32)
    vol[:, 0, 0] = np.arange(shape[0]) * 10  # a per-slice signature
    return MedicalImage(vol, origin, spacing, direction)


def oblique_direction(seed: int = 1) -> tuple[float, ...]:
    """A right-handed rotation well away from the axes."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(np.eye(3) + 0.3 * rng.standard_normal((3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 2] = -q[:, 2]
    return tuple(q.ravel())


def edit_file(path: Path, change: Callable[[pydicom.Dataset], None]) -> None:
    """Apply `change` to one DICOM file in place."""
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path, enforce_file_format=True)


def files_of(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


def run_hidiff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HIDIFF, *args], capture_output=True, text=True, timeout=120)

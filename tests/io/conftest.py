"""Fixtures for the I/O tests (helpers live in iohelpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from iohelpers import PATIENT, ct_image

from edge_runtime.io import MedicalImage, write_ct_series


@pytest.fixture
def write_series(tmp_path: Path) -> Callable[..., Path]:
    """Write a CT series (with an identifiable fake patient) and return its folder."""
    counter = iter(range(1000))

    def _write(image: MedicalImage | None = None, name: str | None = None, **kw) -> Path:
        image = image or ct_image()
        folder = tmp_path / (name or f"series{next(counter)}")
        kw.setdefault("patient", PATIENT)
        write_ct_series(image, folder, **kw)
        return folder

    return _write

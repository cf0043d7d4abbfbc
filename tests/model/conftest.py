"""Fixtures of the model tests: a tiny phantom cohort, one torch thread."""

from pathlib import Path

import pytest
import torch

from models.phantom import write_cohort


@pytest.fixture(autouse=True)
def _one_thread():
    # Two shared cores: one thread avoids oversubscription stalls and keeps numerics stable.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """Three phantom patients at 128^2 x 8 slices; cohort seed 2 puts case-0002 in the test
    split and case-0000/0001 in train (the phantom draws the split from the seed)."""
    out = tmp_path_factory.mktemp("cohort") / "cohort"
    write_cohort(3, 2, out, grid=128, slices=8, preview=False)
    return out

"""Fixtures of the model tests: a tiny synthetic cohort (phantom contract), one torch thread."""

from pathlib import Path

import pytest
import torch
from synthetic_case import write_cohort


@pytest.fixture(autouse=True)
def _one_thread():
    # Two shared cores: one thread avoids oversubscription stalls and keeps numerics stable.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """Three 128^2 x 6-slice cases: two train, one test (held out)."""
    return write_cohort(tmp_path_factory.mktemp("cohort") / "cohort", n=3, seed=11)

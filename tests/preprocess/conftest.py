"""Fixtures for the preprocessing tests: one small phantom case with 4D-CT, rendered once."""

import pytest

from models.phantom import render_case, write_case


@pytest.fixture(scope="session")
def phantom_case_dir(tmp_path_factory):
    """A 64^2 x 24-slice phantom case folder with its ten 4D-CT phases and true fields."""
    folder = tmp_path_factory.mktemp("phantom") / "case-0000"
    write_case(render_case(3, grid=64, slices=24, four_dct=True, ssim=False), folder)
    return folder

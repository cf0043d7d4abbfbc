"""The SSIM ceiling: learnable, not trivial."""

from __future__ import annotations


def test_t2_ssim_ceiling_at_256(case256) -> None:
    assert case256.grid.n == 256
    ceiling = case256.meta["ssim_ceiling"]
    assert set(ceiling) == {"t1", "t2", "t1c"}
    assert 0.80 <= ceiling["t2"] <= 0.97, ceiling


def test_ssim_ceiling_other_seed() -> None:
    from models.phantom import render_case

    c = render_case(12, grid=256, slices=24)
    assert 0.80 <= c.meta["ssim_ceiling"]["t2"] <= 0.97, c.meta["ssim_ceiling"]

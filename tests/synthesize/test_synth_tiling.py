"""Slices larger than the model's grid are tiled, and the blend reproduces the untiled result.

Design: the factory's network is made of zero-padded 3x3 convolutions (encoder, then one per
sampler step), so it is translation-equivariant away from its input's border; a package with a
24x24 grid and one with a 40x40 grid share the same seeded weights. A 40x40 slice run whole by
the 40x40 package is the untiled reference; the 24x24 package must tile it. The border effect
reaches 1 px per convolution (5 px after encoder + 4 steps), so a tile margin of 5 px makes every
blended pixel exact; a margin of 0 must NOT agree (the check has teeth)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from synth_helpers import ct_volume, package_of_size

from edge_runtime.synthesizer import SynthesisConfig, Synthesizer
from edge_runtime.tiling import TilingConfig, plan_tiles, tile_starts, weight_sum

MR_RANGE = 1000.0  # the factory's mr_range: model units = MR / 500 - 1


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiling")
    return package_of_size(root / "p24", 24), package_of_size(root / "p40", 40)


def _run(package: Path, tiling: TilingConfig, seed: int = 3):
    ct = ct_volume(shape=(4, 40, 40))
    synth = Synthesizer(package, provider="cpu", config=SynthesisConfig(batch=5, tiling=tiling))
    return synth.run(ct, seed=seed)


def test_tiled_agrees_with_untiled_within_1e3(packages) -> None:
    p24, p40 = packages
    tiling = TilingConfig(overlap=12, margin=5)
    tiled = _run(p24, tiling)
    whole = _run(p40, tiling)
    assert tiled.stats.tiles_per_slice == 9 and whole.stats.tiles_per_slice == 1
    # in model units (range 2), over the whole slice and on the overlaps in particular
    diff = np.abs(tiled.image.voxels - whole.image.voxels) * 2 / MR_RANGE
    overlap = np.zeros((40, 40), bool)
    for s in tile_starts(40, 24, 12)[1:]:
        overlap[:, s : s + 12] = True
        overlap[s : s + 12, :] = True
    assert diff[:, overlap].max() < 1e-3
    assert diff.max() < 1e-3
    assert whole.image.voxels.std() > 1.0  # a real image, not a constant


def test_without_a_margin_tile_borders_show(packages) -> None:
    p24, p40 = packages
    tiled = _run(p24, TilingConfig(overlap=12, margin=0))
    whole = _run(p40, TilingConfig(overlap=12, margin=0))
    diff = np.abs(tiled.image.voxels - whole.image.voxels) * 2 / MR_RANGE
    assert diff.max() > 1e-3


@pytest.mark.parametrize("length,tile", [(40, 24), (128, 128), (129, 128), (300, 128), (77, 32)])
def test_tiles_cover_every_pixel_with_positive_weight(length: int, tile: int) -> None:
    tiles = plan_tiles((length, length), (tile, tile), TilingConfig())
    total = weight_sum((length, length), tiles)
    assert (total > 0).all()
    starts = sorted({t.y for t in tiles})
    assert starts[0] == 0 and starts[-1] + tile == length
    # one tile when it fits; otherwise neighbours overlap by at least the configured overlap
    if length <= tile:
        assert len(tiles) == 1 and np.all(tiles[0].weights == 1)
    else:
        assert all(b - a <= tile - max(3, tile // 4) for a, b in itertools.pairwise(starts))


def test_bad_tiling_config_is_refused() -> None:
    from edge_runtime.errors import InputError

    with pytest.raises(InputError, match="margin"):
        plan_tiles((50, 50), (24, 24), TilingConfig(overlap=8, margin=4))

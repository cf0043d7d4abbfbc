"""Tiles for slices larger than the model's grid, and the weights that blend them back.

A network with zero padding is wrong near the border of its input; tiles therefore overlap, and
each tile's pixels within `margin` of an edge it shares with another tile get no weight at all,
then the weight ramps up linearly across the rest of the overlap (no seams). Edges that are the
slice's own border keep full weight: no other tile sees those pixels. With `margin` at least the
distance a border effect travels through encoder and sampler, every output pixel is a weighted
mean of tiles that computed it exactly as an untiled run would (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_runtime.errors import InputError


@dataclass(frozen=True)
class TilingConfig:
    """Overlap of neighbouring tiles and the unweighted margin at their inner edges, in pixels
    of the model grid; None derives them from the tile size."""

    # Default: a quarter of the tile (32 of 128): room for a ramp beyond the margin, at most
    # 1.8x the work of an untiled slice of the same area.
    overlap: int | None = None
    # Default: a quarter of the overlap (8 of 128). Border effects of zero-padded 3x3
    # convolutions through a 3-level U-Net reach a few full-resolution pixels.
    margin: int | None = None

    def resolve(self, tile: int) -> tuple[int, int]:
        """(overlap, margin) for tiles of `tile` pixels, checked."""
        overlap = self.overlap if self.overlap is not None else max(3, tile // 4)
        margin = self.margin if self.margin is not None else overlap // 4
        if not 0 <= 2 * margin < overlap < tile:
            raise InputError(
                f"tiling needs 0 <= 2 x margin < overlap < tile size; got margin {margin}, "
                f"overlap {overlap}, tile {tile}"
            )
        return overlap, margin


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length), neighbours overlapping by at
    least `overlap`; the last tile ends exactly at `length`. One tile when it fits."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def edge_weights(
    tile: int, inner_before: bool, inner_after: bool, overlap: int, margin: int
) -> np.ndarray:
    """1-D blend weights of one tile: zero within `margin` of an inner edge, a linear ramp to 1
    over the rest of the overlap, 1 elsewhere and at the slice's own borders."""
    w = np.ones(tile, dtype=np.float64)
    ramp_len = overlap - 2 * margin
    d = np.arange(tile, dtype=np.float64)
    ramp = np.clip((d - margin + 1) / (ramp_len + 1), 0.0, 1.0)
    if inner_before:
        w = np.minimum(w, ramp)
    if inner_after:
        w = np.minimum(w, ramp[::-1])
    return w


@dataclass(frozen=True)
class Tile:
    """One tile of a slice: its top-left corner on the (padded) slice and its blend weights."""

    y: int
    x: int
    weights: np.ndarray  # (tile_h, tile_w) float64


def plan_tiles(shape: tuple[int, int], tile: tuple[int, int], cfg: TilingConfig) -> list[Tile]:
    """The tiles covering a slice of `shape` (already at least `tile` in each axis)."""
    (h, w), (th, tw) = shape, tile
    if h < th or w < tw:
        raise InputError(f"slice {shape} is smaller than the tile {tile}: pad it first")
    # Overlap and margin matter (and are checked) only along an axis that needs tiling.
    (oy, my) = cfg.resolve(th) if h > th else (0, 0)
    (ox, mx) = cfg.resolve(tw) if w > tw else (0, 0)
    ys, xs = tile_starts(h, th, oy), tile_starts(w, tw, ox)
    tiles = []
    for y in ys:
        wy = edge_weights(th, y > 0, y + th < h, oy, my)
        for x in xs:
            wx = edge_weights(tw, x > 0, x + tw < w, ox, mx)
            tiles.append(Tile(y, x, np.outer(wy, wx)))
    return tiles


def weight_sum(shape: tuple[int, int], tiles: list[Tile]) -> np.ndarray:
    """The sum of all tiles' weights at each pixel (positive everywhere by construction)."""
    total = np.zeros(shape, dtype=np.float64)
    for t in tiles:
        th, tw = t.weights.shape
        total[t.y : t.y + th, t.x : t.x + tw] += t.weights
    if not (total > 0).all():  # pragma: no cover - guaranteed by TilingConfig.check
        raise RuntimeError("tile weights leave pixels uncovered")
    return total

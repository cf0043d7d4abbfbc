"""clDice and Betti-0 on hand-built shapes whose answers are known, and the fixed segmentation."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from benchmarks.accuracy.vessels import (
    betti0_error,
    cldice,
    component_count,
    segment_vessels,
    vessel_reference,
)

SHAPE = (21, 41, 64)


def _tube(mask, p0, p1, radius):
    """Rasterise a straight tube (all voxels within `radius` of the segment p0-p1)."""
    zz, yy, xx = np.indices(mask.shape)
    pts = np.stack([zz, yy, xx], -1).astype(float)
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    t = np.clip(((pts - p0) @ d) / (d @ d), 0, 1)
    dist = np.linalg.norm(pts - (p0 + t[..., None] * d), axis=-1)
    mask |= dist <= radius
    return mask


def straight_tube():
    m = np.zeros(SHAPE, bool)
    zz, yy, xx = np.indices(SHAPE)
    m[((zz - 10) ** 2 + (yy - 20) ** 2 <= 6.25) & (xx >= 10) & (xx < 50)] = True
    return m


def tree():
    m = np.zeros(SHAPE, bool)
    _tube(m, (10, 20, 4), (10, 20, 30), 2.5)  # trunk
    _tube(m, (10, 20, 30), (10, 6, 58), 2.0)  # branch 1
    _tube(m, (10, 20, 30), (10, 34, 58), 2.0)  # branch 2
    return m


def test_straight_tube_against_itself_is_perfect() -> None:
    t = straight_tube()
    assert component_count(t) == 1
    assert cldice(t, t) == 1.0
    assert betti0_error(t, t) == 0


def test_broken_tube_known_values() -> None:
    t = straight_tube()
    broken = t.copy()
    broken[:, :, 28:34] = False  # a 6-voxel gap across the tube
    assert component_count(broken) == 2
    assert betti0_error(broken, t) == 1
    # The straight tube's centreline is the 38-voxel axis x = 11..48; the gap removes 6 of them
    # from topology sensitivity, the pieces' centrelines stay inside the tube (precision 1).
    tsens = 32 / 38
    assert cldice(broken, t) == pytest.approx(2 * tsens / (1 + tsens), abs=1e-12)


def test_branching_tree_known_values() -> None:
    t = tree()
    assert component_count(t) == 1
    assert cldice(t, t) == 1.0
    # detach branch 2 at the junction: two components, Betti-0 error 1, clDice < 1
    cut = t.copy()
    cut[:, 21:27, 31:37] = False
    assert component_count(cut) == 2
    assert betti0_error(cut, t) == 1
    assert 0.8 < cldice(cut, t) < 1.0
    # a prediction missing one whole branch loses that branch's share of the true centreline
    trunk_b1 = np.zeros(SHAPE, bool)
    _tube(trunk_b1, (10, 20, 4), (10, 20, 30), 2.5)
    _tube(trunk_b1, (10, 20, 30), (10, 6, 58), 2.0)
    assert betti0_error(trunk_b1, t) == 0  # still one piece: only clDice sees it
    assert cldice(trunk_b1, t) < cldice(cut, t)
    # empty cases
    assert cldice(np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)) == 1.0
    assert cldice(np.zeros(SHAPE, bool), t) == 0.0


def test_segmentation_finds_tree_in_noisy_liver_and_misses_broken_one() -> None:
    rng = np.random.default_rng(0)
    liver = np.zeros(SHAPE, bool)
    liver[2:-2, 2:-2, 2:-2] = True
    vessels = tree()
    truth = np.where(vessels, 300.0, 100.0)
    truth = ndi.gaussian_filter(truth, 0.6) + rng.normal(scale=12, size=SHAPE)
    ref = vessel_reference(truth, liver, vessels)
    assert ref.bright
    seg_t = segment_vessels(truth, ref)
    assert component_count(seg_t) == 1
    assert cldice(seg_t, vessels & ref.liver) > 0.8
    # an independent noise draw segments to the same topology
    other = ndi.gaussian_filter(np.where(vessels, 300.0, 100.0), 0.6) + rng.normal(
        scale=12, size=SHAPE
    )
    assert cldice(segment_vessels(other, ref), seg_t) > 0.85
    # a prediction that lost branch 2's first half breaks the tree
    broken = other.copy()
    cut = np.zeros(SHAPE, bool)
    cut[:, 21:30, 31:44] = True
    broken[cut & vessels] = 100.0
    seg_b = segment_vessels(broken, ref)
    assert betti0_error(seg_b, seg_t) >= 1
    assert cldice(seg_b, seg_t) < cldice(segment_vessels(other, ref), seg_t)

"""Region boundary error: zero for the truth itself, ~d mm for a prediction displaced by d mm."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from benchmarks.accuracy.geometry import boundary_error, region_parts, region_reference

SPACING = (4.0, 1.4, 1.4)


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(2)
    shape = (24, 96, 96)
    zz, yy, xx = np.indices(shape).astype(float)
    z, y, x = zz * SPACING[0], yy * SPACING[1], xx * SPACING[2]
    body = ((y - 67) / 60) ** 2 + ((x - 67) / 62) ** 2 <= 1
    liver = (((z - 48) / 35) ** 2 + ((y - 60) / 30) ** 2 + ((x - 55) / 35) ** 2 <= 1) & body
    labels = np.where(body, 1, 0) + np.where(liver, 1, 0)
    clean = np.where(body, 60.0, 0.0) + np.where(liver, 40.0, 0.0)
    clean = ndi.gaussian_filter(clean, (0.3, 0.8, 0.8))
    truth = clean + rng.normal(scale=4.0, size=shape)
    other = clean + rng.normal(scale=4.0, size=shape)
    parts = region_parts(
        labels.astype(np.uint8),
        {"body": 1, "liver": 2},
        np.zeros(shape, np.uint8),
        np.zeros(shape, np.uint16),
        set(),
    )
    refs = {k: region_reference(k, v, truth, SPACING) for k, v in parts.items()}
    return truth, other, refs


def test_regions_found(scene) -> None:
    assert set(scene[2]) == {"liver", "body_wall"}


def test_truth_against_itself_is_zero(scene) -> None:
    truth, _, refs = scene
    for ref in refs.values():
        err = boundary_error(ref, truth, SPACING)
        assert err["hd95_mm"] == pytest.approx(0.0, abs=1e-9)


def test_independent_noise_is_sub_voxel(scene) -> None:
    _, other, refs = scene
    for ref in refs.values():
        assert boundary_error(ref, other, SPACING)["hd95_mm"] < 1.0


@pytest.mark.parametrize("shift_mm", [2.0, 4.0])
def test_shift_shows_in_mm(scene, shift_mm) -> None:
    _, other, refs = scene
    moved = ndi.shift(other, (0, 0, shift_mm / SPACING[2]), order=1, mode="nearest")
    for ref in refs.values():
        hd95 = boundary_error(ref, moved, SPACING)["hd95_mm"]
        assert abs(hd95 - shift_mm) < 0.2 * shift_mm, (ref.name, hd95)

"""The model grid of a scan: closest-LPS axes, the package's in-plane spacing, the scan's slices
and centre; and the way back lands on the scan's own voxels."""

from __future__ import annotations

import numpy as np
from synth_helpers import ct_volume, rotation

from edge_runtime.resample import ModelGrid


def test_512_over_360mm_becomes_the_128_grid() -> None:
    ct = ct_volume(shape=(3, 512, 512), spacing=(360 / 512, 360 / 512, 6.25))
    grid = ModelGrid.for_image(ct, (360 / 128, 360 / 128))
    assert grid.shape == (3, 128, 128)
    assert grid.slice_spacing_mm == 6.25
    # same physical centre
    centre = ct.index_to_physical((np.array(ct.size) - 1) / 2)
    ref = grid.reference
    ref_centre = ref.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in ref.GetSize()])
    np.testing.assert_allclose(ref_centre, centre, atol=1e-6)


def test_flipped_and_oblique_axes_are_reoriented_not_resliced() -> None:
    ras = ct_volume(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    grid = ModelGrid.for_image(ras, (1.5, 1.5))
    np.testing.assert_allclose(grid.reference.GetDirection(), np.eye(3).ravel(), atol=1e-12)
    tilted = ct_volume(direction=rotation((0.2, 1.0, 0.1), 12.0))
    grid = ModelGrid.for_image(tilted, (1.5, 1.5))
    np.testing.assert_allclose(grid.reference.GetDirection(), tilted.direction, atol=1e-12)
    assert grid.shape == tilted.voxels.shape


def test_there_and_back_is_exact_on_the_package_spacing() -> None:
    ct = ct_volume(direction=rotation((1.0, 0.5, 0.0), 30.0))
    grid = ModelGrid.for_image(ct, (1.5, 1.5))
    there = grid.to_model(ct)
    np.testing.assert_allclose(there, ct.voxels, atol=1e-3)
    back = grid.to_image(there, ct)
    np.testing.assert_allclose(back, ct.voxels, atol=1e-3)


def test_coarser_model_grid_round_trip_is_smooth_and_complete() -> None:
    ct = ct_volume(shape=(2, 60, 60), spacing=(0.75, 0.75, 3.0))
    grid = ModelGrid.for_image(ct, (1.5, 1.5))
    assert grid.shape == (2, 30, 30)
    back = grid.to_image(grid.to_model(ct), ct)
    assert back.shape == ct.voxels.shape and np.isfinite(back).all()
    # no invented background at the edges: the outermost ring takes the nearest model value
    assert back.min() >= ct.voxels.min() - 1e-3
    inner = (slice(None), slice(4, -4), slice(4, -4))
    assert np.corrcoef(back[inner].ravel(), ct.voxels[inner].ravel())[0, 1] > 0.9

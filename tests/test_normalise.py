"""The intensity maps shared by training and the runtime."""

import numpy as np

from edge_runtime.normalise import body_percentile, from_model_space, to_model_space


def test_hu_window_maps_linearly_and_clips() -> None:
    hu = np.array([-1000.0, -360.0, 40.0, 440.0, 3000.0])
    assert to_model_space(hu, (-360.0, 440.0)).tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]
    assert to_model_space(hu, (-360.0, 440.0)).dtype == np.float32


def test_small_enhancement_survives() -> None:
    """5 HU of enhancement stays distinguishable (no 8-bit quantisation)."""
    a, b = to_model_space(np.array([60.0, 65.0]), (-360.0, 440.0))
    assert b - a > 0.01


def test_intensity_round_trip_inside_range() -> None:
    x = np.random.default_rng(0).uniform(0, 812.5, size=1000).astype(np.float32)
    back = from_model_space(to_model_space(x, (0.0, 812.5)), (0.0, 812.5))
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-3)


def test_intensity_is_clipped_outside_range() -> None:
    assert to_model_space(np.array([-5.0, 2000.0]), (0.0, 100.0)).tolist() == [-1.0, 1.0]


def test_body_percentile() -> None:
    vol = np.zeros((4, 4, 4), dtype=np.float32)
    body = np.zeros_like(vol, dtype=bool)
    body[1:3, 1:3, 1:3] = True
    vol[body] = np.arange(8, dtype=np.float32) + 1
    assert body_percentile(vol, body, 100.0) == 8.0
    assert body_percentile(np.zeros((2, 2)), np.zeros((2, 2), dtype=bool), 99.5) == 1.0

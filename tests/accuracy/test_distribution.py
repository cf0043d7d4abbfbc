"""The Frechet filter-bank distance: the Frechet formula, and the features react to texture."""

import numpy as np
import pytest
from scipy import linalg
from scipy import ndimage as ndi

from benchmarks.accuracy.distribution import frechet_distance, intensity_scale, volume_features


def test_frechet_formula_matches_sqrtm() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(loc=0.3, size=(300, 6)) @ rng.normal(size=(6, 6))
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * linalg.sqrtm(s_a @ s_b).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_of_known_gaussians() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(loc=[0, 0], scale=[1, 2], size=(200_000, 2))
    b = rng.normal(loc=[1, 0], scale=[1, 3], size=(200_000, 2))
    # diagonal covariances: |dmu|^2 + sum (sd_a - sd_b)^2 = 1 + 1
    assert frechet_distance(a, b) == pytest.approx(2.0, abs=0.05)


def test_features_see_blur_and_noise() -> None:
    rng = np.random.default_rng(2)
    shape = (6, 64, 64)
    body = np.ones(shape, bool)
    liver = np.zeros(shape, bool)
    liver[:, 10:50, 10:50] = True
    tex = lambda: ndi.gaussian_filter(rng.normal(size=shape), (0, 1.5, 1.5)) * 30 + 100  # noqa: E731
    truth, other = tex(), tex()
    scale = intensity_scale(truth, body)
    ft = volume_features(truth, body, liver, scale)
    assert ft.shape == (6 * 16, 18)
    same_kind = frechet_distance(volume_features(other, body, liver, scale), ft)
    blurred = frechet_distance(
        volume_features(ndi.gaussian_filter(other, (0, 2, 2)), body, liver, scale), ft
    )
    noisy = frechet_distance(
        volume_features(other + rng.normal(scale=20, size=shape), body, liver, scale), ft
    )
    assert same_kind < 0.2 * blurred and same_kind < 0.2 * noisy

"""MRI follows the signal equations: contrast orderings, post-contrast T1, Rician noise."""

from __future__ import annotations

import numpy as np
import pytest
from phantom_helpers import eroded, tissue_mask
from scipy import stats

from models.phantom.render import LABELS


def _means(cases, seq: str) -> dict[str, float]:
    """Mean signal per tissue over both rich patients (eroded masks, noise-free)."""
    names = {
        "fat": "fat", "muscle": "muscle", "liver": "liver", "spleen": "spleen", "bile": "bile",
        "cyst": "cyst", "hemangioma": "hemangioma", "hcc": "hcc", "metastasis": "metastasis",
    }  # fmt: skip
    out: dict[str, list[float]] = {}
    for case in cases:
        img = case.images[f"mr_{seq}_ctphase"]
        for key, tissue in names.items():
            mask = tissue_mask(case, tissue)
            if mask.sum() >= 8:
                out.setdefault(key, []).append(float(img[mask].mean()))
    return {k: float(np.mean(v)) for k, v in out.items()}


def test_t2wi_ordering(clean_rich) -> None:
    m = _means(clean_rich, "t2")
    assert {"cyst", "bile", "hemangioma", "spleen", "hcc", "metastasis", "liver", "muscle"} <= set(
        m
    )
    fluid = min(m["cyst"], m["bile"])
    assert fluid > m["hemangioma"]
    middle = (m["spleen"], m["hcc"], m["metastasis"])
    assert m["hemangioma"] > max(middle)
    assert min(middle) > m["liver"] > m["muscle"]


def test_t1wi_ordering(clean_rich) -> None:
    m = _means(clean_rich, "t1")
    assert m["fat"] > m["liver"] > m["muscle"] > m["spleen"] > m["cyst"]


def test_post_contrast_brighter_exactly_where_uptake(clean_rich) -> None:
    for case in clean_rich:
        t1, t1c = case.images["mr_t1_ctphase"], case.images["mr_t1c_ctphase"]
        uptake = case.extras["uptake_mr"]
        assert (uptake > 1e-3).sum() > 1000 and (uptake == 0).sum() > 1000
        assert np.all(t1c[uptake > 1e-3] > t1[uptake > 1e-3])
        assert np.array_equal(t1c[uptake == 0], t1[uptake == 0])
        assert np.all(t1c >= t1)


def test_background_is_rayleigh(noisy_case) -> None:
    case = noisy_case
    air = eroded(case.labels == LABELS["background"], iterations=2)
    for seq in ("t1", "t2", "t1c"):
        sigma = case.meta["mr_noise_sigma"][seq]
        values = case.images[f"mr_{seq}"][air].astype(np.float64)
        assert values.min() >= 0
        assert values.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.02)
        assert values.std() == pytest.approx(sigma * np.sqrt(2 - np.pi / 2), rel=0.03)
        sample = values[:: max(1, len(values) // 20000)]
        assert stats.kstest(sample, stats.rayleigh(scale=sigma).cdf).pvalue > 1e-3
        # a Gaussian with the same mean and spread fits clearly worse (skewed, bounded at 0)
        gauss = stats.kstest(sample, stats.norm(values.mean(), values.std()).cdf).statistic
        assert gauss > stats.kstest(sample, stats.rayleigh(scale=sigma).cdf).statistic


def test_mr_noise_and_bias_are_per_acquisition(noisy_case) -> None:
    snr = noisy_case.meta["mr_snr"]
    lo, hi = noisy_case.config.mr.snr
    assert lo <= snr <= hi
    assert noisy_case.config.mr.bias_amplitude[0] <= noisy_case.meta["mr_bias_amplitude"]

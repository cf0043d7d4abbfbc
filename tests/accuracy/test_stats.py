"""benchmarks.stats against scipy and statsmodels on fixed data."""

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import DescrStatsW

from benchmarks.stats import StatsConfig, bootstrap_ci, noninferiority, paired_comparison
from edge_runtime.errors import InputError

A = np.array([0.81, 0.79, 0.84, 0.77, 0.83, 0.80, 0.78, 0.86, 0.82, 0.80, 0.79, 0.85])
B = np.array([0.80, 0.80, 0.82, 0.76, 0.83, 0.78, 0.77, 0.85, 0.80, 0.81, 0.77, 0.83])


def test_paired_tests_match_scipy() -> None:
    res = paired_comparison(A, B, metric="ssim", names=("full", "edge"), margin=0.01)
    t = sps.ttest_rel(B, A)
    w = sps.wilcoxon(B, A)
    assert res.t_stat == pytest.approx(t.statistic, rel=1e-12)
    assert res.t_p == pytest.approx(t.pvalue, rel=1e-12)
    assert res.wilcoxon_stat == pytest.approx(w.statistic, rel=1e-12)
    assert res.wilcoxon_p == pytest.approx(w.pvalue, rel=1e-12)
    d = B - A
    assert res.mean_diff == pytest.approx(d.mean())
    assert res.cohen_dz == pytest.approx(d.mean() / d.std(ddof=1))
    # hand-computed on this data: B is lower by 0.01 on average and significantly so
    assert res.mean_diff == pytest.approx(-0.01, abs=1e-12)
    assert res.t_significant
    assert -1.0 <= res.rank_biserial < 0


def test_noninferiority_matches_statsmodels() -> None:
    d = B - A
    _, p_ref, _ = DescrStatsW(d).ttest_mean(value=-0.02, alternative="larger")
    p, ok = noninferiority(A, B, 0.02)
    assert p == pytest.approx(p_ref, rel=1e-12)
    # mean difference -0.01, margin 0.02: t = (0.01)/(sd/sqrt n)
    t = (d.mean() + 0.02) / (d.std(ddof=1) / np.sqrt(d.size))
    assert p == pytest.approx(sps.t.sf(t, d.size - 1), rel=1e-10)
    assert ok
    # margin equal to the observed loss: not shown non-inferior
    p2, ok2 = noninferiority(A, B, 0.01)
    assert p2 == pytest.approx(0.5, abs=1e-9) and not ok2
    # lower-is-better metric: an increase of error is the loss
    p3, _ = noninferiority(A, B, 0.02, higher_is_better=False)
    _, p3_ref, _ = DescrStatsW(A - B).ttest_mean(value=-0.02, alternative="larger")
    assert p3 == pytest.approx(p3_ref, rel=1e-12)


def test_bootstrap_is_seeded_and_sensible() -> None:
    d = B - A
    ci1 = bootstrap_ci(d, n_boot=5000, seed=3)
    ci2 = bootstrap_ci(d, n_boot=5000, seed=3)
    ci3 = bootstrap_ci(d, n_boot=5000, seed=4)
    assert ci1 == ci2 and ci1 != ci3
    assert ci1[0] < d.mean() < ci1[1]
    ref = sps.bootstrap((d,), np.mean, n_resamples=20000, method="percentile", rng=0)
    assert ci1[0] == pytest.approx(ref.confidence_interval.low, abs=2e-3)
    assert ci1[1] == pytest.approx(ref.confidence_interval.high, abs=2e-3)
    # the CI is in the comparison record and follows the config's seed
    res = paired_comparison(A, B, config=StatsConfig(n_boot=5000, seed=3))
    assert (res.ci_low, res.ci_high) == ci1


def test_identical_methods_are_not_different() -> None:
    res = paired_comparison(A, A, margin=0.01)
    assert res.t_p == 1.0 and res.wilcoxon_p == 1.0 and not res.t_significant
    assert res.noninferior


def test_bad_samples() -> None:
    with pytest.raises(InputError, match="length"):
        paired_comparison(A, B[:-1])
    with pytest.raises(InputError, match="NaN"):
        paired_comparison(A, np.where(B > 0.84, np.nan, B))
    with pytest.raises(InputError, match="at least 2"):
        paired_comparison(A[:1], B[:1])

"""Paired statistics for "method B vs method A on the same cases".

Every comparison in the project (compressed vs full, ours vs a baseline) is paired by case, so
the tests here are paired: Student's t on the differences, the Wilcoxon signed-rank test, an
effect size, a seeded bootstrap confidence interval of the mean difference, and a one-sided
non-inferiority test against a stated margin. The p-values come from scipy and statsmodels
rather than from formulas of our own; what this module adds is one record per comparison with
every number a reviewer asks for, and a fixed seed so a report is reproducible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps
from statsmodels.stats.weightstats import DescrStatsW

from edge_runtime.errors import InputError


@dataclass(frozen=True)
class StatsConfig:
    """Defaults of every comparison; a report states them next to its numbers."""

    alpha: float = 0.05  # two-sided significance level of the paired tests
    n_boot: int = 10_000  # bootstrap resamples: Monte-Carlo error of a 95 % bound ~ 0.2 % of sd
    seed: int = 20_251_125  # bootstrap seed, fixed so a report is reproducible
    ci_level: float = 0.95
    # Non-inferiority: B is no worse than A if mean(B - A) > -margin (one-sided, level alpha).
    # 0.01 in SSIM is below what readers notice and about the spread between realisations.
    margin: float = 0.01


@dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of method B against method A on one metric (difference = B - A)."""

    metric: str
    a: str
    b: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    sd_diff: float
    t_stat: float
    t_p: float
    wilcoxon_stat: float
    wilcoxon_p: float
    cohen_dz: float  # mean difference / sd of differences
    rank_biserial: float  # matched-pairs rank-biserial correlation (Wilcoxon's effect size)
    ci_low: float
    ci_high: float
    ci_level: float
    alpha: float
    t_significant: bool
    wilcoxon_significant: bool
    noninferiority_margin: float | None
    noninferiority_p: float | None
    noninferior: bool | None
    higher_is_better: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise InputError(f"paired samples differ in length: {a.size} vs {b.size}")
    if a.size < 2:
        raise InputError(f"a paired test needs at least 2 cases, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("paired samples contain NaN or infinite values")
    return a, b


def bootstrap_ci(
    values: np.ndarray, *, n_boot: int = 10_000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values`, reproducible from `seed`."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise InputError("bootstrap of an empty sample")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    means = v[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def noninferiority(
    a: np.ndarray,
    b: np.ndarray,
    margin: float,
    *,
    alpha: float = 0.05,
    higher_is_better: bool = True,
) -> tuple[float, bool]:
    """One-sided paired t-test of H0: B is worse than A by at least `margin`.

    With d = B - A (higher is better): H0 mean(d) <= -margin against H1 mean(d) > -margin.
    For a lower-is-better metric (MAE, error in mm) the sign of d is flipped. Returns
    (p, non-inferior at level alpha).
    """
    a, b = _paired(a, b)
    if margin < 0:
        raise InputError(f"non-inferiority margin must be >= 0, got {margin}")
    d = b - a if higher_is_better else a - b
    if np.ptp(d) == 0.0:  # no spread: the verdict is the sign of the constant difference
        p = 0.0 if d[0] > -margin else 1.0
    else:
        _, p, _ = DescrStatsW(d).ttest_mean(value=-margin, alternative="larger")
    return float(p), bool(p < alpha)


def paired_comparison(
    a: np.ndarray,
    b: np.ndarray,
    *,
    metric: str = "metric",
    names: tuple[str, str] = ("A", "B"),
    higher_is_better: bool = True,
    margin: float | None = None,
    config: StatsConfig = StatsConfig(),
) -> PairedComparison:
    """Every paired number for one metric: t-test, Wilcoxon, effect sizes, bootstrap CI, NI."""
    a, b = _paired(a, b)
    d = b - a
    sd = float(d.std(ddof=1))
    if np.all(d == 0.0):
        # Identical results: no evidence of a difference, and tests are undefined.
        t_stat, t_p, w_stat, w_p, dz, rbc = 0.0, 1.0, 0.0, 1.0, 0.0, 0.0
    else:
        t_res = sps.ttest_rel(b, a)
        t_stat, t_p = float(t_res.statistic), float(t_res.pvalue)
        dz = float(d.mean() / sd) if sd > 0.0 else float("nan")  # constant shift: undefined
        w_res = sps.wilcoxon(b, a, zero_method="wilcox")
        w_stat, w_p = float(w_res.statistic), float(w_res.pvalue)
        nz = d[d != 0.0]
        ranks = sps.rankdata(np.abs(nz))
        r_plus = float(ranks[nz > 0].sum())
        r_minus = float(ranks[nz < 0].sum())
        rbc = (r_plus - r_minus) / (r_plus + r_minus)
    lo, hi = bootstrap_ci(d, n_boot=config.n_boot, level=config.ci_level, seed=config.seed)
    ni_p = ni = None
    if margin is not None:
        ni_p, ni = noninferiority(
            a, b, margin, alpha=config.alpha, higher_is_better=higher_is_better
        )
    return PairedComparison(
        metric=metric,
        a=names[0],
        b=names[1],
        n=int(a.size),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        mean_diff=float(d.mean()),
        sd_diff=sd,
        t_stat=t_stat,
        t_p=t_p,
        wilcoxon_stat=w_stat,
        wilcoxon_p=w_p,
        cohen_dz=dz,
        rank_biserial=rbc,
        ci_low=lo,
        ci_high=hi,
        ci_level=config.ci_level,
        alpha=config.alpha,
        t_significant=bool(t_p < config.alpha),
        wilcoxon_significant=bool(w_p < config.alpha),
        noninferiority_margin=margin,
        noninferiority_p=ni_p,
        noninferior=ni,
        higher_is_better=higher_is_better,
    )


def verdict_text(c: dict[str, Any]) -> str:
    """A comparison's non-inferiority boolean (`paired_comparison`) in words: the one wording of
    the CLI and the report, which never re-test."""
    if c.get("noninferior") is True:
        return f"non-inferior (margin {c['noninferiority_margin']})"
    if c.get("noninferior") is False:
        return f"NOT shown non-inferior (margin {c['noninferiority_margin']})"
    return "difference only (no margin set for this metric)"

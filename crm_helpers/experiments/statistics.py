"""Statistics of an A/B test on sufficient statistics: small frozen dataclasses, pure functions.

The style and the formulas follow GrowthBook's gbstats (``models/statistics.py``,
``frequentist/tests.py``, ``bayesian/tests.py``, version 0.8.0); every function broadcasts
over NumPy arrays (one comparison per element), so simulations run vectorised.

Semantics
---------
* Comparisons are ``b - a``: ``a`` is the control, ``b`` a treatment arm.
* Variance of one unit's value: binary metrics ``p (1 - p)``; other metrics the sample
  variance ``(sum_sq - sum**2 / n) / (n - 1)``; ratio metrics ``sum(m) / sum(d)`` the
  delta-method variance; CUPED ``var(y) + theta**2 var(x) - 2 theta cov(x, y)`` with ``theta``
  estimated on both arms pooled (:func:`pooled_theta`).
* Absolute difference: ``mean_b - mean_a`` with variance ``var_a / n_a + var_b / n_b``;
  relative lift: ``(mean_b - mean_a) / mean_a`` (unadjusted control mean under CUPED) with
  the delta-method variance ``var_b / (mean_a**2 n_b) + var_a mean_b**2 / (mean_a**4 n_a)``.
* Reference distribution: Welch t (Welch-Satterthwaite degrees of freedom) for continuous
  metrics — equal to ``scipy.stats.ttest_ind(equal_var=False)``; the normal for binary and
  ratio metrics — the unpooled (Wald) two-proportion z of
  ``statsmodels.stats.proportion.test_proportions_2indep(method="wald")``.
* An arm with ``n < 2``, a zero control mean (relative lift) or zero variance in both arms
  gives NaN estimates and intervals (never an exception); the caller says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "BayesResult",
    "Comparison",
    "CupedStats",
    "MeanStats",
    "RatioStats",
    "SequentialResult",
    "SrmResult",
    "adjust_p_values",
    "bayesian",
    "compare",
    "non_inferiority",
    "pooled_theta",
    "sequential",
    "srm_test",
]


def _a(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _out(x) -> np.ndarray | float:
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else x


def _div(num, den) -> np.ndarray:
    num, den = _a(num), _a(den)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


@dataclass(frozen=True)
class MeanStats:
    """Sufficient statistics of a per-user metric in one arm: ``n``, ``sum``, ``sum_sq``.

    ``binary=True`` for 0/1 metrics (then ``sum_sq == sum`` and the variance is ``p(1-p)``).
    """

    n: ArrayLike
    sum: ArrayLike
    sum_sq: ArrayLike
    binary: bool = False

    @property
    def mean(self) -> np.ndarray:
        return _div(self.sum, self.n)

    @property
    def unadjusted_mean(self) -> np.ndarray:
        return self.mean

    @property
    def variance(self) -> np.ndarray:
        n = _a(self.n)
        if self.binary:
            p = self.mean
            return p * (1.0 - p)
        return _div(_a(self.sum_sq) - _a(self.sum) ** 2 / np.where(n > 0, n, 1.0), n - 1.0)


@dataclass(frozen=True)
class RatioStats:
    """A ratio metric ``sum(num) / sum(den)`` in one arm (delta method), with the
    cross-product ``num_den_sum = sum(num * den)``."""

    num: MeanStats
    den: MeanStats
    num_den_sum: ArrayLike

    @property
    def n(self) -> ArrayLike:
        return self.num.n

    binary = False

    @property
    def mean(self) -> np.ndarray:
        return _div(self.num.sum, self.den.sum)

    @property
    def unadjusted_mean(self) -> np.ndarray:
        return self.mean

    @property
    def covariance(self) -> np.ndarray:
        n = _a(self.n)
        nn = np.where(n > 0, n, 1.0)
        return _div(_a(self.num_den_sum) - _a(self.num.sum) * _a(self.den.sum) / nn, n - 1.0)

    @property
    def variance(self) -> np.ndarray:
        mm, md = self.num.mean, self.den.mean
        with np.errstate(divide="ignore", invalid="ignore"):
            v = (
                self.num.variance / md**2
                - 2.0 * self.covariance * mm / md**3
                + mm**2 * self.den.variance / md**4
            )
        return np.where(md != 0, v, np.nan)


@dataclass(frozen=True)
class CupedStats:
    """A metric with its pre-period covariate (CUPED): ``post``, ``pre`` and
    ``cross_sum = sum(post * pre)``; ``theta`` from :func:`pooled_theta`."""

    post: MeanStats
    pre: MeanStats
    cross_sum: ArrayLike
    theta: ArrayLike = 0.0

    @property
    def n(self) -> ArrayLike:
        return self.post.n

    @property
    def binary(self) -> bool:
        return self.post.binary

    @property
    def covariance(self) -> np.ndarray:
        n = _a(self.n)
        nn = np.where(n > 0, n, 1.0)
        return _div(_a(self.cross_sum) - _a(self.post.sum) * _a(self.pre.sum) / nn, n - 1.0)

    @property
    def mean(self) -> np.ndarray:
        return self.post.mean - _a(self.theta) * self.pre.mean

    @property
    def unadjusted_mean(self) -> np.ndarray:
        return self.post.mean

    @property
    def variance(self) -> np.ndarray:
        th = _a(self.theta)
        return self.post.variance + th**2 * self.pre.variance - 2.0 * th * self.covariance


def pooled_theta(a: CupedStats, b: CupedStats) -> np.ndarray | float:
    """CUPED coefficient ``cov(post, pre) / var(pre)`` of both arms pooled (gbstats
    ``compute_theta``); 0 where the pooled pre- or post-period variance is 0."""
    n = _a(a.n) + _a(b.n)
    post = MeanStats(
        n, _a(a.post.sum) + _a(b.post.sum), _a(a.post.sum_sq) + _a(b.post.sum_sq), a.binary
    )
    pre = MeanStats(
        n, _a(a.pre.sum) + _a(b.pre.sum), _a(a.pre.sum_sq) + _a(b.pre.sum_sq), a.pre.binary
    )
    joint = CupedStats(post, pre, _a(a.cross_sum) + _a(b.cross_sum))
    ok = (pre.variance > 0) & (post.variance > 0)
    return _out(np.where(ok, _div(joint.covariance, np.where(ok, pre.variance, 1.0)), 0.0))


def with_theta(a: CupedStats, b: CupedStats) -> tuple[CupedStats, CupedStats]:
    """Both arms with their pooled theta set."""
    th = pooled_theta(a, b)
    return CupedStats(a.post, a.pre, a.cross_sum, th), CupedStats(b.post, b.pre, b.cross_sum, th)


def variance_reduction(a: CupedStats, b: CupedStats) -> np.ndarray | float:
    """Share of the variance of the absolute difference that CUPED removes (0..1)."""
    a2, b2 = with_theta(a, b)
    raw = _a(a.post.variance) / _a(a.n) + _a(b.post.variance) / _a(b.n)
    adj = _a(a2.variance) / _a(a2.n) + _a(b2.variance) / _a(b2.n)
    return _out(1.0 - _div(adj, raw))


Stats = MeanStats | RatioStats | CupedStats


@dataclass(frozen=True)
class Comparison:
    """Frequentist comparison of arm ``b`` with control ``a``.

    Attributes
    ----------
    diff, diff_se, diff_ci_low, diff_ci_high
        Absolute difference of means, its standard error and interval.
    rel_lift, rel_se, rel_ci_low, rel_ci_high
        Relative lift (delta method), its standard error and interval.
    p_value
        Of the absolute difference against 0 (``alternative`` as asked).
    dof
        Welch degrees of freedom (``inf`` for the normal reference).
    """

    diff: np.ndarray | float
    diff_se: np.ndarray | float
    diff_ci_low: np.ndarray | float
    diff_ci_high: np.ndarray | float
    rel_lift: np.ndarray | float
    rel_se: np.ndarray | float
    rel_ci_low: np.ndarray | float
    rel_ci_high: np.ndarray | float
    p_value: np.ndarray | float
    dof: np.ndarray | float


def _uses_t(s: Stats) -> bool:
    return isinstance(s, MeanStats | CupedStats) and not s.binary


def welch_dof(a: Stats, b: Stats) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of ``var_a/n_a + var_b/n_b``."""
    va, vb, na, nb = _a(a.variance), _a(b.variance), _a(a.n), _a(b.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (va / na + vb / nb) ** 2 / (va**2 / (na**2 * (na - 1)) + vb**2 / (nb**2 * (nb - 1)))


def _diff_parts(a: Stats, b: Stats):
    if isinstance(a, CupedStats) and isinstance(b, CupedStats):
        a, b = with_theta(a, b)
    na, nb = _a(a.n), _a(b.n)
    ma, mb, ua, ub = a.mean, b.mean, a.unadjusted_mean, b.unadjusted_mean
    va, vb = _a(a.variance), _a(b.variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = mb - ma
        var = va / na + vb / nb
        rel = diff / ua
        rel_var = vb / (ua**2 * nb) + va * ub**2 / (ua**4 * na)
    bad = (na < 2) | (nb < 2) | ~(var > 0)
    rel_bad = bad | (ua == 0)
    dof = welch_dof(a, b) if _uses_t(a) else np.full(np.shape(diff), np.inf)
    return diff, var, rel, rel_var, bad, rel_bad, dof


def _quantile(q: float, dof: np.ndarray) -> np.ndarray:
    from scipy import stats as _st  # at call time: ~0.8 s of import (issue #24)

    return np.where(np.isinf(dof), _st.norm.ppf(q), _st.t.ppf(q, np.where(np.isinf(dof), 1, dof)))


def _sf(x: np.ndarray, dof: np.ndarray) -> np.ndarray:
    from scipy import stats as _st  # at call time: ~0.8 s of import (issue #24)

    return np.where(np.isinf(dof), _st.norm.sf(x), _st.t.sf(x, np.where(np.isinf(dof), 1, dof)))


def _interval(est, se, dof, alpha, alternative):
    if alternative == "two-sided":
        w = _quantile(1 - alpha / 2, dof) * se
        return est - w, est + w
    w = _quantile(1 - alpha, dof) * se
    if alternative == "greater":
        return est - w, np.full(np.shape(est), np.inf)
    return np.full(np.shape(est), -np.inf), est + w


def compare(a: Stats, b: Stats, alpha: float = 0.05, alternative: str = "two-sided") -> Comparison:
    """Difference and relative lift of ``b`` vs ``a`` with intervals and a p-value.

    Parameters
    ----------
    a, b : MeanStats, RatioStats or CupedStats
        Control and treatment (same type); fields broadcast to a common shape.
    alpha : float
        Level: intervals cover with ``1 - alpha``.
    alternative : {"two-sided", "greater", "less"}
        ``greater``: H1 ``b > a`` (interval ``[low, inf)``), ``less``: H1 ``b < a``.

    Returns
    -------
    Comparison
        Scalars or arrays of the broadcast shape.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    diff, var, rel, rel_var, bad, rel_bad, dof = _diff_parts(a, b)
    with np.errstate(invalid="ignore"):
        se, rel_se = np.sqrt(var), np.sqrt(rel_var)
        stat = diff / se
    if alternative == "two-sided":
        p = 2.0 * _sf(np.abs(stat), dof)
    elif alternative == "greater":
        p = _sf(stat, dof)
    else:
        p = _sf(-stat, dof)
    lo, hi = _interval(diff, se, dof, alpha, alternative)
    rlo, rhi = _interval(rel, rel_se, dof, alpha, alternative)
    nan = np.nan

    def m(x, mask):
        return _out(np.where(mask, nan, x))

    return Comparison(
        diff=m(diff, bad),
        diff_se=m(se, bad),
        diff_ci_low=m(lo, bad),
        diff_ci_high=m(hi, bad),
        rel_lift=m(rel, rel_bad),
        rel_se=m(rel_se, rel_bad),
        rel_ci_low=m(rlo, rel_bad),
        rel_ci_high=m(rhi, rel_bad),
        p_value=m(p, bad),
        dof=_out(dof),
    )


def non_inferiority(
    a: Stats, b: Stats, margin: float, alpha: float = 0.05, higher_is_better: bool = True
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """One-sided test that ``b`` is not worse than ``a`` by more than ``margin`` (relative).

    H0: ``rel_lift <= -margin`` (``>= +margin`` when lower is better). Returns
    ``(p_value, bound)``: the one-sided p-value and the ``1 - alpha`` one-sided bound of the
    relative lift (lower bound when higher is better); non-inferior when ``p < alpha``.
    """
    _, _, rel, rel_var, _, rel_bad, dof = _diff_parts(a, b)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(rel_var)
        if higher_is_better:
            p = _sf((rel + margin) / se, dof)
            bound = rel - _quantile(1 - alpha, dof) * se
        else:
            p = _sf((margin - rel) / se, dof)
            bound = rel + _quantile(1 - alpha, dof) * se
    return _out(np.where(rel_bad, np.nan, p)), _out(np.where(rel_bad, np.nan, bound))


@dataclass(frozen=True)
class BayesResult:
    """Bayesian relative lift (gbstats ``EffectBayesianABTest``, flat prior).

    ``chance_to_beat_control`` = P(lift > 0); ``ci_low, ci_high`` the ``1 - alpha``
    credible interval of the relative lift; ``expected_loss_control`` /
    ``expected_loss_treatment``: expected relative loss of choosing control / the arm
    (gbstats ``risk``); ``mean``, ``sd`` of the normal posterior.
    """

    chance_to_beat_control: np.ndarray | float
    ci_low: np.ndarray | float
    ci_high: np.ndarray | float
    expected_loss_control: np.ndarray | float
    expected_loss_treatment: np.ndarray | float
    mean: np.ndarray | float
    sd: np.ndarray | float


def bayesian(a: Stats, b: Stats, alpha: float = 0.05) -> BayesResult:
    """Posterior of the relative lift of ``b`` vs ``a`` under a flat prior (normal
    approximation with the delta-method variance, as gbstats 0.8.0 by default)."""
    from scipy import stats as _st

    _, _, rel, rel_var, _, rel_bad, _ = _diff_parts(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(rel_var)
        ctw = _st.norm.sf(0.0, rel, sd)
        lo, hi = _st.norm.ppf(alpha / 2, rel, sd), _st.norm.ppf(1 - alpha / 2, rel, sd)
        z = rel / sd
        pdf = _st.norm.pdf(z)
        risk_ctrl = rel * _st.norm.cdf(z) + sd * pdf
        risk_trt = sd * pdf - rel * _st.norm.cdf(-z)

    def m(x):
        return _out(np.where(rel_bad, np.nan, x))

    return BayesResult(m(ctw), m(lo), m(hi), m(risk_ctrl), m(risk_trt), m(rel), m(sd))


@dataclass(frozen=True)
class SequentialResult:
    """Always-valid confidence sequence of the relative lift (gbstats
    ``SequentialTwoSidedTTest``: Waudby-Smith et al. 2023, eq. 9) and its p-value."""

    rel_lift: np.ndarray | float
    ci_low: np.ndarray | float
    ci_high: np.ndarray | float
    p_value: np.ndarray | float


def sequential(a: Stats, b: Stats, alpha: float = 0.05, tuning: float = 5000.0) -> SequentialResult:
    """Asymptotic confidence sequence of the relative lift, valid under continuous peeking.

    ``tuning`` is gbstats' ``sequential_tuning_parameter`` (the sample size at which the
    sequence is tightest). Broadcasts, so a day-by-day path is one call on cumulative stats.
    """
    _, _, rel, rel_var, _, rel_bad, _ = _diff_parts(a, b)
    big_n = _a(a.n) + _a(b.n)
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = rel_var * big_n
        tr = big_n * rho2 + 1.0
        width = np.sqrt(s2) * np.sqrt(2 * tr * np.log(np.sqrt(tr) / alpha) / (big_n**2 * rho2))
        st2 = rel**2 * big_n / rel_var
        evalue = np.exp(rho2 * st2 / (2 * tr)) / np.sqrt(tr)
        p = np.minimum(1.0 / evalue, 1.0)

    def m(x):
        return _out(np.where(rel_bad, np.nan, x))

    return SequentialResult(m(rel), m(rel - width), m(rel + width), m(p))


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio mismatch: Pearson chi-square of observed arm sizes vs the planned split."""

    p_value: float
    statistic: float
    observed: dict[str, int]
    expected: dict[str, float]


def srm_test(observed: dict[str, int], planned: dict[str, float]) -> SrmResult:
    """Chi-square goodness of fit of ``observed`` counts to the ``planned`` weights.

    Arms with a positive planned weight are tested (an arm with no users counts as 0);
    equals ``scipy.stats.chisquare`` and gbstats ``check_srm``. One arm only: p = 1.
    """
    arms = [k for k, w in planned.items() if w > 0]
    obs = np.array([observed.get(k, 0) for k in arms], dtype=float)
    w = np.array([planned[k] for k in arms], dtype=float)
    total = obs.sum()
    exp = w / w.sum() * total
    if len(arms) < 2 or total == 0:
        return SrmResult(1.0, 0.0, {k: int(v) for k, v in zip(arms, obs, strict=True)}, {})
    from scipy import stats as _st

    res = _st.chisquare(obs, exp)
    return SrmResult(
        float(res.pvalue),
        float(res.statistic),
        {k: int(v) for k, v in zip(arms, obs, strict=True)},
        {k: float(v) for k, v in zip(arms, exp, strict=True)},
    )


def adjust_p_values(p_values: ArrayLike, method: str = "holm") -> np.ndarray:
    """Holm (family-wise) or Benjamini-Hochberg (``"bh"``, FDR) adjusted p-values.

    NaNs are kept as NaN and not counted; the rest equal
    ``statsmodels.stats.multitest.multipletests(method="holm" | "fdr_bh")``. BH runs through
    statsmodels; Holm is the step-down formula written out, because statsmodels' Holm branch
    calls ``gc.collect()`` on every call (0.3 s in a notebook kernel; tests check equality).
    """
    from statsmodels.stats.multitest import multipletests

    if method not in ("holm", "bh", "none"):
        raise ValueError(f"correction must be 'holm', 'bh' or 'none', got {method!r}")
    p = _a(p_values).ravel()
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if not m:
        return out
    pv = p[ok]
    if method == "none":
        out[ok] = pv
    elif method == "bh":
        out[ok] = multipletests(pv, method="fdr_bh")[1]
    else:
        order = np.argsort(pv, kind="mergesort")
        adj = np.minimum(np.maximum.accumulate(pv[order] * (m - np.arange(m))), 1.0)
        res = np.empty(m)
        res[order] = adj
        out[ok] = res
    return out

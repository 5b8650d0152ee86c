"""Shared statistics on sufficient statistics (counts), in the style of gbstats.

Small frozen dataclasses and pure, vectorised functions. Everything here works on counts
(successes, trials), never on event-level data: the engine aggregates, this module infers.

Where statsmodels computes the same thing it does the work (Wilson intervals:
``proportion_confint``; Benjamini-Hochberg: ``multipletests``); the functions here are thin
wrappers that add the conventions below (broadcasting, NaN for empty samples).

Conventions
-----------
* Every function broadcasts over NumPy arrays; scalar inputs give Python floats.
* ``n == 0`` gives NaN rates, intervals and p-values (never an exception).
* Two-sample comparisons are ``b - a`` ("treatment minus control", "group minus rest").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

# scipy.special's functions are the ones scipy.stats' norm and chi2 call (norm.isf(q) is
# -ndtri(q), norm.sf(x) is ndtr(-x), chi2.sf(x, k) is chdtrc(k, x)); importing scipy.stats
# costs every report kernel ~0.6 s, so this module does without it (tests compare with it).
from scipy.special import chdtrc, ndtr, ndtri

__all__ = [
    "Chi2Result",
    "OddsRatioResult",
    "Proportion",
    "TwoProportionResult",
    "benjamini_hochberg",
    "chi2_independence",
    "odds_ratio",
    "two_proportion_test",
    "wilson_interval",
]


def _z(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return float(-ndtri(alpha / 2.0))


def _out(x: np.ndarray) -> np.ndarray | float:
    """0-d arrays become floats; arrays stay arrays."""
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else x


def wilson_interval(
    successes: ArrayLike, n: ArrayLike, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion, vectorised.

    Parameters
    ----------
    successes : array_like of int
        Number of successes, broadcastable against ``n``.
    n : array_like of int
        Number of trials. Where ``n == 0`` the interval is ``(NaN, NaN)``.
    alpha : float, default 0.05
        Two-sided level; the interval has coverage ``1 - alpha``.

    Returns
    -------
    (low, high) : tuple of np.ndarray of float
        Arrays of the broadcast shape of ``successes`` and ``n`` (0-d for scalars).
        Matches ``statsmodels.stats.proportion.proportion_confint(method="wilson")``.
    """
    from statsmodels.stats.proportion import proportion_confint

    x = np.asarray(successes, dtype=float)
    nn = np.asarray(n, dtype=float)
    x, nn = np.broadcast_arrays(x, nn)
    _z(alpha)  # validates alpha
    bad = ~(nn > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = proportion_confint(
            np.where(bad, 0.0, x), np.where(bad, 1.0, nn), alpha=alpha, method="wilson"
        )
        low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    # The exact endpoints are 0 at x == 0 and 1 at x == n; rounding would give 1 - 1e-16.
    low = np.where(x == 0, 0.0, low)
    high = np.where(x == nn, 1.0, high)
    low = np.where(bad, np.nan, np.clip(low, 0.0, 1.0))
    high = np.where(bad, np.nan, np.clip(high, 0.0, 1.0))
    return low, high


@dataclass(frozen=True)
class Proportion:
    """Sufficient statistics of a binomial proportion: ``successes`` out of ``n``.

    Fields may be scalars or equally shaped arrays (one proportion per element).
    """

    successes: ArrayLike
    n: ArrayLike

    @property
    def rate(self) -> np.ndarray | float:
        """``successes / n`` (NaN where ``n == 0``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return _out(np.asarray(self.successes, float) / np.asarray(self.n, float))

    @property
    def variance(self) -> np.ndarray | float:
        """Sampling variance of the rate, ``p (1 - p) / n`` (NaN where ``n == 0``)."""
        p = np.asarray(self.rate, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _out(p * (1.0 - p) / np.asarray(self.n, float))

    def interval(self, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """Wilson interval of the rate (see :func:`wilson_interval`)."""
        return wilson_interval(self.successes, self.n, alpha)


@dataclass(frozen=True)
class TwoProportionResult:
    """Comparison of two proportions, ``b - a``.

    Attributes
    ----------
    diff
        ``rate_b - rate_a``.
    ci_low, ci_high
        Newcombe hybrid-score interval of ``diff`` (Newcombe 1998, method 10).
    z
        Pooled two-proportion z statistic of ``b - a``.
    p_value
        Two-sided p-value of the pooled z-test.
    relative_lift
        ``diff / rate_a`` (NaN when ``rate_a == 0``).
    """

    diff: np.ndarray | float
    ci_low: np.ndarray | float
    ci_high: np.ndarray | float
    z: np.ndarray | float
    p_value: np.ndarray | float
    relative_lift: np.ndarray | float


def two_proportion_test(a: Proportion, b: Proportion, alpha: float = 0.05) -> TwoProportionResult:
    """Two-sided pooled z-test and Newcombe interval for ``rate_b - rate_a``, vectorised.

    Parameters
    ----------
    a, b : Proportion
        Baseline (control / rest) and comparison (treatment / group). Arrays broadcast.
    alpha : float, default 0.05
        Level of the ``1 - alpha`` interval.

    Returns
    -------
    TwoProportionResult
        p-value equals ``statsmodels.stats.proportion.proportions_ztest`` on ``[b, a]``; the
        interval equals ``confint_proportions_2indep(b..., a..., method="newcomb")``.
        When both samples are all-0 or all-1 (pooled variance 0) ``z = 0`` and ``p = 1``;
        when either ``n`` is 0 everything is NaN.
    """
    xa, na = np.asarray(a.successes, float), np.asarray(a.n, float)
    xb, nb = np.asarray(b.successes, float), np.asarray(b.n, float)
    xa, na, xb, nb = np.broadcast_arrays(xa, na, xb, nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        pa, pb = xa / na, xb / nb
        diff = pb - pa
        pool = (xa + xb) / (na + nb)
        se = np.sqrt(pool * (1.0 - pool) * (1.0 / na + 1.0 / nb))
        z = np.where(se > 0, diff / se, 0.0)
        p_value = 2.0 * ndtr(-np.abs(z))
        la, ha = wilson_interval(xa, na, alpha)
        lb, hb = wilson_interval(xb, nb, alpha)
        # Newcombe (1998) hybrid score interval for pb - pa.
        low = diff - np.sqrt((pb - lb) ** 2 + (ha - pa) ** 2)
        high = diff + np.sqrt((hb - pb) ** 2 + (pa - la) ** 2)
        lift = np.where(pa > 0, diff / pa, np.nan)
    bad = ~((na > 0) & (nb > 0))
    nan = np.nan
    return TwoProportionResult(
        diff=_out(np.where(bad, nan, diff)),
        ci_low=_out(np.where(bad, nan, low)),
        ci_high=_out(np.where(bad, nan, high)),
        z=_out(np.where(bad, nan, z)),
        p_value=_out(np.where(bad, nan, p_value)),
        relative_lift=_out(np.where(bad, nan, lift)),
    )


def benjamini_hochberg(p_values: ArrayLike, q: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg step-up false discovery rate control.

    Parameters
    ----------
    p_values : array_like of float, shape (m,)
        p-values; NaNs are ignored (not counted in ``m``; their q-value is NaN and they
        are never rejected).
    q : float, default 0.05
        Target false discovery rate.

    Returns
    -------
    (rejected, q_values) : tuple of np.ndarray, shape (m,)
        ``rejected`` is boolean (``q_value <= q``); ``q_values`` are the BH-adjusted
        p-values, equal to ``statsmodels.stats.multitest.multipletests(method="fdr_bh")``.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float).ravel()
    q_values = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q_values[ok] = np.clip(multipletests(p[ok], method="fdr_bh")[1], 0.0, 1.0)
    rejected = np.zeros(p.shape, dtype=bool)
    rejected[ok] = q_values[ok] <= q
    return rejected, q_values


@dataclass(frozen=True)
class OddsRatioResult:
    """Odds ratio of a 2x2 table ``[[a, b], [c, d]]`` = ``(a d) / (b c)``.

    Attributes
    ----------
    odds_ratio
        The (possibly Haldane-Anscombe corrected) odds ratio. (Named ``odds_ratio``
        because ``or`` is a Python keyword.)
    ci_low, ci_high
        Woolf (log) interval.
    p_value
        Two-sided Wald test of ``log OR = 0`` with the Woolf standard error.
    corrected
        True where 0.5 was added to every cell because one cell was 0.
    """

    odds_ratio: np.ndarray | float
    ci_low: np.ndarray | float
    ci_high: np.ndarray | float
    p_value: np.ndarray | float
    corrected: np.ndarray | bool


def odds_ratio(
    a: ArrayLike, b: ArrayLike, c: ArrayLike, d: ArrayLike, alpha: float = 0.05
) -> OddsRatioResult:
    """Odds ratio with Woolf log interval and Wald p-value, vectorised.

    Parameters
    ----------
    a, b, c, d : array_like of int
        Cells of ``[[a, b], [c, d]]`` (e.g. a = exposed converters, b = exposed drop-offs,
        c = unexposed converters, d = unexposed drop-offs), broadcast together.
    alpha : float, default 0.05
        Level of the ``1 - alpha`` interval.

    Returns
    -------
    OddsRatioResult
        Where any cell is 0, 0.5 is added to all four cells (Haldane-Anscombe). Then it
        equals ``statsmodels`` ``Table2x2(table)`` (``oddsratio``, ``oddsratio_confint``,
        ``log_oddsratio_pvalue``) on the corrected table. A row or column of zeros
        (no information) gives NaN.
    """
    arr = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a, b, c, d)))
    a_, b_, c_, d_ = arr
    zero = (a_ == 0) | (b_ == 0) | (c_ == 0) | (d_ == 0)
    a_, b_, c_, d_ = (np.where(zero, v + 0.5, v) for v in (a_, b_, c_, d_))
    log_or = np.log(a_) + np.log(d_) - np.log(b_) - np.log(c_)
    se = np.sqrt(1.0 / a_ + 1.0 / b_ + 1.0 / c_ + 1.0 / d_)
    z = _z(alpha)
    p_value = 2.0 * ndtr(-np.abs(log_or / se))
    raw = arr
    empty = ((raw[0] + raw[1]) == 0) | ((raw[2] + raw[3]) == 0)
    empty |= ((raw[0] + raw[2]) == 0) | ((raw[1] + raw[3]) == 0)
    nan = np.nan
    corrected = np.asarray(zero)
    return OddsRatioResult(
        odds_ratio=_out(np.where(empty, nan, np.exp(log_or))),
        ci_low=_out(np.where(empty, nan, np.exp(log_or - z * se))),
        ci_high=_out(np.where(empty, nan, np.exp(log_or + z * se))),
        p_value=_out(np.where(empty, nan, p_value)),
        corrected=bool(corrected) if corrected.ndim == 0 else corrected,
    )


@dataclass(frozen=True)
class Chi2Result:
    """Pearson chi-square test of independence of an r x c table."""

    statistic: float
    dof: int
    p_value: float
    expected: np.ndarray


def chi2_independence(table: ArrayLike) -> Chi2Result:
    """Pearson chi-square test of independence (no continuity correction).

    Parameters
    ----------
    table : array_like, shape (r, c)
        Counts; rows and columns summing to 0 are dropped first.

    Returns
    -------
    Chi2Result
        Equals ``scipy.stats.chi2_contingency(table, correction=False)``; NaN statistic and
        p-value when fewer than 2 non-empty rows or columns remain.
    """
    t = np.asarray(table, dtype=float)
    if t.ndim != 2:
        raise ValueError(f"table must be 2-D, got shape {t.shape}")
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    r, c = t.shape
    if r < 2 or c < 2:
        return Chi2Result(np.nan, 0, np.nan, np.zeros_like(t))
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / t.sum()
    stat = float(((t - expected) ** 2 / expected).sum())
    dof = (r - 1) * (c - 1)
    return Chi2Result(stat, dof, float(chdtrc(dof, stat)), expected)

"""Tests of crm_helpers.stats against statsmodels / scipy and tiny obvious cases."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from crm_helpers.stats import (
    Proportion,
    benjamini_hochberg,
    chi2_independence,
    odds_ratio,
    two_proportion_test,
    wilson_interval,
)


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_wilson_matches_statsmodels(alpha):
    rng = np.random.default_rng(0)
    n = rng.integers(1, 5000, size=300)
    x = rng.binomial(n, rng.uniform(0, 1, size=300))
    x[:5] = 0
    x[5:10] = n[5:10]
    lo, hi = wilson_interval(x, n, alpha=alpha)
    slo, shi = proportion_confint(x, n, alpha=alpha, method="wilson")
    np.testing.assert_allclose(lo, slo, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hi, shi, rtol=0, atol=1e-12)


def test_wilson_scalar_and_zero_n():
    lo, hi = wilson_interval(5, 10)
    assert lo.shape == () and 0 < lo < 0.5 < hi < 1
    assert np.isclose(lo + hi, 1.0)  # symmetric around 1/2
    lo, hi = wilson_interval([0, 3], [0, 0])
    assert np.isnan(lo).all() and np.isnan(hi).all()


def test_wilson_extremes():
    lo, hi = wilson_interval([0, 10], [10, 10])
    assert lo[0] == 0.0 and hi[1] == 1.0
    assert 0 < hi[0] < 0.35 and 0.65 < lo[1] < 1


# --- Proportion / two-proportion test -------------------------------------------------------
def test_proportion_rate_variance():
    p = Proportion(30, 100)
    assert p.rate == pytest.approx(0.3)
    assert p.variance == pytest.approx(0.3 * 0.7 / 100)
    assert np.isnan(Proportion(0, 0).rate)
    arr = Proportion(np.array([1, 2]), np.array([4, 4]))
    np.testing.assert_allclose(arr.rate, [0.25, 0.5])


def test_two_proportion_matches_statsmodels():
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    rng = np.random.default_rng(1)
    for _ in range(200):
        na, nb = rng.integers(5, 3000, size=2)
        xa = rng.binomial(na, rng.uniform(0.02, 0.98))
        xb = rng.binomial(nb, rng.uniform(0.02, 0.98))
        r = two_proportion_test(Proportion(xa, na), Proportion(xb, nb))
        z, p = proportions_ztest([xb, xa], [nb, na])
        lo, hi = confint_proportions_2indep(xb, nb, xa, na, method="newcomb")
        assert r.z == pytest.approx(z, rel=1e-10, abs=1e-12)
        assert r.p_value == pytest.approx(p, rel=1e-9, abs=1e-14)
        assert r.ci_low == pytest.approx(lo, abs=1e-12)
        assert r.ci_high == pytest.approx(hi, abs=1e-12)
        assert r.diff == pytest.approx(xb / nb - xa / na, abs=1e-15)
        if xa:
            assert r.relative_lift == pytest.approx((xb / nb - xa / na) / (xa / na))


def test_two_proportion_vectorised_equals_scalar():
    xa, na = np.array([10, 50, 0]), np.array([100, 200, 30])
    xb, nb = np.array([20, 40, 3]), np.array([100, 250, 30])
    r = two_proportion_test(Proportion(xa, na), Proportion(xb, nb))
    for i in range(3):
        s = two_proportion_test(Proportion(xa[i], na[i]), Proportion(xb[i], nb[i]))
        assert r.p_value[i] == pytest.approx(s.p_value)
        assert r.ci_low[i] == pytest.approx(s.ci_low)


def test_two_proportion_obvious_cases():
    same = two_proportion_test(Proportion(50, 100), Proportion(50, 100))
    assert same.diff == 0 and same.z == 0 and same.p_value == pytest.approx(1.0)
    assert same.ci_low < 0 < same.ci_high
    big = two_proportion_test(Proportion(100, 1000), Proportion(200, 1000))
    assert big.p_value < 1e-8 and big.ci_low > 0 and big.relative_lift == pytest.approx(1.0)
    degenerate = two_proportion_test(Proportion(0, 10), Proportion(0, 20))
    assert degenerate.p_value == 1.0
    empty = two_proportion_test(Proportion(0, 0), Proportion(5, 20))
    assert np.isnan(empty.p_value) and np.isnan(empty.diff)


# --- Benjamini-Hochberg ---------------------------------------------------------------------
def test_bh_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(2)
    for m in (1, 2, 7, 50, 400):
        p = np.concatenate([rng.uniform(size=m - m // 3), rng.uniform(0, 0.01, size=m // 3)])
        rng.shuffle(p)
        rej, qv = benjamini_hochberg(p, q=0.1)
        srej, sq, _, _ = multipletests(p, alpha=0.1, method="fdr_bh")
        np.testing.assert_allclose(qv, sq, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(rej, srej)


def test_bh_nan_and_obvious():
    rej, qv = benjamini_hochberg([0.01, np.nan, 0.04, 0.03])
    # m = 3: sorted 0.01, 0.03, 0.04 -> 0.03, 0.045, 0.04 -> monotone 0.03, 0.04, 0.04
    np.testing.assert_allclose(qv, [0.03, np.nan, 0.04, 0.04])
    np.testing.assert_array_equal(rej, [True, False, True, True])
    rej, qv = benjamini_hochberg([])
    assert rej.size == 0 and qv.size == 0


# --- odds ratio ----------------------------------------------------------------------------
def test_odds_ratio_matches_statsmodels():
    from statsmodels.stats.contingency_tables import Table2x2

    rng = np.random.default_rng(3)
    for _ in range(200):
        cells = rng.integers(0, 400, size=4)
        cells[rng.integers(0, 4)] *= rng.integers(0, 2)  # sometimes a zero cell
        if (cells[0] + cells[1] == 0) or (cells[2] + cells[3] == 0):
            continue
        if (cells[0] + cells[2] == 0) or (cells[1] + cells[3] == 0):
            continue
        r = odds_ratio(*cells)
        tab = cells.reshape(2, 2).astype(float)
        if (tab == 0).any():
            tab = tab + 0.5  # Haldane-Anscombe on every cell (Table2x2 shifts only zeros)
        t = Table2x2(tab, shift_zeros=False)
        lo, hi = t.oddsratio_confint()
        assert r.odds_ratio == pytest.approx(t.oddsratio, rel=1e-12)
        assert r.ci_low == pytest.approx(lo, rel=1e-10)
        assert r.ci_high == pytest.approx(hi, rel=1e-10)
        assert r.p_value == pytest.approx(t.log_oddsratio_pvalue(), rel=1e-9, abs=1e-300)
        assert r.corrected == bool((cells == 0).any())


def test_odds_ratio_obvious():
    r = odds_ratio(10, 10, 10, 10)
    assert r.odds_ratio == 1.0 and r.p_value == pytest.approx(1.0) and r.ci_low < 1 < r.ci_high
    r = odds_ratio(40, 10, 10, 40)
    assert r.odds_ratio == pytest.approx(16.0) and r.ci_low > 1 and r.p_value < 1e-6
    r = odds_ratio(0, 5, 5, 5)
    assert r.corrected and r.odds_ratio == pytest.approx((0.5 * 5.5) / (5.5 * 5.5))
    assert np.isnan(odds_ratio(0, 0, 3, 4).odds_ratio)
    vec = odds_ratio([10, 40], [10, 10], [10, 10], [10, 40])
    np.testing.assert_allclose(vec.odds_ratio, [1.0, 16.0])


# --- chi-square ----------------------------------------------------------------------------
def test_chi2_matches_scipy():
    from scipy.stats import chi2_contingency

    rng = np.random.default_rng(4)
    for shape in [(2, 2), (3, 4), (5, 2)]:
        t = rng.integers(5, 200, size=shape)
        r = chi2_independence(t)
        stat, p, dof, exp = chi2_contingency(t, correction=False)
        assert r.statistic == pytest.approx(stat, rel=1e-12)
        assert r.p_value == pytest.approx(p, rel=1e-9)
        assert r.dof == dof
        np.testing.assert_allclose(r.expected, exp)
    assert np.isnan(chi2_independence([[1, 2], [0, 0]]).p_value)


def test_wilson_bounds_are_exact_at_the_extremes():
    low, high = wilson_interval(np.array([0, 7, 3]), np.array([5, 7, 9]))
    assert low[0] == 0.0 and high[1] == 1.0  # exactly, not 1 - 1e-16
    assert 0.0 < low[2] < high[2] < 1.0

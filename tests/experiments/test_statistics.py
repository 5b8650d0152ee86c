"""Statistics on sufficient statistics vs independent references.

Frequentist and CUPED results equal scipy/statsmodels computed on raw per-user data to
1e-8; Bayesian and sequential results equal GrowthBook's gbstats 0.8.0 to 1e-5 (golden
values printed by ``reference/gbstats_reference.py`` in a separate virtual environment).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats import proportion as smp
from statsmodels.stats.multitest import multipletests

from crm_helpers.experiments import statistics as S

GOLDEN = json.loads((Path(__file__).parent / "reference" / "gbstats_golden.json").read_text())


def _stats(kind, s):
    if kind == "proportion":
        return S.MeanStats(s["n"], s["sum"], s["sum"], binary=True)
    post = S.MeanStats(s["n"], s["sum"], s["sum_sq"])
    if kind == "mean":
        return post
    if kind == "ratio":
        den = S.MeanStats(s["n"], s["den_sum"], s["den_sum_sq"])
        return S.RatioStats(post, den, s["num_den_sum"])
    pre = S.MeanStats(s["n"], s["pre_sum"], s["pre_sum_sq"])
    return S.CupedStats(post, pre, s["cross_sum"])


def _suff(y, binary=False):
    return S.MeanStats(len(y), y.sum(), (y * y).sum(), binary=binary)


def test_golden_values_come_from_gbstats_0_8_0():
    assert GOLDEN["gbstats_version"] == "0.8.0"
    assert len(GOLDEN["cases"]) >= 6


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: c["name"])
def test_bayesian_and_sequential_equal_gbstats(case):
    a, b = _stats(case["kind"], case["a"]), _stats(case["kind"], case["b"])
    bay = S.bayesian(a, b, alpha=0.05)
    ref = case["bayesian"]
    assert bay.chance_to_beat_control == pytest.approx(ref["chance_to_win"], abs=1e-5)
    assert [bay.ci_low, bay.ci_high] == pytest.approx(ref["ci"], abs=1e-5)
    assert [bay.expected_loss_control, bay.expected_loss_treatment] == pytest.approx(
        ref["risk"], abs=1e-5
    )
    seq = S.sequential(a, b, alpha=0.05, tuning=5000)
    ref = case["sequential"]
    assert [seq.ci_low, seq.ci_high] == pytest.approx(ref["ci"], abs=1e-5)
    assert seq.p_value == pytest.approx(ref["p_value"], abs=1e-5)
    assert seq.rel_lift == pytest.approx(ref["expected"], abs=1e-10)
    cmp = S.compare(a, b, alpha=0.05)
    assert cmp.rel_lift == pytest.approx(case["ttest_relative"]["expected"], abs=1e-10)
    if case["kind"] in ("mean", "cuped"):  # gbstats: Welch t on the relative scale
        assert [cmp.rel_ci_low, cmp.rel_ci_high] == pytest.approx(
            case["ttest_relative"]["ci"], abs=1e-5
        )


@pytest.mark.parametrize("case", GOLDEN["srm"], ids=str)
def test_srm_equals_gbstats_and_scipy(case):
    names = [f"v{i}" for i in range(len(case["users"]))]
    res = S.srm_test(
        dict(zip(names, case["users"], strict=True)), dict(zip(names, case["weights"], strict=True))
    )
    assert res.p_value == pytest.approx(case["p_value"], rel=1e-8, abs=1e-12)


def test_welch_equals_scipy_on_raw_data():
    rng = np.random.default_rng(1)
    ya = rng.lognormal(3, 1, 800) * (rng.random(800) < 0.3)
    yb = rng.lognormal(3.1, 1, 1100) * (rng.random(1100) < 0.33)
    cmp = S.compare(_suff(ya), _suff(yb), alpha=0.1)
    ref = st.ttest_ind(yb, ya, equal_var=False)
    assert cmp.p_value == pytest.approx(ref.pvalue, abs=1e-8)
    assert cmp.dof == pytest.approx(ref.df, rel=1e-8)
    ci = ref.confidence_interval(0.9)
    assert [cmp.diff_ci_low, cmp.diff_ci_high] == pytest.approx([ci.low, ci.high], abs=1e-8)
    one = S.compare(_suff(ya), _suff(yb), alpha=0.1, alternative="greater")
    assert one.p_value == pytest.approx(
        st.ttest_ind(yb, ya, equal_var=False, alternative="greater").pvalue, abs=1e-8
    )
    assert one.diff_ci_high == np.inf


def test_two_proportion_z_equals_statsmodels():
    a, b = S.MeanStats(9845, 2940, 2940, True), S.MeanStats(38985, 13252, 13252, True)
    cmp = S.compare(a, b)
    _, p = smp.test_proportions_2indep(13252, 38985, 2940, 9845, method="wald", compare="diff")
    lo, hi = smp.confint_proportions_2indep(13252, 38985, 2940, 9845, method="wald")
    assert cmp.p_value == pytest.approx(p, abs=1e-8)
    assert [cmp.diff_ci_low, cmp.diff_ci_high] == pytest.approx([lo, hi], abs=1e-8)


def test_cuped_equals_welch_on_adjusted_values():
    rng = np.random.default_rng(2)
    xa, xb = rng.gamma(2, 10, 700), rng.gamma(2, 10, 900)
    ya = 0.8 * xa + rng.normal(0, 5, 700)
    yb = 0.8 * xb + 1.5 + rng.normal(0, 5, 900)

    def cup(x, y):
        return S.CupedStats(_suff(y), _suff(x), (x * y).sum())

    a, b = cup(xa, ya), cup(xb, yb)
    x, y = np.r_[xa, xb], np.r_[ya, yb]
    theta = np.cov(x, y)[0, 1] / np.var(x, ddof=1)
    assert S.pooled_theta(a, b) == pytest.approx(theta, rel=1e-10)
    cmp = S.compare(a, b)
    ref = st.ttest_ind(yb - theta * xb, ya - theta * xa, equal_var=False)
    assert cmp.p_value == pytest.approx(ref.pvalue, abs=1e-8)
    ci = ref.confidence_interval(0.95)
    assert [cmp.diff_ci_low, cmp.diff_ci_high] == pytest.approx([ci.low, ci.high], abs=1e-8)
    raw_var = ya.var(ddof=1) / 700 + yb.var(ddof=1) / 900
    adj_var = (ya - theta * xa).var(ddof=1) / 700 + (yb - theta * xb).var(ddof=1) / 900
    assert S.variance_reduction(a, b) == pytest.approx(1 - adj_var / raw_var, abs=1e-10)
    assert S.variance_reduction(a, b) > 0.5


def test_ratio_delta_method_against_simulation():
    # the delta-method variance of sum(m)/sum(d) against the spread over many samples
    rng = np.random.default_rng(3)
    n, reps = 400, 4000
    d = rng.poisson(3, (reps, n)) + 1
    m = d * rng.gamma(2, 5, (reps, n))
    ratios = m.sum(1) / d.sum(1)
    s = S.RatioStats(
        S.MeanStats(n, m[0].sum(), (m[0] ** 2).sum()),
        S.MeanStats(n, d[0].sum(), (d[0] ** 2).sum()),
        (m[0] * d[0]).sum(),
    )
    assert np.sqrt(s.variance / n) == pytest.approx(ratios.std(), rel=0.08)


def test_ratio_metric_equals_the_linearised_per_user_values():
    """A ratio metric's comparison from sufficient statistics equals the same delta method
    written on raw per-user values (each user's linearised value ``(m - R d) / mean(d)``,
    its sample variance / n), with the normal reference of scipy, to 1e-8."""
    rng = np.random.default_rng(4)

    def arm(n, scale):
        d = rng.poisson(2.5, n) + (rng.random(n) < 0.5)  # visits, some users 0
        m = d * rng.gamma(2, scale, n) * (rng.random(n) < 0.4)  # revenue, many 0
        return m.astype(float), d.astype(float)

    def lin(m, d):
        r = m.sum() / d.sum()
        return r, ((m - r * d) / d.mean()).var(ddof=1) / len(m)

    def ratio(m, d):
        return S.RatioStats(_suff(m), _suff(d), (m * d).sum())

    (ma, da), (mb, db) = arm(900, 10.0), arm(1300, 11.0)
    (ra, va), (rb, vb) = lin(ma, da), lin(mb, db)
    cmp = S.compare(ratio(ma, da), ratio(mb, db), alpha=0.05)
    se = np.sqrt(va + vb)
    z = st.norm.ppf(0.975)
    assert cmp.diff == pytest.approx(rb - ra, rel=1e-12)
    assert cmp.diff_se == pytest.approx(se, rel=1e-8)
    assert [cmp.diff_ci_low, cmp.diff_ci_high] == pytest.approx(
        [rb - ra - z * se, rb - ra + z * se], abs=1e-8
    )
    assert cmp.p_value == pytest.approx(2 * st.norm.sf(abs(rb - ra) / se), abs=1e-8)
    # relative lift: delta method of rb / ra - 1 on the same linearised variances
    rel_se = np.sqrt(vb / ra**2 + va * rb**2 / ra**4)
    assert cmp.rel_lift == pytest.approx(rb / ra - 1, rel=1e-12)
    assert cmp.rel_se == pytest.approx(rel_se, rel=1e-8)


@pytest.mark.parametrize("method,sm", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_p_values_equal_statsmodels_with_nan(method, sm):
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.2])
    out = S.adjust_p_values(p, method)
    ref = multipletests(p[~np.isnan(p)], method=sm)[1]
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[~np.isnan(p)], ref, atol=1e-12)


def test_non_inferiority():
    a = S.MeanStats(20000, 8000, 8000, True)
    worse = S.MeanStats(20000, 7900, 7900, True)  # -1.25 % relative
    p, bound = S.non_inferiority(a, worse, margin=0.05)
    assert p < 0.05 and -0.05 < bound < 0  # not worse by 5 %
    p, bound = S.non_inferiority(a, worse, margin=0.001)
    assert p > 0.05 and bound < -0.001


def test_edge_cases_give_nan_not_errors():
    empty = S.MeanStats(0, 0, 0)
    one = S.MeanStats(50, 100.0, 400.0)
    cmp = S.compare(empty, one)
    assert np.isnan(cmp.diff) and np.isnan(cmp.p_value)
    flat = S.MeanStats(100, 100.0, 100.0)  # every value 1: zero variance
    cmp = S.compare(flat, flat)
    assert np.isnan(cmp.p_value) and np.isnan(cmp.diff_ci_low)
    zero_ctrl = S.MeanStats(100, 0, 0, True)
    cmp = S.compare(zero_ctrl, S.MeanStats(100, 5, 5, True))
    assert cmp.diff == pytest.approx(0.05) and np.isnan(cmp.rel_lift)
    assert np.isnan(S.bayesian(empty, one).chance_to_beat_control)
    with pytest.raises(ValueError, match="alternative"):
        S.compare(one, one, alternative="bigger")

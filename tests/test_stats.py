"""Tests of crm_helpers.stats against statsmodels / scipy and tiny obvious cases."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from crm_helpers.stats import wilson_interval


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

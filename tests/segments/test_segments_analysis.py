"""Model states, thresholds, CLV, profiles and parameters on small inline data and the small world."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.segments import analysis, core, narrative, profiles
from crm_helpers.segments.analysis import _threshold_for_precision
from tests.segments.conftest import orders_df, to_table


def test_threshold_for_precision_by_hand():
    p = np.array([0.1, 0.2, 0.3, 0.9])
    inactive = np.array([1.0, 1.0, 0.0, 0.0])
    n = np.array([10.0, 10.0, 10.0, 10.0])
    # p <= 0.2 -> 20/20 inactive; p <= 0.3 -> 20/30
    assert _threshold_for_precision(p, inactive, n, 0.9) == 0.2
    assert _threshold_for_precision(p, inactive, n, 0.6) == 0.3
    assert _threshold_for_precision(p, np.zeros(4), n, 0.5) == 0.0


@pytest.fixture(scope="module")
def small(small_world):
    data = load(small_world, require=["orders"])
    as_of = core.last_order_date(data.orders)
    cal = core.default_calibration_end(data.orders, as_of)
    return data, as_of, cal


def test_model_states_thresholds_and_clv(small):
    data, as_of, cal = small
    holdout_days = (pd.Timestamp(as_of) - pd.Timestamp(cal)).days
    th = analysis.choose_alive_thresholds(data.orders, cal, holdout_days)
    assert 0 <= th["churn_threshold"] <= th["dormant_threshold"] <= 1
    if th["churn_threshold"] > 0:
        assert th["churn_inner"]["precision"] >= 0.9
    cal_fit = analysis.fit_with_holdout(data.orders, as_of, cal)
    check = analysis.holdout_check(cal_fit, th)
    for state in ("churn", "dormant"):
        h = check[f"{state}_holdout"]
        assert h["flagged"] == 0 or 0 <= h["precision"] <= 1
    fit = analysis.fit_models(data.orders, as_of)
    ms = analysis.model_states(fit, th["churn_threshold"], th["dormant_threshold"])
    n_customers = core.rfm_table(data.orders, as_of).count().execute()
    assert ms["customers"].sum() == n_customers == fit.stats["n"].sum()
    clv = analysis.clv_table(fit, 90 / 7)
    assert clv["customers"].sum() == pytest.approx(n_customers)
    assert clv.attrs["mean"] > 0


def test_holdout_needs_calibration(small):
    data, as_of, _ = small
    fit = analysis.fit_models(data.orders, as_of, spend=False)
    assert fit.gamma_gamma is None
    with pytest.raises(ValueError, match="no holdout"):
        analysis.holdout_check(fit)
    with pytest.raises(ValueError, match="after the first order"):
        core.default_calibration_end(data.orders, "2000-01-01")


def test_profiles_by_hand():
    members = ibis.memtable(pd.DataFrame({"user_id": [1, 2, 3, 4], "group": ["A", "A", "B", "B"]}))
    users = ibis.memtable(
        pd.DataFrame({"user_id": [1, 2, 3, 4], "device": ["ios", "ios", "ios", None]})
    )
    a = profiles.attribute_profile(members, "A", users, ["device"]).set_index("value")
    assert a.loc["ios", "group_share"] == 1.0 and a.loc["ios", "base_share"] == 0.75
    assert a.loc["ios", "index"] == pytest.approx(100 / 0.75)
    assert a.loc["(missing)", "users_group"] == 0 and a.loc["(missing)", "users_base"] == 1
    lo, hi = a.loc["ios", ["ci_low", "ci_high"]]
    assert lo < 1.0 and hi == 1.0
    msgs = ibis.memtable(pd.DataFrame({
        "user_id": [1, 1, 3, 4], "channel": ["email"] * 4,
        "opened_at": pd.to_datetime(["2024-01-01", None, "2024-01-01", None]),
        "clicked_at": pd.to_datetime([None, None, "2024-01-01", None]),
    }))  # fmt: skip
    e = profiles.engagement_profile(members, "A", msgs).set_index("metric")
    assert e.loc["open", "rate_group"] == 0.5 and e.loc["open", "rate_base"] == 0.5
    assert e.loc["click", "rate_group"] == 0.0 and e.loc["click", "rate_base"] == 0.25
    rfm = core.rfm_table(
        to_table(orders_df([(1, 0, 10.0), (2, 1, 30.0), (3, 2, 5.0), (4, 3, 5.0)])), "2024-01-10"
    )
    seg = rfm.select("user_id", group=ibis.ifelse(rfm.user_id <= 2, "A", "B"))
    v = profiles.value_profile(seg, "A", rfm).set_index("measure")
    assert v.loc["revenue per user", "group"] == 20.0 and v.loc["revenue per user", "base"] == 12.5
    assert v.loc["revenue per user", "index"] == pytest.approx(160.0)


def test_parameters_are_checked():
    assert narrative.clusters_param("auto") == "auto" and narrative.clusters_param("5") == 5
    for bad in ("1", "x", "2.5", 0):
        with pytest.raises(ValueError, match="clusters"):
            narrative.clusters_param(bad)
    assert narrative.file_slug("Can't lose") == "can_t_lose"

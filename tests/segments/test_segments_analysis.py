"""Model states, thresholds, CLV, profiles and parameters on small inline data and the small world."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.segments import analysis, core, narrative, profiles
from crm_helpers.segments import model_states as ms
from tests.segments.conftest import orders_df, to_table


def test_threshold_for_rate_by_hand():
    # inactivity rates 1.0, 0.8, 0.9, 0.2 at scores 0.1 .. 0.4 (10 customers each): the
    # non-increasing fit pools 0.8 and 0.9 -> 1.0, 0.85, 0.85, 0.2
    score = np.repeat([0.1, 0.2, 0.3, 0.4], 10)
    inactive = np.concatenate([np.ones(10), np.r_[np.ones(8), np.zeros(2)],
                               np.r_[np.ones(9), np.zeros(1)], np.r_[np.ones(2), np.zeros(8)]])  # fmt: skip
    n = np.ones(40)
    assert ms.threshold_for_rate(score, inactive, n, 0.9) == 0.1
    assert ms.threshold_for_rate(score, inactive, n, 0.85) == 0.3
    assert ms.threshold_for_rate(score, inactive, n, 0.2) == 0.4
    # cumulative precision would allow 0.3 at 0.9 (27/30); the stated criterion does not
    assert ms.threshold_for_rate(score, np.zeros(40), n, 0.5) is None
    # weights are customer counts: 4 rows with n=10 give the same answer as 40 rows
    rates = np.array([1.0, 0.8, 0.9, 0.2])
    assert ms.threshold_for_rate([0.1, 0.2, 0.3, 0.4], rates, [10] * 4, 0.85) == 0.3


def test_p_buy_equals_the_integral_over_the_rate_posterior():
    from scipy import integrate, stats

    from crm_helpers.segments.models import BetaGeoFitter, BGNBDParams

    bgf = BetaGeoFitter()
    bgf.params_ = BGNBDParams(0.243, 4.414, 0.793, 2.426)  # FHL 2005 CDNOW fit
    hist = pd.DataFrame({"frequency": [0, 2, 7], "recency": [0.0, 30.43, 20.0],
                         "T": [10.0, 38.86, 38.0]})  # fmt: skip
    w = 13.0
    got = ms.model_scores(bgf, hist, w)
    r, alpha = 0.243, 4.414
    for row in got.itertuples():
        post = stats.gamma(r + row.frequency, scale=1 / (alpha + row.T))
        no_buy = integrate.quad(lambda lam, d=post: np.exp(-lam * w) * d.pdf(lam), 0, np.inf)[0]
        assert row.p_buy == pytest.approx(row.p_alive * (1 - no_buy), rel=1e-6)
    assert got["group"].tolist() == ["one_time", "repeat", "repeat"]
    assert got["p_alive"].iloc[0] == 1.0  # why one-time buyers need another score
    assert got["score"].tolist() == [got["p_buy"].iloc[0], *got["p_alive"].iloc[1:]]
    with pytest.raises(ValueError, match="window"):
        ms.model_scores(bgf, hist, 0)


@pytest.fixture(scope="module")
def small(small_world):
    data = load(small_world, require=["orders"])
    as_of = core.last_order_date(data.orders)
    cal = core.default_calibration_end(data.orders, as_of)
    return data, as_of, cal


def test_model_states_thresholds_and_clv(small):
    data, as_of, cal = small
    holdout_days = (pd.Timestamp(as_of) - pd.Timestamp(cal)).days
    window = min(90, holdout_days)
    th = ms.choose_thresholds(data.orders, cal, window)
    for g in ("repeat", "one_time"):
        t = th[g]
        if t["churned"] is not None:
            assert t["dormant-risk"] >= t["churned"]
            # every flagged customer's calibrated chance >= 0.9, so the pooled precision too
            assert th["inner"]["churned"][g]["precision"] >= 0.9 - 1e-9
    cal_fit = analysis.fit_with_holdout(data.orders, as_of, cal)
    check = ms.check_thresholds(data.orders, cal_fit, th)
    for state in ("churned", "dormant-risk"):
        h = check[state]
        assert h["all"]["flagged"] == h["repeat"]["flagged"] + h["one_time"]["flagged"]
        assert h["all"]["customers"] == cal_fit.stats["n"].sum()
    assert check["dormant-risk"]["all"]["flagged"] >= check["churned"]["all"]["flagged"]
    fit = analysis.fit_models(data.orders, as_of)
    states = ms.state_table(fit, th)
    summary = ms.state_summary(states)
    n_customers = core.rfm_table(data.orders, as_of).count().execute()
    assert summary["customers"].sum() == n_customers == fit.stats["n"].sum()
    # the states are exactly the stated rule: score at most the group's threshold
    for g in ("repeat", "one_time"):
        part = states[states["group"] == g]
        t = th[g]["churned"]
        assert (part["state"] == "churned").equals(part["score"] <= t if t is not None else
                                                   part["score"] < -1)  # fmt: skip
    clv = analysis.clv_table(fit, 90 / 7)
    assert clv["customers"].sum() == pytest.approx(n_customers)
    assert clv.attrs["mean"] > 0


def test_threshold_parameters_are_checked(small):
    data, _, cal = small
    with pytest.raises(ValueError, match="must not exceed"):
        ms.choose_thresholds(data.orders, cal, 30, churn_rate=0.6, dormant_rate=0.8)
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        ms.choose_thresholds(data.orders, cal, 30, churn_rate=1.5)
    with pytest.raises(ValueError, match="whole number of days"):
        ms.choose_thresholds(data.orders, cal, 0)
    with pytest.raises(ValueError, match="move calibration_end later"):
        ms.choose_thresholds(data.orders, cal, 5000)


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
    assert narrative.choice_param("export_format", "csv", ("parquet", "csv")) == "csv"
    with pytest.raises(ValueError, match="export_format must be one of 'parquet', 'csv'"):
        narrative.choice_param("export_format", "xlsx", ("parquet", "csv"))


def test_model_missing_without_repeat_purchases():
    # one order per customer: BG/NBD cannot be fitted; the notebook steps aside with this reason
    once = to_table(orders_df([(u, u, 10.0) for u in range(1, 20)]))
    why = analysis.model_missing(once, "2024-01-15", 7)
    assert why is not None and "2024-01-08" in why
    with pytest.raises(ValueError, match="repeat purchases"):
        analysis.fit_models(once, "2024-01-15")
    # a repeat purchase on day 3 is before the inner end (day 7): the model can run
    twice = to_table(orders_df([(1, 0, 5.0), (1, 3, 5.0), (2, 1, 5.0)]))
    assert analysis.model_missing(twice, "2024-01-15", 7) is None
    assert analysis.model_missing(twice, "2024-01-08", 7) is not None  # inner end day 0

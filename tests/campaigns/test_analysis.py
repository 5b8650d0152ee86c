"""Rates, send hours, frequency and holdouts on small counts with obvious answers."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from crm_helpers.campaigns import analysis, frequency, holdout
from crm_helpers.experiments import statistics as S


def _counts(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    base = {c: [0] * n for c in ("opened", "machine_opened", "human_opened", "clicked",
                                 "clicked_opened", "converted", "conversions")}  # fmt: skip
    base["revenue"] = [0.0] * n
    base.update(cols)
    return pd.DataFrame(base)


def test_rates_and_wilson_intervals():
    c = _counts(channel=["a", "b"], sent=[10, 0], opened=[5, 0], clicked=[2, 0],
                clicked_opened=[1, 0], converted=[1, 0], revenue=[30.0, 0.0])  # fmt: skip
    t = analysis.rates_table(c)
    assert t.loc[0, "open_rate"] == 0.5 and t.loc[0, "click_rate"] == 0.2
    assert t.loc[0, "click_to_open"] == pytest.approx(0.2)
    assert t.loc[0, "revenue_per_1000"] == pytest.approx(3000.0)
    lo, hi = proportion_confint(5, 10, method="wilson")
    assert (t.loc[0, "open_rate_ci_low"], t.loc[0, "open_rate_ci_high"]) == pytest.approx((lo, hi))
    assert t.loc[1, ["open_rate", "open_rate_ci_low", "revenue_per_1000"]].isna().all()


def test_a_log_without_opens_has_no_open_rate():
    c = _counts(channel=["sms"], sent=[10], clicked=[3]).assign(
        opened=pd.array([pd.NA], dtype="Int64"), clicked_opened=pd.array([pd.NA], dtype="Int64")
    )
    t = analysis.rates_table(c)
    assert pd.isna(t.loc[0, "open_rate"]) and pd.isna(t.loc[0, "click_to_open"])
    assert t.loc[0, "click_rate"] == pytest.approx(0.3)


def _hours(rows) -> pd.DataFrame:
    """rows: (campaign, hour, sent, clicked) of one channel on Monday."""
    df = pd.DataFrame(rows, columns=["campaign_id", "hour", "sent", "clicked"])
    return _counts(**{c: df[c].tolist() for c in df.columns}).assign(channel="push", weekday=0)


def test_a_clearly_better_hour_is_found_and_recommended():
    rows = [("c1", h, 2000, 400 if h == 19 else 200) for h in range(8, 22)]
    t = analysis.hour_table(_hours(rows), "click_rate")
    better = t[t["better"]]
    assert better["hour"].tolist() == [19]
    w = analysis.send_windows(t)
    assert w.loc[0, "best_hour"] == 19 and w.loc[0, "hours"] == [19]
    assert w.loc[0, "adjusted_rate"] == pytest.approx(0.2)


def test_a_good_campaign_sent_at_one_hour_does_not_make_the_hour_good():
    # Campaign "vip" (30% clicks) only at 23:00; everything else 5% at every hour. Pooled,
    # 23:00 looks far better; within campaigns no hour differs.
    rows = [("bulk", h, 1000, 50) for h in range(8, 24)] + [("vip", 23, 1000, 300)]
    t = analysis.hour_table(_hours(rows), "click_rate")
    h23 = t[t["hour"] == 23].iloc[0]
    assert h23["rate"] > 2 * h23["rest_rate"]  # the pooled rate misleads
    assert not t["better"].any()
    assert h23["adjusted_rate"] == pytest.approx(t["group_rate"].iloc[0])
    assert pd.isna(analysis.send_windows(t).loc[0, "best_hour"])
    pooled = analysis.hour_table(_hours(rows), "click_rate", stratum=None)
    assert pooled.loc[pooled["hour"] == 23, "better"].item()  # without strata it would


def test_hours_with_few_sends_are_not_tested():
    rows = [("c", h, 2000, 200) for h in range(8, 22)] + [("c", 3, 3, 3)]
    t = analysis.hour_table(_hours(rows), "click_rate", min_sends=100)
    assert pd.isna(t.loc[t["hour"] == 3, "p_value"]).all() and not t["better"].any()


def _freq(rates, n=20_000) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    k = np.arange(len(rates))
    return pd.DataFrame({"channel": "push", "prior_messages": k, "sent": n,
                         "clicked": rng.binomial(n, rates)})  # fmt: skip


def test_decay_fit_recovers_a_known_curve_and_gives_a_cap():
    true = 0.10 * 0.8 ** np.arange(6)
    fc = _freq(true)
    fit = frequency.fit_decay(fc)
    assert fit.decay_ci_low <= 0.8 <= fit.decay_ci_high and fit.decay_ci_high < 0.9
    assert fit.base == pytest.approx(0.10, rel=0.05)
    # 0.1 x 0.8^k < 0.05 first at k = 4 (0.041); the fit is within a few % of that
    assert frequency.frequency_cap(fit, 0.05) == 4
    t = frequency.frequency_table(fc, max_count=3)
    assert t["label"].tolist() == ["0", "1", "2", "3+"]
    assert t["sent"].tolist() == [20_000, 20_000, 20_000, 60_000]


def test_no_cap_without_fatigue():
    fit = frequency.fit_decay(_freq([0.05] * 5))
    assert fit.decay_ci_low < 1 < fit.decay_ci_high
    assert frequency.frequency_cap(fit, 0.04) is None


# --- holdouts ---------------------------------------------------------------------------------

T0 = pd.Timestamp("2024-05-01 10:00")


def _holdout_world():
    users = [f"u{i}" for i in range(8)]
    a = pd.DataFrame(
        {"experiment_id": "winback", "user_id": users,
         "variant": ["mail"] * 5 + ["holdout"] * 3, "assigned_at": T0}
    )  # fmt: skip
    three = pd.DataFrame(
        {"experiment_id": "subject_test", "user_id": ["x1", "x2", "x3"],
         "variant": ["a", "b", "c"], "assigned_at": T0}
    )  # fmt: skip
    a = pd.concat([a, three], ignore_index=True)
    m = pd.DataFrame(
        {"message_id": range(9), "user_id": users[:5] + ["x1", "x2", "x3", "u6"],
         "campaign_id": ["wb"] * 5 + ["sa", "sb", "sc", "news"], "channel": "email",
         "sent_at": [T0 + pd.Timedelta(hours=1)] * 9}
    )  # fmt: skip
    # u0, u1 convert after their send; u2 after the window; u5 (control) converts 1 h after
    # assignment; u7 (control) converts before being assigned
    c = pd.DataFrame(
        {"user_id": ["u0", "u1", "u2", "u5", "u7"],
         "ts": [T0 + pd.Timedelta(hours=h) for h in (2, 30, 100, 1, -5)],
         "revenue": [10.0, 20.0, 40.0, 8.0, 99.0]}
    )  # fmt: skip
    for df, col in ((a, "assigned_at"), (m, "sent_at"), (c, "ts")):
        df[col] = df[col].astype("datetime64[us]")
    return ibis.memtable(m), ibis.memtable(a), ibis.memtable(c)


def test_holdout_candidates_find_the_exact_split_only():
    m, a, _ = _holdout_world()
    cand = holdout.holdout_candidates(m, a)
    assert cand[["experiment_id", "campaign_id", "control_variant"]].values.tolist() == [
        ["winback", "wb", "holdout"]
    ]  # the three-arm subject test gives every arm a message: no control
    assert cand.loc[0, "treated_users"] == 5 and cand.loc[0, "control_users"] == 3
    with pytest.raises(ValueError, match="holds out no campaign"):
        holdout.holdout_rows(cand, "subject_test")


def test_incremental_counts_and_effect():
    m, a, c = _holdout_world()
    ic = holdout.incremental_counts(m, a, c, "winback", "wb", "holdout", attribution_days=3)
    got = ic.set_index("arm")
    assert got.loc["treated", ["users", "converted"]].tolist() == [5, 2]
    assert got.loc["control", ["users", "converted"]].tolist() == [3, 1]
    assert got.loc["treated", "revenue"] == 30.0 and got.loc["control", "revenue"] == 8.0
    t = holdout.incremental_table(ic, "wb", "holdout", attributed=2).iloc[0]
    want = S.compare(S.MeanStats(3, 1, 1, binary=True), S.MeanStats(5, 2, 2, binary=True))
    assert t["incremental_per_1000"] == pytest.approx(1000 * (2 / 5 - 1 / 3))
    assert (t["ci_low"], t["ci_high"]) == pytest.approx(
        (1000 * want.diff_ci_low, 1000 * want.diff_ci_high)
    )
    assert t["incremental_conversions"] == pytest.approx(5 * (2 / 5 - 1 / 3))
    assert set(holdout.INCREMENTAL_FIELDS) <= set(t.index)


def test_message_tests_give_each_arm_its_own_campaign():
    m, a, _ = _holdout_world()
    t = holdout.message_tests(m, a)
    assert t[["experiment_id", "variant", "campaign_id"]].values.tolist() == [
        ["subject_test", "a", "sa"],
        ["subject_test", "b", "sb"],
        ["subject_test", "c", "sc"],
    ]  # winback is a holdout, not a message test (its holdout arm got no campaign)
    sc = analysis.rates_table(
        pd.DataFrame(
            {"campaign_id": ["sa", "sb", "sc"], "channel": "email", "sent": [100, 100, 100],
             "opened": 0, "machine_opened": 0, "human_opened": 0, "clicked": [5, 15, 5],
             "clicked_opened": 0, "converted": [1, 2, 3], "conversions": [1, 2, 3],
             "revenue": 0.0}
        )
    )  # fmt: skip
    v = holdout.message_test_table(t, sc).set_index("variant")
    assert pd.isna(v.loc["a", "click_rate_diff"])  # no arm named control: the first is
    assert v.loc["b", "click_rate_diff"] == pytest.approx(0.10)
    want = S.compare(S.MeanStats(100, 5, 5, binary=True), S.MeanStats(100, 15, 15, binary=True))
    assert v.loc["b", "click_rate_ci_low"] == pytest.approx(want.diff_ci_low)
    assert v.loc["b", "click_rate_p_holm"] == pytest.approx(min(1.0, 2 * want.p_value))


def test_frequency_bands_carry_the_opt_out_guardrail():
    fc = _freq([0.1, 0.08, 0.06], n=1000).assign(opted_out=[2, 5, 30])
    t = frequency.frequency_table(fc)
    assert t["optouts"].tolist() == [2, 5, 30]
    assert t["optout_rate"].tolist() == pytest.approx([0.002, 0.005, 0.03])
    lo, hi = proportion_confint(30, 1000, method="wilson")
    assert (t["optout_ci_low"].iloc[2], t["optout_ci_high"].iloc[2]) == pytest.approx((lo, hi))


def test_a_message_test_arm_sent_on_two_channels_counts_both():
    # the scorecard has a row per campaign and channel; arm "b" went out by email and push:
    # its 100 + 100 messages and 15 + 25 clicks are one arm (only the first row was read)
    m, a, _ = _holdout_world()
    t = holdout.message_tests(m, a)
    sc = analysis.rates_table(
        pd.DataFrame(
            {"campaign_id": ["sa", "sb", "sb", "sc"], "channel": ["email", "email", "push", "email"],
             "sent": [100, 100, 100, 100], "opened": 0, "machine_opened": 0, "human_opened": 0,
             "clicked": [5, 15, 25, 5], "clicked_opened": 0, "converted": [1, 2, 4, 3],
             "conversions": [1, 2, 4, 3], "revenue": 0.0}
        )
    )  # fmt: skip
    v = holdout.message_test_table(t, sc).set_index("variant")
    assert v.loc["b", "sent"] == 200 and v.loc["b", "click_rate"] == pytest.approx(0.20)
    assert v.loc["b", "conversion_rate"] == pytest.approx(0.03)
    want = S.compare(S.MeanStats(100, 5, 5, binary=True), S.MeanStats(200, 40, 40, binary=True))
    assert v.loc["b", "click_rate_diff"] == pytest.approx(want.diff)
    assert v.loc["b", "click_rate_ci_low"] == pytest.approx(want.diff_ci_low)

"""Defaults that fit real exports (issue #21), on tiny inline data whose answers are obvious.

* an e-mail test exported right after its outcome period: the window is derived, and the
  readout equals the one with that window set by hand; refused only when even that is empty;
* an outcome at exactly the assignment time counts (not in the pre-period); ``data_end``;
* impression-level assignments: one row per user from the first impression, users seen in
  two arms excluded, the rule stated;
* the planned split: given, recorded in the assignments (the lookalike export), equal only
  when the observed split fits it, else not checked and never the reason for DON'T SHIP;
* campaign economics on revenue as customers paid it (coupon cost a memo) or gross;
* the default outcome is never the exposure/assignment event.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.experiments import ExperimentError, analysis, core, decision, narrative, readout
from crm_helpers.experiments import statistics as S
from crm_helpers.experiments.reference import reference_per_user, reference_stats
from tests.experiments.conftest import day


def _load(path):
    return load(path, validate=False)


def _asg(rows, exp="mail"):
    return pd.DataFrame(
        [(exp, u, v, t) for u, v, t in rows],
        columns=["experiment_id", "user_id", "variant", "assigned_at"],
    )


def _orders(rows):
    return pd.DataFrame(
        [(f"o{i}", u, t, r) for i, (u, t, r) in enumerate(rows)],
        columns=["order_id", "user_id", "ts", "revenue"],
    )


# --- an e-mail test exported right after its outcome period -----------------------------------


def _mail_test():
    """Sends on day 0 (u1-u4 control, u5-u8 treatment) and day 0.25 (u9 control, u10
    treatment); orders until day 1.75, the data end: every user has >= 1.5 days, none 14."""
    a = _asg(
        [(f"u{i}", "control", day(0)) for i in range(1, 5)]
        + [(f"u{i}", "treatment", day(0)) for i in range(5, 9)]
        + [("u9", "control", day(0.25)), ("u10", "treatment", day(0.25))]
    )
    o = _orders(
        [
            ("u1", day(0.5), 10.0),  # control buys
            ("u5", day(1.0), 20.0),  # treatment buys
            ("u6", day(1.4), 30.0),  # treatment buys
            ("u10", day(1.75), 5.0),  # treatment, the data end: 1.5 days after its send
        ]
    )
    return a, o


def test_window_is_derived_when_the_data_end_before_most_windows_close(write):
    a, o = _mail_test()
    data = _load(write("mail", assignments=a, orders=o))
    prep = readout.prepare(data, analysis_window_days=14)
    # the data end (day 1.75) minus the last send (day 0.25): 36 hours
    assert prep.analysis_window_days == 1.5
    assert "only 0 of 10 users complete 14 days" in prep.window_how
    assert "the data end minus the last assignment" in prep.window_how
    assert prep.assignments.counts == {"control": 5, "treatment": 5}
    assert any(n.startswith("Outcomes are counted within 1.5 days (36 hours)") for n in prep.notes)
    st = prep.stats.set_index(["variant", "metric"])
    assert st.loc[("control", "conversion"), "sum"] == 1  # u1
    assert st.loc[("treatment", "conversion"), "sum"] == 3  # u5, u6, u10 (at 1.5 days)
    by_hand = readout.prepare(data, analysis_window_days=1.5)
    assert by_hand.window_how == "" and by_hand.analysis_window_days == 1.5
    pd.testing.assert_frame_equal(prep.stats, by_hand.stats)
    assert prep.srm.p_value == by_hand.srm.p_value


def test_window_is_kept_when_half_or_more_complete_it(write):
    a, o = _mail_test()
    # a late order moves the data end to day 2.5: 2 days complete for all, 2.4 for 8 of 10
    o = pd.concat([o, _orders([("u2", day(2.5), 1.0)]).assign(order_id="late")])
    data = _load(write("mail_late", assignments=a, orders=o))
    prep = readout.prepare(data, analysis_window_days=2.4)
    assert prep.analysis_window_days == 2.4 and prep.window_how == ""
    assert prep.assignments.excluded["incomplete_window"] == 2  # u9, u10


def test_window_of_one_day_at_least_and_refused_only_when_empty(write):
    a = _asg([("u1", "control", day(0)), ("u2", "treatment", day(0)), ("u3", "control", day(2))])
    o = _orders([("u1", day(2.5), 1.0)])  # data end: 0.5 days after the last send
    data = _load(write("short", assignments=a, orders=o))
    prep = readout.prepare(data, analysis_window_days=14)
    assert prep.analysis_window_days == 1.0  # raised to one day: u3 (0.5 days) is left out
    assert prep.assignments.counts == {"control": 1, "treatment": 1}
    assert prep.assignments.excluded["incomplete_window"] == 1
    late = _asg([("u1", "control", day(2)), ("u2", "treatment", day(2.2))])
    data = _load(write("too_short", assignments=late, orders=o))
    with pytest.raises(ExperimentError, match="Even the shortest window"):
        readout.prepare(data, analysis_window_days=14)
    with pytest.raises(ExperimentError, match="no user is left"):
        readout.prepare(data, analysis_window_days=14, derive_window=False)


# --- outcome at the assignment time, data_end -----------------------------------------------


def test_outcome_at_exactly_the_assignment_time_counts_and_is_not_pre_period(write):
    a = _asg([("u1", "control", day(0)), ("u2", "treatment", day(0))])
    o = _orders([("u2", day(0), 7.0), ("u1", day(-0.001), 3.0), ("u1", day(20), 1.0)])
    data = _load(write("at_t0", assignments=a, orders=o))
    prep = readout.prepare(data, analysis_window_days=7, pre_period_days=7)
    st = prep.stats.set_index(["variant", "metric"])
    assert st.loc[("treatment", "revenue"), ["sum", "pre_sum"]].tolist() == [7.0, 0.0]
    assert st.loc[("control", "revenue"), ["sum", "pre_sum"]].tolist() == [0.0, 3.0]
    pu = reference_per_user(a, o, None, "mail", 7, 7, data_end=day(20))
    ref = reference_stats(pu, ["revenue"]).set_index("variant")
    assert ref.loc["treatment", "sum"] == 7.0 and ref.loc["control", "pre_sum"] == 3.0


def test_data_end_parameter_cuts_the_windows(write):
    a = _asg([("u1", "control", day(0)), ("u2", "treatment", day(0)), ("u3", "control", day(5))])
    o = _orders([("u1", day(1), 1.0), ("u3", day(20), 1.0)])
    data = _load(write("end", assignments=a, orders=o))
    assert readout.prepare(data, analysis_window_days=7).assignments.counts["control"] == 2
    prep = readout.prepare(data, analysis_window_days=7, data_end="2025-03-10 12:00")
    assert prep.data_end == day(9) and prep.assignments.counts == {"control": 1, "treatment": 1}


# --- impression-level assignments --------------------------------------------------------------


def test_impression_log_is_one_user_from_the_first_impression(write):
    rows = [("u1", "a", day(0)), ("u1", "a", day(1)), ("u1", "a", day(2))]  # 3 impressions
    rows += [("u2", "b", day(0.5)), ("u2", "b", day(3))]
    rows += [("u3", "a", day(0)), ("u3", "b", day(1))]  # seen in both arms: excluded
    rows += [("u4", "b", day(0))]
    a = _asg(rows, exp="bandit")
    o = _orders(
        [
            ("u1", day(0.5), 4.0),  # after the first impression, before the second: counts
            ("u2", day(0.25), 9.0),  # before u2's first impression: not an outcome
            ("u3", day(1), 5.0),  # excluded user
            ("u4", day(20), 1.0),  # data end
        ]
    )
    data = _load(write("impressions", assignments=a, orders=o))
    prep = readout.prepare(data, analysis_window_days=7)
    asg = prep.assignments
    assert (asg.rows, asg.users) == (8, 4)
    assert asg.counts == {"a": 1, "b": 2} and asg.excluded["multi_variant"] == 1
    assert "8 rows for 4 users" in asg.notes[0] and "first impression" in asg.notes[0]
    assert "more than one variant is excluded" in asg.notes[0]
    t = asg.table.to_pandas().set_index("user_id")
    assert t.loc["u2", "assigned_at"] == day(0.5)
    st = prep.stats.set_index(["variant", "metric"])
    assert st.loc[("a", "revenue"), "sum"] == 4.0 and st.loc[("b", "revenue"), "sum"] == 0.0
    ref = reference_stats(
        reference_per_user(a, o, None, "bandit", 7, data_end=day(20)), ["revenue"]
    )
    assert ref.set_index("variant")["sum"].to_dict() == {"a": 4.0, "b": 0.0}


# --- the planned split -----------------------------------------------------------------------


def test_split_far_from_equal_is_not_checked_against_an_assumed_plan():
    plan = analysis.resolve_split({"treatment": 800, "holdout": 200})
    assert plan.source == "none" and not plan.checked and plan.weights == {}
    assert plan.observed == "80/20 (treatment/holdout)"
    assert "no plan is assumed" in plan.how and "planned_split" in plan.how
    srm = analysis.split_srm({"treatment": 800, "holdout": 200}, plan)
    assert math.isnan(srm.p_value) and srm.expected == {}
    # the verdict never rests on it: a clear win ships
    arms = pd.DataFrame(
        [{"variant": "treatment", "metric": "conversion", "role": "primary", "diff": 0.05,
          "p_adjusted": 1e-6, "rel_lift": 0.5, "rel_ci_low": 0.3, "rel_ci_high": 0.7}]
    )  # fmt: skip
    v = decision.decide(arms, srm_p_value=srm.p_value)
    assert v.decision == "ship"
    control = {"variant": "holdout", "metric": "conversion", "role": "primary", "mean": 0.1}
    shown = pd.concat([pd.DataFrame([control]), arms.assign(mean=0.15)], ignore_index=True)
    shown["chance_to_beat_control"] = [np.nan, 0.99]
    lines = narrative.memo(
        experiment_id="e", control="holdout", verdict=v, arms=shown, srm=srm, split=plan,
    )  # fmt: skip
    assert not any("Sample-ratio mismatch" in ln for ln in lines)
    assert lines[1].startswith("Sample ratio not checked: the arms are split 80/20")
    assert narrative.srm_record(srm, plan) == {
        "p_value": None, "observed": {"treatment": 800, "holdout": 200}, "expected": {},
        "checked": False, "plan_source": "none", "observed_split": "80/20 (treatment/holdout)",
    }  # fmt: skip
    assert "not checked" in decision.rule_text("conversion", 0, [], 0.02, 0.05, False)


def test_near_equal_split_is_checked_against_equal_arms():
    ok = analysis.resolve_split({"a": 505, "b": 495})
    assert ok.source == "equal" and ok.weights == {"a": 0.5, "b": 0.5}
    assert "consistent" in ok.how
    # a 50/50 test that lost 8% of one arm's rows: near equal, so still a sample-ratio mismatch
    lost = {"control": 10_000, "treatment": 9_200}
    plan = analysis.resolve_split(lost)
    assert plan.source == "equal"
    srm = analysis.split_srm(lost, plan)
    assert srm.p_value == pytest.approx(S.srm_test(lost, {"control": 1, "treatment": 1}).p_value)
    assert srm.p_value < 1e-6
    # small samples: 7 vs 2 users pass the test against equal arms, so it is kept
    assert analysis.resolve_split({"t": 7, "h": 2}).source == "equal"
    given = analysis.resolve_split({"t": 800, "h": 200}, {"t": 4, "h": 1})
    assert given.source == "given" and given.how == "" and given.weights == {"t": 0.8, "h": 0.2}


def test_lookalike_export_records_its_plan_and_the_readout_uses_it(tables, write, tmp_path):
    from crm_helpers.lookalike import export, holdout_assignments

    audience = pd.DataFrame({"user_id": [f"u{i}" for i in range(1, 11)]})
    asg = holdout_assignments(audience, 0.2, "lookalike_2025_03", day(0), random_state=3)
    paths = export(audience, tmp_path / "export", assignments=asg)
    d = write("after_export", orders=tables["orders"])
    (d / "assignments.parquet").write_bytes(paths["assignments"].read_bytes())
    prep = readout.prepare(_load(d), analysis_window_days=7)
    assert prep.split.source == "assignments" and "planned_share" in prep.split.how
    assert prep.weights == pytest.approx({"holdout": 0.2, "treatment": 0.8})
    want = S.srm_test({"holdout": 2, "treatment": 8}, {"holdout": 0.2, "treatment": 0.8})
    assert prep.srm.p_value == pytest.approx(want.p_value) == pytest.approx(1.0)
    # a plan column that changes within an arm (a bandit's weights) is not a plan
    asg.loc[asg.index[:2], "planned_share"] = 0.5
    asg.to_parquet(d / "assignments.parquet", index=False)
    prep = readout.prepare(_load(d), analysis_window_days=7)
    assert prep.split.source == "equal"  # 2 vs 8 users pass the test against equal arms
    assert any("not one value per arm" in n for n in prep.notes)


# --- economics ---------------------------------------------------------------------------------


def test_coupon_cost_is_a_memo_on_net_revenue_and_subtracted_on_gross():
    kw = {"gross_margin": 0.5, "coupon_redemptions": 10, "coupon_value": 2.0,
          "send_cost_per_user": 0.1}  # fmt: skip
    net = decision.economics("b", 100, (0.1, 0, 0.2), (3.0, 1.0, 5.0), **kw)
    assert net.coupon_cost == 20 and net.coupon_cost_deducted == 0
    assert net.net_profit == pytest.approx(0.5 * 300 - 10)  # sends only
    assert net.roi == pytest.approx((0.5 * 300 - 10) / 10)
    gross = decision.economics(
        "b", 100, (0.1, 0, 0.2), (3.0, 1.0, 5.0), revenue_is_gross=True, **kw
    )
    assert gross.coupon_cost_deducted == 20
    assert gross.net_profit == pytest.approx(0.5 * 300 - 30)
    srm = S.srm_test({"a": 100, "b": 100}, {"a": 0.5, "b": 0.5})
    arms = pd.DataFrame(columns=["role", "diff", "metric", "variant", "mean"])
    kw = {"experiment_id": "e", "control": "a", "arms": arms, "srm": srm,
          "verdict": decision.Verdict("keep running", "r", None), "peeking_note": False}  # fmt: skip
    lines = narrative.memo(**kw, economics=[net.as_dict()])
    money = [ln for ln in lines if ln.startswith(("Money", "Memo"))]
    assert "after sends (10)" in money[0] and "coupons" not in money[0]
    assert money[1].startswith("Memo") and "10 coupon redemptions worth 20" in money[1]
    assert "already in the revenue" in money[1]
    lines = narrative.memo(**kw, economics=[gross.as_dict()])
    assert "after coupons (20) and sends (10)" in lines[2] and len(lines) == 3


# --- the default outcome is never the exposure -------------------------------------------------


def test_default_outcome_skips_the_exposure_event(write):
    a = _asg([("u1", "control", day(0)), ("u2", "treatment", day(0)), ("u3", "treatment", day(0))])
    ev = pd.DataFrame(
        {"user_id": ["u1", "u2", "u3", "u2", "u9"], "event": ["email_sent"] * 3 + ["open"] * 2,
         "ts": [day(0)] * 3 + [day(0.1), day(0.2)]}
    )  # fmt: skip
    data = _load(write("sent", assignments=a, events=ev))
    chosen = readout.metrics_for_data(data, "conversion", ["revenue"])
    assert chosen.primary == "event:open" and chosen.exposure == ["email_sent"]
    assert "not 'email_sent': the exposure/assignment itself" in chosen.primary_how
    # a name outside the vocabulary, logged at every assignment time: the assignment's own log
    ev2 = ev.assign(event=ev["event"].replace({"email_sent": "mailing"}))
    data = _load(write("mailing", assignments=a, events=ev2))
    assert readout.metrics_for_data(data, "conversion", []).primary == "event:open"
    only = ev[ev["event"] == "email_sent"]
    data = _load(write("only_sent", assignments=a, events=only))
    with pytest.raises(ExperimentError, match="only the exposure/assignment event"):
        readout.metrics_for_data(data, "conversion", [])


def test_core_longest_complete_window_rounds_down_to_hours():
    end = pd.Timestamp("2025-03-03 18:59")
    assert core.longest_complete_window(end, pd.Timestamp("2025-03-02")) == pytest.approx(42 / 24)
    assert core.longest_complete_window(end, pd.Timestamp("2025-03-03")) == 1.0
    assert core.days_text(1.0) == "1 day" and core.days_text(14) == "14 days"
    assert np.isclose(core.longest_complete_window(end, end - pd.Timedelta(days=3)), 3.0)


@pytest.mark.spark
def test_spark_equals_duckdb_on_the_real_data_defaults(write, spark_con):
    """The derived window, the impression summary and the exposure check on both engines."""
    a, o = _mail_test()
    imp = pd.concat([a, a.assign(assigned_at=a["assigned_at"] + pd.Timedelta(hours=1))])
    ev = pd.DataFrame({"user_id": a["user_id"], "event": "email_sent", "ts": a["assigned_at"]})
    ev = pd.concat([ev, pd.DataFrame({"user_id": ["u1"], "event": ["open"], "ts": [day(1)]})])
    us = {"assigned_at": "datetime64[us]", "ts": "datetime64[us]"}  # Spark reads no ns

    def _us(df):
        return df.astype({k: v for k, v in us.items() if k in df})

    a, imp, o, ev = _us(a), _us(imp), _us(o), _us(ev)
    d = write("mail_spark", assignments=imp, orders=o, events=ev)
    out = []
    for engine in ("duckdb", spark_con):
        data = load(d, engine=engine, validate=False)
        chosen = readout.metrics_for_data(data, "conversion", ["revenue"])
        prep = readout.prepare(data, analysis_window_days=14, secondary_metrics=["revenue"])
        out.append((prep.analysis_window_days, prep.assignments.rows, prep.stats, chosen))
    assert out[0][:2] == out[1][:2] == (1.5, 20)
    pd.testing.assert_frame_equal(out[0][2], out[1][2], check_dtype=False)
    events_only = []
    for engine in ("duckdb", spark_con):
        e = write(f"ev_{len(events_only)}", assignments=a, events=ev)
        events_only.append(readout.metrics_for_data(load(e, engine=engine, validate=False),
                                                    "conversion", []))  # fmt: skip
    assert events_only[0] == events_only[1]
    assert events_only[0].primary == "event:open" and events_only[0].exposure == ["email_sent"]

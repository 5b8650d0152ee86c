"""Engine side: assignment hygiene, per-user metrics and sufficient statistics.

Tiny inline data with obvious answers, and the engine against the pandas brute force
(:mod:`crm_helpers.experiments.reference`) on a small synthetic world.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.experiments import ExperimentError, analysis, core, parse_metric, readout
from crm_helpers.experiments.reference import reference_per_user, reference_stats


def _naive(df: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as naive UTC (what the loader gives the engine)."""
    for c in df.columns:
        if isinstance(df[c].dtype, pd.DatetimeTZDtype):
            df[c] = df[c].dt.tz_convert("UTC").dt.tz_localize(None)
    return df


def _load(path, engine="duckdb"):
    return load(path, engine=engine, validate=False)


def test_metric_grammar():
    assert parse_metric("conversion").binary
    assert parse_metric("event:purchase").event == "purchase"
    r = parse_metric("ratio:revenue/event_count:visit")
    assert r.numerator.kind == "revenue" and r.denominator.event == "visit"
    assert parse_metric("winsorized:revenue").winsorized
    for bad in ["", "clicks", "event:", "ratio:revenue", "winsorized:conversion", "ratio:a/b/c"]:
        with pytest.raises(ExperimentError):
            parse_metric(bad)


def test_assignment_hygiene(tiny_dir):
    data = _load(tiny_dir)
    a = core.assigned_users(data, "exp1", 7, tables={"orders"})
    assert a.counts == {"control": 4, "treatment": 5}  # u11 incomplete, u10 in both arms
    assert a.excluded == {"duplicate_rows": 1, "multi_variant": 1, "incomplete_window": 1}
    assert a.raw_counts == {"control": 6, "treatment": 6}
    assert any("more than one variant" in n for n in a.notes)
    assert any("not complete" in n for n in a.notes)
    u9 = a.table.filter(a.table.user_id == "u9").to_pandas()
    assert u9["assigned_at"].iloc[0] == pd.Timestamp("2025-03-02 12:00")  # earliest kept


def test_unknown_experiment_lists_the_known_ones(tiny_dir):
    data = _load(tiny_dir)
    with pytest.raises(ExperimentError, match="'exp1'"):
        core.assigned_users(data, "nope", 7)
    with pytest.raises(ExperimentError, match="not in the assignments"):
        analysis.choose_experiment(data, "nope")


def test_one_variant_only_and_unknown_control():
    with pytest.raises(ExperimentError, match="only one variant"):
        analysis.choose_control({"only": 10})
    with pytest.raises(ExperimentError, match="'ctl' is not a variant.*'a', 'b'"):
        analysis.choose_control({"a": 5, "b": 6}, "ctl")
    assert analysis.choose_control({"treatment": 80, "holdout": 20})[0] == "holdout"
    assert analysis.choose_control({"control": 1, "holdout": 20})[0] == "control"
    assert analysis.choose_control({"a": 5, "b": 6})[0] == "b"


def test_one_variant_experiment_is_a_clear_error(tiny_dir):
    with pytest.raises(ExperimentError, match="only one variant"):
        readout.prepare(_load(tiny_dir), experiment_id="exp2", analysis_window_days=7)


def test_window_beyond_the_data_leaves_no_user(tiny_dir):
    with pytest.raises(ExperimentError, match="no user is left"):
        core.assigned_users(_load(tiny_dir), "exp1", 60)


def test_per_user_values_and_sufficient_stats(tiny_dir):
    data = _load(tiny_dir)
    a = core.assigned_users(data, "exp1", 7, tables={"orders", "events"})
    metrics = ["conversion", "revenue", "orders", "event:visit", "event_count:visit"]
    metrics += ["ratio:revenue/orders"]
    pu = core.per_user_metrics(data, a, metrics, analysis_window_days=7, pre_period_days=7)
    st = core.sufficient_stats(pu, metrics).set_index(["variant", "metric"])
    # control u1..u4: u1 one order of 10 in window (u2's is after it); u1 two visits
    assert st.loc[("control", "conversion"), ["n", "sum"]].tolist() == [4, 1]
    assert st.loc[("control", "revenue"), "sum"] == 10.0
    assert st.loc[("control", "event_count:visit"), "sum"] == 2
    assert st.loc[("control", "event:visit"), "sum"] == 1
    # treatment u5..u9: u5 two orders (20+30), u6 one (5), u9 one (8); u7's is pre-period
    assert st.loc[("treatment", "conversion"), "sum"] == 3
    assert st.loc[("treatment", "revenue"), ["sum", "sum_sq"]].tolist() == [63.0, 50**2 + 25 + 64]
    assert st.loc[("treatment", "orders"), ["sum", "sum_sq"]].tolist() == [4, 4 + 1 + 1]
    assert st.loc[("treatment", "revenue"), "pre_sum"] == 40.0  # u7's pre-period order
    assert st.loc[("treatment", "event_count:visit"), ["sum", "pre_sum", "cross_sum"]].tolist() == [
        2,
        1,
        1,
    ]  # u5 1 visit (pre 0), u6 1 visit (pre 1)
    ratio = st.loc[("treatment", "ratio:revenue/orders")]
    assert ratio[["sum", "den_sum", "num_den_sum"]].tolist() == [63.0, 4, 50 * 2 + 5 + 8]


def test_missing_table_is_a_clear_error(tables, write):
    t = tables
    data = _load(write("no_events", assignments=t["assignments"], orders=t["orders"]))
    a = core.assigned_users(data, "exp1", 7)
    with pytest.raises(ExperimentError, match="need the events table"):
        core.per_user_metrics(data, a, ["event:visit"], analysis_window_days=7)


def test_arm_with_no_users_and_zero_variance(tiny_dir):
    data = _load(tiny_dir)
    prep = readout.prepare(
        data,
        experiment_id="exp1",
        planned_split={"control": 1, "treatment": 1, "ghost": 1},
        primary_metric="conversion",
        secondary_metrics=["event:open"],
        analysis_window_days=7,
    )
    assert prep.variants == ["control", "ghost", "treatment"]
    assert any("ghost" in n for n in prep.notes)
    assert prep.srm.observed["ghost"] == 0
    assert prep.srm.statistic == pytest.approx((1 + 4 + 9) / 3)  # 4, 5, 0 vs 3 each
    arms = analysis.arms_table(
        prep.stats, prep.control, primary="conversion", secondary=["event:open"],
        variants=prep.variants,
    )  # fmt: skip
    ghost = arms[arms["variant"] == "ghost"]
    assert (ghost["n"] == 0).all() and ghost["diff"].isna().all() and ghost["p_value"].isna().all()
    # nobody in control opened: zero variance on both sides is NaN, never an error
    opened = arms[(arms["metric"] == "event:open") & (arms["variant"] == "treatment")].iloc[0]
    assert opened["mean"] == pytest.approx(1 / 5) and np.isnan(opened["rel_lift"])


def test_lookalike_export_names_need_no_parameters(tables, write):
    t = tables
    asg = t["assignments"]
    asg = asg[asg["experiment_id"] == "exp1"].replace({"control": "holdout"})
    data = _load(write("lookalike", assignments=asg, orders=t["orders"]))
    prep = readout.prepare(data, analysis_window_days=7, secondary_metrics=["revenue"])
    assert prep.experiment_id == "exp1" and prep.experiment_how == "the only experiment in the data"
    assert prep.control == "holdout" and "holdout" in prep.control_how


@pytest.mark.parametrize(
    "experiment", ["cart_abandoner_coupon", "checkout_redesign", "message_test_3arm"]
)
def test_engine_equals_pandas_brute_force(small_world, experiment):
    data = load(small_world, require=["assignments"])
    metrics = ["conversion", "revenue", "orders", "event:visit", "event_count:purchase"]
    metrics += ["ratio:revenue/event_count:visit"]
    a = core.assigned_users(data, experiment, 7, tables={"orders", "events"})
    pu = core.per_user_metrics(data, a, metrics, analysis_window_days=7, pre_period_days=14)
    got = core.sufficient_stats(pu, metrics)
    raw = {
        n: _naive(pd.read_parquet(small_world / f"{n}.parquet")) for n in ("assignments", "orders")
    }
    events = _naive(
        pd.read_parquet(small_world / "events.parquet", columns=["user_id", "event", "ts"])
    )
    uids = set(raw["assignments"]["user_id"][raw["assignments"]["experiment_id"] == experiment])
    events = events[events["user_id"].isin(uids) & events["event"].isin(["visit", "purchase"])]
    orders = raw["orders"][raw["orders"]["user_id"].isin(uids)]
    ref_pu = reference_per_user(
        raw["assignments"], orders, events, experiment, 7, 14, data_end=a.data_end
    )
    want = reference_stats(ref_pu, metrics)
    assert len(want) == len(got)
    for c in core.STAT_COLUMNS:
        np.testing.assert_allclose(
            got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, err_msg=c
        )
    assert a.counts == ref_pu.groupby("variant").size().to_dict()


def test_winsor_cap_is_the_pooled_percentile(tiny_dir):
    data = _load(tiny_dir)
    a = core.assigned_users(data, "exp1", 7)
    pu = core.per_user_metrics(data, a, ["revenue"], analysis_window_days=7)
    caps = core.winsor_caps(pu, ["winsorized:revenue"], 90)
    vals = np.array([10, 0, 0, 0, 50, 5, 0, 0, 8], dtype=float)
    assert caps["winsorized:revenue"] == pytest.approx(np.percentile(vals, 90))
    st = core.sufficient_stats(pu, ["winsorized:revenue"], caps=caps).set_index("variant")
    cap = caps["winsorized:revenue"]
    assert st.loc["treatment", "sum"] == pytest.approx(min(50, cap) + 5 + 8)


@pytest.mark.spark
def test_spark_equals_duckdb(tiny_dir, spark_con):
    metrics = ["conversion", "revenue", "event_count:visit", "ratio:revenue/orders"]
    out = []
    for engine in ("duckdb", spark_con):
        data = _load(tiny_dir, engine)
        a = core.assigned_users(data, "exp1", 7, tables={"orders", "events"})
        pu = core.per_user_metrics(data, a, metrics, analysis_window_days=7, pre_period_days=7)
        out.append(core.sufficient_stats(pu, metrics))
    pd.testing.assert_frame_equal(out[0], out[1], check_dtype=False)

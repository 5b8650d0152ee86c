"""The campaign engine against obvious tiny cases and the brute-force reference."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_helpers.campaigns.core import (
    COUNT_COLUMNS,
    frequency_counts,
    hour_counts,
    message_facts,
    scorecard_counts,
)
from crm_helpers.campaigns.reference import reference_counts, reference_facts

T0 = pd.Timestamp("2024-03-04 09:00")  # a Monday


def _t(hours: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=hours)


def _msgs(rows) -> pd.DataFrame:
    df = pd.DataFrame(
        rows, columns=["message_id", "user_id", "campaign_id", "channel", "sent_at", "opened_at", "clicked_at"]
    )  # fmt: skip
    for c in ("sent_at", "opened_at", "clicked_at"):
        df[c] = pd.to_datetime(df[c]).astype("datetime64[us]")
    return df


def _conv(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["user_id", "ts", "revenue"])
    df["ts"] = pd.to_datetime(df["ts"]).astype("datetime64[us]")
    return df


def _facts(m, c=None, **kw) -> pd.DataFrame:
    f = message_facts(ibis.memtable(m), None if c is None else ibis.memtable(c), **kw)
    return f.to_pandas().sort_values("message_id").reset_index(drop=True)


def test_last_touch_credits_one_message_the_last_in_the_window():
    m = _msgs(
        [
            (1, "a", "c1", "email", _t(0), _t(1), _t(1.1)),
            (2, "a", "c2", "push", _t(24), None, None),
            (3, "a", "c3", "push", _t(200), None, None),  # after the conversion
            (4, "b", "c1", "email", _t(0), None, _t(2)),  # a click without an open
        ]
    )
    c = _conv(
        [
            ("a", _t(30), 10.0),  # c2 (sent 6 h before) not c1: last touch
            ("a", _t(24 + 72), 5.0),  # exactly 3 days after c2: inside
            ("a", _t(24 + 72.01), 7.0),  # just outside c2's window, c1's long over: nobody
            ("b", _t(0), 3.0),  # at the send itself: not after it, not credited
            ("c", _t(1), 9.0),  # no message
        ]
    )
    f = _facts(m, c, attribution_days=3)
    assert f.conversions.tolist() == [0, 2, 0, 0]
    assert f.converted.tolist() == [0, 1, 0, 0]
    assert f.revenue.tolist() == [0.0, 15.0, 0.0, 0.0]
    assert f.opened.tolist() == [1, 0, 0, 0]
    assert f.clicked.tolist() == [1, 0, 0, 1]
    assert f.clicked_opened.tolist() == [1, 0, 0, 0]


def test_ties_on_sent_at_go_to_the_largest_message_id():
    m = _msgs([(7, "a", "x", "sms", _t(0), None, None), (9, "a", "y", "sms", _t(0), None, None)])
    f = _facts(m, _conv([("a", _t(1), 1.0)]))
    assert f.set_index("message_id").conversions.to_dict() == {7: 0, 9: 1}


def test_machine_opens_are_counted_apart():
    m = _msgs(
        [
            (1, "a", "c", "email", _t(0), _t(0) + pd.Timedelta(seconds=2), None),
            (2, "b", "c", "email", _t(0), _t(0) + pd.Timedelta(seconds=5), None),  # inclusive
            (3, "c", "c", "email", _t(0), _t(0) + pd.Timedelta(seconds=6), None),
        ]
    )
    f = _facts(m, machine_open_seconds=5)
    assert f.opened.tolist() == [1, 1, 1]
    assert f.machine_opened.tolist() == [1, 1, 0]
    assert f.human_opened.tolist() == [0, 0, 1]
    assert f.converted.isna().all()  # no conversions given: unknown, not zero


def test_prior_messages_counts_the_window_before_the_send():
    m = _msgs(
        [
            (1, "a", "c", "push", _t(0), None, None),
            (2, "a", "c", "push", _t(0), None, None),  # simultaneous: not prior to each other
            (3, "a", "c", "push", _t(24 * 7), None, None),  # exactly 7 days later: both inside
            (4, "a", "c", "push", _t(24 * 7 + 0.5), None, None),  # 1 and 2 have left
            (5, "b", "c", "push", _t(1), None, None),
        ]
    )
    f = _facts(m, fatigue_window_days=7)
    assert f.prior_messages.tolist() == [0, 0, 2, 1, 0]


def test_hour_and_weekday_in_the_time_zone():
    m = _msgs([(1, "a", "c", "push", pd.Timestamp("2024-03-03 23:30"), None, None)])  # Sunday
    utc = _facts(m)
    assert (utc.hour[0], utc.weekday[0]) == (23, 6)
    berlin = _facts(m, timezone="Europe/Berlin")  # 00:30 on Monday in Berlin (UTC+1)
    assert (berlin.hour[0], berlin.weekday[0]) == (0, 0)


def test_logs_without_opens_or_with_a_click_flag():
    sms = _msgs([(1, "a", "c", "sms", _t(0), None, _t(1))]).drop(columns="opened_at")
    f = _facts(sms)
    assert f.opened.isna().all() and f.clicked.tolist() == [1]
    imp = _msgs(
        [(1, "a", "c", "banner", _t(0), None, None), (2, "b", "c", "banner", _t(0), None, None)]
    )
    imp = imp.drop(columns=["opened_at", "clicked_at"]).assign(clicked=["true", "0"])
    assert _facts(imp).clicked.tolist() == [1, 0]
    assert _facts(imp.assign(clicked=[True, False])).clicked.tolist() == [1, 0]
    none = imp.drop(columns="clicked")
    assert _facts(none).clicked.isna().all()


# --- random small worlds against the brute force -------------------------------------------


def _random_world(seed: int, n_users: int = 6, n_msgs: int = 25, n_conv: int = 15):
    rng = np.random.default_rng(seed)
    minutes = lambda n: pd.to_timedelta(rng.integers(0, 14 * 24 * 6, n) * 10, unit="min")  # noqa: E731
    sent = T0 + minutes(n_msgs)
    opened = sent + pd.to_timedelta(rng.choice([1, 4, 30, 3600], n_msgs), unit="s")
    m = pd.DataFrame(
        {
            "message_id": rng.permutation(n_msgs) + 100,
            "user_id": rng.integers(0, n_users, n_msgs),
            "campaign_id": rng.choice(["a", "b", "c"], n_msgs),
            "channel": rng.choice(["email", "push"], n_msgs),
            "sent_at": sent,
            "opened_at": np.where(rng.random(n_msgs) < 0.5, opened, pd.NaT),
            "clicked_at": np.where(rng.random(n_msgs) < 0.3, opened, pd.NaT),
        }
    )
    for col in ("sent_at", "opened_at", "clicked_at"):
        m[col] = pd.to_datetime(m[col]).astype("datetime64[us]")
    c = pd.DataFrame(
        {
            "user_id": rng.integers(0, n_users + 1, n_conv),
            "ts": (T0 + minutes(n_conv)).astype("datetime64[us]"),
            "revenue": rng.integers(1, 100, n_conv).astype(float),
        }
    )
    return m, c


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    cols = list(want.columns)
    got = got[cols].reset_index(drop=True)
    for col in cols:
        if col == "revenue":
            np.testing.assert_allclose(got[col].astype(float), want[col].astype(float), atol=1e-9)
        else:
            assert got[col].astype(object).tolist() == want[col].astype(object).tolist(), col


KW = {"attribution_days": 2.0, "machine_open_seconds": 5, "fatigue_window_days": 3.0}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from(["UTC", "America/New_York"]))
def test_random_worlds_equal_the_reference(seed, tz):
    m, c = _random_world(seed)
    got = _facts(m, c, timezone=tz, **KW)
    want = reference_facts(m, c, timezone=tz, **KW).sort_values("message_id").reset_index(drop=True)
    _same(got, want)
    # the credited conversions never exceed the conversions
    assert got.conversions.sum() <= len(c)


def test_counts_of_a_synthetic_world_equal_the_reference(small_world):
    from crm_helpers import load
    from crm_helpers.campaigns.core import conversions_of

    data = load(small_world)
    conv = conversions_of(data)
    assert conv.source == "orders"
    # one user in 10 keeps the quadratic reference fast (1 in 25 had only 2 conversions
    # once the synthetic world planted the campaign truths of #22)
    users = data.messages.user_id % 10 == 0
    msgs = data.messages.filter(users)
    orders = conv.table.filter(conv.table.user_id % 10 == 0)
    facts = message_facts(msgs, orders, fatigue_window_days=7, timezone="Europe/Berlin")
    ref = reference_facts(
        msgs.to_pandas(), orders.to_pandas(), fatigue_window_days=7, timezone="Europe/Berlin"
    )
    assert ref.conversions.sum() > 5 and ref.opened.sum() > 50  # the data exercise the rules
    for by, fn in (
        (["campaign_id", "channel"], lambda: scorecard_counts(facts)),
        (["channel", "weekday", "hour"], lambda: hour_counts(facts)),
        (["channel", "prior_messages"], lambda: frequency_counts(facts)),
    ):
        _same(fn(), reference_counts(ref, by))
    assert set(COUNT_COLUMNS) - {"opted_out"} <= set(scorecard_counts(facts).columns)


@pytest.mark.spark
def test_spark_equals_duckdb(spark_con):
    from crm_helpers.engine import spark_session

    m, c = _random_world(3, n_users=10, n_msgs=60, n_conv=40)
    session = spark_session()
    session.createDataFrame(m).createOrReplaceTempView("campaign_core_spark_messages")
    session.createDataFrame(c).createOrReplaceTempView("campaign_core_spark_conversions")
    sm, sc = (
        spark_con.table("campaign_core_spark_messages"),
        spark_con.table("campaign_core_spark_conversions"),
    )
    kw = {**KW, "timezone": "Europe/Berlin"}
    spark = message_facts(sm, sc, **kw)
    duck = message_facts(ibis.memtable(m), ibis.memtable(c), **kw)
    for fn in (scorecard_counts, hour_counts, frequency_counts):
        _same(fn(spark), fn(duck))
    assert fn(duck)["conversions"].sum() > 0


def test_opt_outs_after_a_send_are_flagged_per_message():
    from crm_helpers.campaigns.core import with_optouts

    m = _msgs(
        [
            (1, "a", "c", "email", _t(0), None, None),
            (2, "a", "c", "email", _t(10), None, None),  # the opt-out follows both sends
            (3, "b", "c", "email", _t(0), None, None),  # opted out at the send itself: no
            (4, "c", "c", "email", _t(0), None, None),  # 4 days later: outside 3 days
        ]
    )
    o = pd.DataFrame({"user_id": ["a", "b", "c"], "ts": [_t(11), _t(0), _t(96)]})
    o["ts"] = o["ts"].astype("datetime64[us]")
    f = with_optouts(message_facts(ibis.memtable(m)), ibis.memtable(o), days=3)
    got = f.to_pandas().sort_values("message_id")
    assert got.opted_out.tolist() == [1, 1, 0, 0]
    counts = frequency_counts(
        with_optouts(message_facts(ibis.memtable(m), fatigue_window_days=7), ibis.memtable(o), 3)
    )
    # message 2 had message 1 in the 7 days before it
    assert counts.set_index("prior_messages").opted_out.to_dict() == {0: 1, 1: 1}


def test_position_of_a_message_in_its_campaign():
    from crm_helpers.campaigns.core import with_position

    m = _msgs(
        [
            (1, "a", "drip", "email", _t(48), None, None),
            (2, "a", "drip", "email", _t(0), None, None),
            (3, "a", "news", "email", _t(24), None, None),
            (4, "b", "drip", "email", _t(0), None, None),
        ]
    )
    f = with_position(message_facts(ibis.memtable(m))).to_pandas().sort_values("message_id")
    assert f.position.tolist() == [2, 1, 1, 1]

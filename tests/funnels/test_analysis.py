"""Tests of crm_helpers.funnels.analysis on small hand-built event logs (obvious answers),
cross-checked against a direct pandas computation and run on DuckDB and Spark."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportions_ztest

from crm_helpers import config, stats
from crm_helpers.data import CRMData
from crm_helpers.engine import connect
from crm_helpers.funnels import analysis as A
from crm_helpers.funnels.core import FunnelSpec, funnel_table, user_funnel
from crm_helpers.schema import Schema

T0 = pd.Timestamp("2024-03-04")  # a Monday


def make_data(con, events: pd.DataFrame, users: pd.DataFrame | None = None) -> CRMData:
    """Tables on ``con`` (DuckDB or Spark) in a CRMData."""
    tables = {}
    for name, df in (("events", events), ("users", users)):
        if df is None:
            continue
        tname = f"t_{name}_{abs(hash(tuple(df.columns))) % 10**8}_{len(df)}"
        tables[name] = con.create_table(tname, ibis.memtable(df), overwrite=True)
    return CRMData(con=con, data_dir=Path("."), schema=Schema(), tables=tables)


def ev(rows) -> pd.DataFrame:
    """rows: (user_id, event, hours after T0, platform)."""
    df = pd.DataFrame(rows, columns=["user_id", "event", "h", "platform"])
    df["ts"] = (T0 + pd.to_timedelta(df.pop("h"), unit="h")).astype("datetime64[us]")
    df["user_id"] = df["user_id"].astype("int64")
    return df[["user_id", "event", "ts", "platform"]]


SPEC = FunnelSpec(["view", "cart", "buy"], conversion_window_days=2)


@pytest.fixture(scope="module")
def duck():
    return connect("duckdb")


@pytest.fixture(scope="module")
def toy():
    """100 users: all view; u % 4 != 0 cart; u % 4 == 1 buy. Odd users on ios, even on web.
    Users 1..30 in DE, the rest FR. Users u % 3 == 0 did 'open' one hour before viewing and
    u % 5 == 0 did 'open' one hour AFTER viewing (must not count as prior)."""
    rows = []
    for u in range(1, 101):
        p = "ios" if u % 2 else "web"
        rows.append((u, "view", u, p))
        if u % 4 != 0:
            rows.append((u, "cart", u + 1, p))
        if u % 4 == 1:
            rows.append((u, "buy", u + 2, p))
        if u % 3 == 0:
            rows.append((u, "open", u - 1, p))
        if u % 5 == 0:
            rows.append((u, "open", u + 0.5, p))
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, 101, dtype="int64"),
            "signup_at": pd.Timestamp("2024-01-01"),
            "country": ["DE" if u <= 30 else "FR" for u in range(1, 101)],
            "device": ["ios" if u % 2 else "web" for u in range(1, 101)],
        }
    )
    users["signup_at"] = users["signup_at"].astype("datetime64[us]")
    return ev(rows), users


# --- breakdown -----------------------------------------------------------------------------
def test_breakdown_user_attribute_counts_and_test(duck, toy):
    data = make_data(duck, *toy)
    b = A.breakdown_table(data, SPEC, "country", min_group_users=10)
    assert list(b["group"].unique()) == ["FR", "DE"]  # largest first
    users = b.pivot(index="group", columns="step", values="users")
    # DE = users 1..30: cart 1..30 minus multiples of 4 (7) = 23; buy u%4==1 -> 8
    assert users.loc["DE"].tolist() == [30, 23, 8]
    assert users.loc["FR"].tolist() == [70, 52, 17]
    de = b[(b.group == "DE") & (b.step == 3)].iloc[0]
    assert de.conversion_from_start == pytest.approx(8 / 30)
    assert de.conversion_from_previous == pytest.approx(8 / 23)
    lo, hi = stats.wilson_interval(8, 30)
    assert (de.ci_low, de.ci_high) == pytest.approx((float(lo), float(hi)))
    # overall conversion DE vs rest (FR): pooled z-test = statsmodels
    z, p = proportions_ztest([8, 17], [30, 70])
    assert de.p_value == pytest.approx(p, rel=1e-9)
    assert de.rest_conversion == pytest.approx(17 / 70)
    assert not de.significant and not de.small_group
    # step 2 test: cart|view DE 23/30 vs FR 52/70
    s2 = b[(b.group == "DE") & (b.step == 2)].iloc[0]
    assert s2.step_p_value == pytest.approx(proportions_ztest([23, 52], [30, 70])[1], rel=1e-9)
    assert np.isnan(b[b.step == 1]["step_p_value"]).all()
    assert b.attrs["by"] == "country"


def test_breakdown_detects_obvious_difference_and_small_groups(duck, toy):
    data = make_data(duck, *toy)
    b = A.breakdown_table(data, SPEC, "device", min_group_users=10)
    last = b[b.step == 3].set_index("group")
    assert last.loc["ios", "users"] == 25 and last.loc["web", "users"] == 0
    assert last["significant"].all() and (last["q_value"] < 1e-6).all()
    assert last.loc["web", "diff"] < 0 < last.loc["ios", "diff"]
    # min_group_users above both sizes: nothing tested, nothing significant
    b2 = A.breakdown_table(data, SPEC, "device", min_group_users=51)
    assert b2["small_group"].all() and not b2["significant"].any()
    assert b2["p_value"].isna().all()


def test_breakdown_max_groups_and_missing(duck, toy):
    events, users = toy
    users = users.assign(city=[f"c{u % 7}" if u <= 90 else None for u in users["user_id"]])
    data = make_data(duck, events, users)
    b = A.breakdown_table(data, SPEC, "city", min_group_users=1, max_groups=3)
    entered = b[b.step == 1].set_index("group")["users"]
    assert len(entered) == 4 and "other" in entered.index
    assert entered.sum() == 100
    # sizes: c0..c6 have 12 or 13 users among 1..90 (u%7 in 1..6 -> 13), (missing) has 10
    full = A.breakdown_table(data, SPEC, "city", min_group_users=1, max_groups=50)
    full_entered = full[full.step == 1].set_index("group")["users"]
    assert full_entered["(missing)"] == 10
    top3 = full_entered.sort_values(ascending=False, kind="mergesort").index[:3]
    assert set(entered.index) == set(top3) | {"other"}
    assert entered["other"] == 100 - full_entered[top3].sum()


def test_breakdown_first_touch_vs_each_step(duck):
    # u1: view on ios, cart+buy on web. u2: all on web. u3: view on ios and web, cart/buy ios.
    rows = [
        (1, "view", 0, "ios"), (1, "cart", 1, "web"), (1, "buy", 2, "web"),
        (2, "view", 0, "web"), (2, "cart", 1, "web"),
        (3, "view", 0, "ios"), (3, "view", 0.5, "web"), (3, "cart", 1, "ios"), (3, "buy", 2, "ios"),
    ]  # fmt: skip
    data = make_data(duck, ev(rows))
    ft = A.breakdown_table(data, SPEC, "platform", source="first_touch", min_group_users=1)
    u = ft.pivot(index="group", columns="step", values="users")
    # entry = the LATEST step-1 moment of a chain completing the furthest step (engine
    # semantics): u1 ios (0h), u2 web, u3 web (its 0.5h view precedes the cart at 1h)
    assert u.loc["ios"].tolist() == [1, 1, 1] and u.loc["web"].tolist() == [2, 2, 1]
    es = A.breakdown_table(data, SPEC, "platform", source="each_step", min_group_users=1)
    u = es.pivot(index="group", columns="step", values="users")
    # per (user, platform): ios: u1 (view only), u3 (all) ; web: u2 (view,cart), u3 (view)
    assert u.loc["ios"].tolist() == [2, 1, 1] and u.loc["web"].tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="source"):
        A.breakdown_table(data, SPEC, "platform", source="nope")


def _brute_force_funnel(events: pd.DataFrame, steps: list[str], window_s: float) -> pd.Series:
    """steps_reached per user, ordered mode, by trying every entry and greedy next steps."""
    out = {}
    for uid, g in events.groupby("user_id"):
        moments = g.groupby("ts")["event"].apply(set).sort_index()
        best = 0
        for t1, evs in moments.items():
            if steps[0] not in evs:
                continue
            reached, prev = 1, t1
            for s in steps[1:]:
                nxt = [
                    t
                    for t, e in moments.items()
                    if t > prev and s in e and (t - t1).total_seconds() <= window_s
                ]
                if not nxt:
                    break
                prev, reached = nxt[0], reached + 1
            best = max(best, reached)
        if best:
            out[uid] = best
    return pd.Series(out, name="steps_reached")


def test_breakdown_counts_match_pandas_brute_force(duck):
    rng = np.random.default_rng(7)
    n_users = 300
    rows = []
    for u in range(n_users):
        for _ in range(rng.integers(1, 9)):
            rows.append(
                (u, rng.choice(["view", "cart", "buy", "x"]), int(rng.integers(0, 96)), "p")
            )
    events = ev(rows)
    users = pd.DataFrame(
        {
            "user_id": np.arange(n_users, dtype="int64"),
            "signup_at": pd.Timestamp("2024-01-01"),
            "tier": rng.choice(["a", "b", "c"], size=n_users),
        }
    )
    users["signup_at"] = users["signup_at"].astype("datetime64[us]")
    data = make_data(duck, events, users)
    spec = FunnelSpec(["view", "cart", "buy"], conversion_window_days=1)
    b = A.breakdown_table(data, spec, "tier", min_group_users=1)
    reached = _brute_force_funnel(events, ["view", "cart", "buy"], 86400)
    per = users.set_index("user_id").join(reached, how="inner")
    for (g, k), row in b.set_index(["group", "step"]).iterrows():
        expect = int(((per["tier"] == g) & (per["steps_reached"] >= k)).sum())
        assert row["users"] == expect, (g, k)
    # the group totals add up to the engine's own funnel table
    ft = funnel_table(data, spec)
    assert b.groupby("step")["users"].sum().tolist() == ft["users"].tolist()


# --- trends --------------------------------------------------------------------------------
def _weekly_world(conv_prev_week: tuple[int, int], conv_this_week: tuple[int, int]):
    """Entries on Tue of week 1 (2024-03-04) and week 2; (entered, bought) per week."""
    rows, u = [], 0
    for week, (n, k) in enumerate((conv_prev_week, conv_this_week)):
        for i in range(n):
            h = week * 168 + 24 + i * 0.01
            rows.append((u, "view", h, "w"))
            rows.append((u, "cart", h + 1, "w"))
            if i < k:
                rows.append((u, "buy", h + 2, "w"))
            u += 1
    return ev(rows)


def test_trend_table_weekly(duck):
    events = _weekly_world((200, 50), (100, 10))
    data = make_data(duck, events)
    t = A.trend_table(data, SPEC, "week")
    assert list(t["period"].unique()) == [T0, T0 + pd.Timedelta(weeks=1)]
    last = t[t.step == 3].set_index("period")
    assert last["entered"].tolist() == [200, 100]
    assert last["users"].tolist() == [50, 10]
    assert last["conversion_from_start"].tolist() == pytest.approx([0.25, 0.10])
    lo, hi = stats.wilson_interval([50, 10], [200, 100])
    assert last["ci_low"].tolist() == pytest.approx(lo.tolist())
    day = A.trend_table(data, SPEC, "day")
    assert list(day["period"].unique()) == [T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=8)]
    month = A.trend_table(data, SPEC, "month")
    assert list(month["period"].unique()) == [pd.Timestamp("2024-03-01")]
    # the last event is on T0 + 8 d and the window is 2 d: entries up to T0 + 6 d had the
    # full window, so only periods ending by then are complete (the others read low)
    assert not t["window_complete"].any()
    complete = day.groupby("period")["window_complete"].first()
    assert complete.to_dict() == {T0 + pd.Timedelta(days=1): True, T0 + pd.Timedelta(days=8): False}
    with pytest.raises(ValueError, match="period"):
        A.trend_table(data, SPEC, "year")


def test_trend_counts_a_user_in_every_period_they_entered(duck):
    # user 1 buys in week 1 and again in week 2; user 2 enters in week 1 without buying
    # and buys in week 2; user 3 only enters in week 2, on Sunday night, and buys on Monday
    # (week 3): later steps may fall after the period, inside the window.
    w2 = 168
    rows = [(1, "view", 24, "w"), (1, "cart", 25, "w"), (1, "buy", 26, "w")]
    rows += [(1, "view", w2 + 24, "w"), (1, "cart", w2 + 25, "w"), (1, "buy", w2 + 26, "w")]
    rows += [(2, "view", 30, "w"), (2, "view", w2 + 30, "w"), (2, "cart", w2 + 31, "w")]
    rows += [(2, "buy", w2 + 32, "w")]
    rows += [(3, "view", w2 + 167, "w"), (3, "cart", w2 + 167.5, "w"), (3, "buy", w2 + 169, "w")]
    t = A.trend_table(make_data(duck, ev(rows)), SPEC, "week")
    last = t[t.step == 3].set_index("period")
    assert last["entered"].to_dict() == {T0: 2, T0 + pd.Timedelta(weeks=1): 3}
    assert last["users"].to_dict() == {T0: 1, T0 + pd.Timedelta(weeks=1): 3}


def test_period_comparison(duck):
    events = _weekly_world((200, 50), (100, 10))
    data = make_data(duck, events)
    # default "today" = the last event (Tue of week 2, T0 + 8 d); a week is complete when
    # its end plus the 2-day window has passed: week 1 ends T0 + 7 d > T0 + 6 d, so the
    # latest complete week is the (empty) one before T0: censored weeks are never compared.
    d = A.period_comparison(data, SPEC, "week")
    assert d["current_period"].iloc[0] == T0 - pd.Timedelta(weeks=1)
    assert d["current_entered"].iloc[0] == 0 and not d["significant"].any()
    # on 2024-03-20 week 2 (ends 03-18) has had its 2-day window: week 2 vs week 1
    c = A.period_comparison(data, SPEC, "week", current=dt.date(2024, 3, 20))
    row = c.set_index("step").loc[3]
    assert row["previous_period"] == T0 and row["current_period"] == T0 + pd.Timedelta(weeks=1)
    assert (row["previous_rate"], row["current_rate"]) == pytest.approx((0.25, 0.10))
    assert row["abs_change"] == pytest.approx(-0.15)
    assert row["p_value"] == pytest.approx(proportions_ztest([10, 50], [100, 200])[1], rel=1e-9)
    assert bool(row["significant"]) and row["ci_high"] < 0
    cart = c.set_index("step").loc[2]  # everyone carted in both weeks: no change
    assert cart["abs_change"] == 0 and cart["p_value"] == pytest.approx(1.0)
    assert not cart["significant"]


# --- audiences -----------------------------------------------------------------------------
def test_dropoff_audience_and_export(duck, toy, tmp_path, monkeypatch):
    data = make_data(duck, *toy)
    aud = A.dropoff_audience(data, SPEC, 2)
    assert isinstance(aud, ibis.Table)
    df = aud.to_pandas().sort_values("user_id")
    expected = [u for u in range(1, 101) if u % 4 in (2, 3)]  # carted, did not buy
    assert df["user_id"].tolist() == expected
    assert list(df.columns) == [
        "user_id",
        "entry_at",
        "last_step_at",
        "country",
        "device",
        "signup_at",
    ]
    first = df.iloc[0]  # user 2: view at +2h, cart at +3h
    assert first["entry_at"] == T0 + pd.Timedelta(hours=2)
    assert first["last_step_at"] == T0 + pd.Timedelta(hours=3)
    a1 = A.dropoff_audience(data, SPEC, 1, attributes=("country",)).to_pandas()
    assert sorted(a1["user_id"]) == list(range(4, 101, 4)) and list(a1.columns)[-1] == "country"
    with pytest.raises(ValueError):
        A.dropoff_audience(data, SPEC, 3)
    with pytest.raises(KeyError):
        A.dropoff_audience(data, SPEC, 1, attributes=("nope",))

    p = A.export_audience(aud, tmp_path / "out" / "aud.parquet")
    back = pd.read_parquet(p).sort_values("user_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True), check_dtype=False)
    c = A.export_audience(aud, tmp_path / "aud.csv", fmt="csv")
    assert len(pd.read_csv(c)) == len(df)
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(PermissionError, match="read-only"):
        A.export_audience(aud, tmp_path / "data" / "sub" / "aud.parquet")
    with pytest.raises(PermissionError):
        A.export_audience(aud, config.ROOT / "data" / "aud.csv", fmt="csv")
    assert not (tmp_path / "data").exists()


def test_export_streams_on_duckdb_and_is_atomic(duck, tmp_path, monkeypatch):
    """On DuckDB the engine writes the file (COPY: nothing fetched into Python); a failed
    write leaves the previous file as it was and no partial file beside it."""
    rows = [(u, "view", u, "p") for u in range(1, 6)]
    data = make_data(duck, ev(rows))
    aud = data.events.select("user_id", "ts")

    def no_fetch(*a, **k):
        raise AssertionError("fetched into Python")

    monkeypatch.setattr(ibis.Table, "to_pyarrow", no_fetch)
    p = A.export_audience(aud, tmp_path / "a.parquet")
    assert sorted(pd.read_parquet(p)["user_id"]) == [1, 2, 3, 4, 5]
    c = A.export_audience(aud, tmp_path / "a.csv", fmt="csv")
    assert sorted(pd.read_csv(c)["user_id"]) == [1, 2, 3, 4, 5]
    before = p.read_bytes()
    bad = data.events.select(x=ibis.literal("a").cast("int64") + data.events.user_id)
    with pytest.raises(Exception):  # noqa: B017 - the engine's own conversion error
        A.export_audience(bad, p)
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.csv", "a.parquet"]


def test_dropoff_audience_attempts_is_per_user(duck):
    # u1: attempt 1 reaches cart; attempt 2 reaches buy -> not in the step-2 audience.
    # u2: two attempts both reach cart only -> once, with the latest attempt's times.
    rows = [
        (1, "view", 0, "p"), (1, "cart", 1, "p"), (1, "view", 5, "p"), (1, "cart", 6, "p"),
        (1, "buy", 7, "p"),
        (2, "view", 0, "p"), (2, "cart", 1, "p"), (2, "view", 5, "p"), (2, "cart", 6, "p"),
    ]  # fmt: skip
    users = pd.DataFrame({"user_id": [1, 2], "signup_at": pd.Timestamp("2024-01-01")})
    users["signup_at"] = users["signup_at"].astype("datetime64[us]")
    data = make_data(duck, ev(rows), users)
    spec = FunnelSpec(["view", "cart", "buy"], count="attempts")
    df = A.dropoff_audience(data, spec, 2).to_pandas()
    assert df["user_id"].tolist() == [2]
    assert df["last_step_at"].iloc[0] == T0 + pd.Timedelta(hours=6)
    assert df["entry_at"].iloc[0] == T0 + pd.Timedelta(hours=5)


# --- campaign sizing -----------------------------------------------------------------------
def test_campaign_sizing_by_hand():
    ft = pd.DataFrame(
        {"step": [1, 2, 3], "label": ["a", "b", "c"], "event": ["a", "b", "c"],
         "users": [1000, 400, 100]}
    )  # fmt: skip
    s = A.campaign_sizing(
        ft, average_order_value=50.0, coupon_cost=5.0, send_cost=0.1, expected_conversion={1: 0.01}
    )
    assert s["audience"].tolist() == [600, 300]
    assert s["assumption"].tolist() == ["given", "observed from step"]
    r1, r2 = s.iloc[0], s.iloc[1]
    assert r1.expected_conversions == pytest.approx(6.0)  # 600 * 0.01
    assert r1.total_cost == pytest.approx(600 * 0.1 + 6 * 5)
    assert r1.net_value == pytest.approx(6 * 50 - 90)
    assert r1.roi == pytest.approx((300 - 90) / 90)
    assert r2.expected_conversion == pytest.approx(100 / 400)  # observed from step 2 onward
    assert r2.expected_revenue == pytest.approx(75 * 50)
    with pytest.raises(ValueError):
        A.campaign_sizing(
            ft, average_order_value=1, coupon_cost=0, send_cost=0, expected_conversion={1: 2}
        )


def test_campaign_sizing_on_funnel_table(duck, toy):
    data = make_data(duck, *toy)
    s = A.campaign_sizing(
        funnel_table(data, SPEC), average_order_value=10, coupon_cost=1, send_cost=0
    )
    assert s["audience"].tolist() == [25, 50]
    assert s["expected_conversion"].tolist() == pytest.approx([0.25, 25 / 75])


# --- conversion drivers --------------------------------------------------------------------
def test_conversion_drivers_by_hand(duck, toy):
    data = make_data(duck, *toy)
    d = A.conversion_drivers(data, SPEC, prior_events=["open"], min_users=5)
    row = d.set_index("label").loc["did open before entry"]
    # 'open' before entry: u % 3 == 0 (33 users); buyers among them: u%3==0 & u%4==1 -> 8
    assert (row.converters_with, row.dropoffs_with) == (8, 25)
    assert (row.converters_without, row.dropoffs_without) == (17, 50)
    ref = stats.odds_ratio(8, 25, 17, 50)
    assert row.odds_ratio == pytest.approx(ref.odds_ratio) and row.p_value == pytest.approx(
        ref.p_value
    )
    dev = d.set_index("label").loc["device = ios"]
    assert (dev.converters_with, dev.dropoffs_with, dev.converters_without) == (25, 25, 0)
    assert dev.odds_ratio > 1 and dev.significant  # all buyers are on ios
    assert d["strength"].is_monotonic_decreasing
    assert set(d["kind"]) == {"property", "prior_event"}
    # BH q-values over all rows
    _, q = stats.benjamini_hochberg(d["p_value"].to_numpy())
    np.testing.assert_allclose(d["q_value"], q)
    # min_users drops small factors
    assert A.conversion_drivers(data, SPEC, properties=["country"], min_users=31).empty


# --- Spark = DuckDB ------------------------------------------------------------------------
@pytest.mark.spark
def test_spark_equals_duckdb(spark_con, duck, toy):
    dd, sd = make_data(duck, *toy), make_data(spark_con, *toy)

    def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
        pd.testing.assert_frame_equal(
            a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False
        )

    # Spark is slow to plan many small queries: two functions covering the join on the
    # entry moment (first_touch), the users join and the prior-event range join
    same(
        A.breakdown_table(dd, SPEC, "platform", source="first_touch", min_group_users=10),
        A.breakdown_table(sd, SPEC, "platform", source="first_touch", min_group_users=10),
    )
    same(
        A.conversion_drivers(dd, SPEC, prior_events=["open"], min_users=5),
        A.conversion_drivers(sd, SPEC, prior_events=["open"], min_users=5),
    )


def test_user_funnel_shape_assumed_by_analysis(duck, toy):
    """The columns analysis reads from the engine are there (guards against API drift)."""
    data = make_data(duck, *toy)
    cols = user_funnel(data.events, SPEC).columns
    for c in ("user_id", "steps_reached", "entry_at", "step_1_at", "step_2_at", "step_3_at"):
        assert c in cols


@pytest.mark.spark
def test_trend_on_spark_equals_duckdb(spark_con, duck):
    """The per-period union runs the same on Spark (two weeks: two unioned funnels)."""
    events = _weekly_world((30, 12), (20, 3))
    dd, sd = make_data(duck, events), make_data(spark_con, events)
    a, b = A.trend_table(dd, SPEC, "week"), A.trend_table(sd, SPEC, "week")
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert a[a.step == 3]["users"].tolist() == [12, 3]

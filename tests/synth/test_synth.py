"""The synthetic world: contract, reproducibility, and every planted truth recovered with pandas.

Two kinds of check: (1) consistency, the ground truth's realised counts equal what plain
pandas recomputes from the written tables; (2) recovery, a simple estimate from the tables
is within a stated statistical tolerance of the planted parameter.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from crm_helpers.schema import CONTRACT, PRIMARY_KEYS
from crm_helpers.synth import SynthConfig, generate, generate_to, write_world
from crm_helpers.synth.io import SCHEMAS

TABLES = ("users", "events", "orders", "messages", "assignments")
N_BIG = 30_000  # big enough for 4-sigma recovery checks, ~3 s to generate


@pytest.fixture(scope="module")
def world():
    return generate(SynthConfig(n_users=N_BIG, seed=11))


@pytest.fixture(scope="module")
def small(small_world):
    tables = {t: pd.read_parquet(small_world / f"{t}.parquet") for t in TABLES}
    gt = json.loads((small_world / "ground_truth.json").read_text())
    truth = pd.read_parquet(small_world / "truth" / "users.parquet")
    return tables, gt, truth


def _hashes(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


# --- contract ---------------------------------------------------------------------------
KIND_CHECK = {
    "id": lambda d: pd.api.types.is_integer_dtype(d) or pd.api.types.is_string_dtype(d),
    "integer": pd.api.types.is_integer_dtype,
    "number": pd.api.types.is_float_dtype,
    "string": pd.api.types.is_string_dtype,
    "timestamp": lambda d: isinstance(d, pd.DatetimeTZDtype) and str(d.tz) == "UTC",
}


def test_schema_conforms_to_contract(small):
    tables, _, _ = small
    for name, df in tables.items():
        for col, spec in CONTRACT[name].items():
            assert col in df.columns, (name, col)
            assert KIND_CHECK[spec.kind](df[col].dtype), (name, col, df[col].dtype)
            if not spec.nullable:
                assert df[col].notna().all(), (name, col)
        if name in PRIMARY_KEYS:
            key = list(PRIMARY_KEYS[name])
            assert not df.duplicated(key).any(), name
    users = tables["users"]
    assert "customer_type" not in users.columns
    assert set(users["acquisition_channel"]) == {
        "organic", "paid_search", "paid_social", "referral", "affiliate"
    }  # fmt: skip
    assert set(users["device"]) == {"ios", "android", "web"}
    ev = tables["events"]
    assert set(ev["platform"]) == {"ios", "android", "web"}
    assert set(ev["channel"]) == {"direct", "push", "email", "sms", "in-app", "paid", "organic"}
    assert set(tables["messages"]["channel"]) == {"push", "email", "sms", "in-app"}


def test_loads_through_the_loader_with_counts(small_world):
    from crm_helpers.data import load

    data = load(small_world)
    gt = json.loads((small_world / "ground_truth.json").read_text())
    rows = data.row_counts()
    for t in TABLES:
        assert rows[t] == gt["counts"][t]


def test_written_schemas_are_the_declared_ones(small_world):
    import pyarrow.parquet as pq

    for name in TABLES:
        assert pq.read_schema(small_world / f"{name}.parquet").equals(SCHEMAS[name])


# --- reproducibility -----------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = SynthConfig(n_users=1_500, seed=3)
    a = _hashes(write_world(generate(cfg), tmp_path / "a"))
    b = _hashes(write_world(generate(cfg), tmp_path / "b"))
    c = _hashes(write_world(generate(SynthConfig(n_users=1_500, seed=4)), tmp_path / "c"))
    assert a == b
    assert len(a) == 8  # 5 tables + 2 truth files + ground_truth.json
    assert all(a[k] != c[k] for k in a)


def test_streaming_matches_in_memory_and_refuses_overwrite(tmp_path):
    cfg = SynthConfig(n_users=2_500, seed=5, chunk_size=1_000)
    world = generate(cfg)
    gt = generate_to(cfg, tmp_path / "s")
    assert gt == world.ground_truth
    for name in TABLES:
        streamed = pd.read_parquet(tmp_path / "s" / f"{name}.parquet")
        pd.testing.assert_frame_equal(
            streamed, pd.read_parquet(write_world(world, tmp_path / name) / f"{name}.parquet")
        )
    assert world.users["user_id"].tolist() == list(range(1, 2_501))
    with pytest.raises(FileExistsError):
        write_world(world, tmp_path / "s")
    with pytest.raises(FileExistsError):
        generate_to(cfg, tmp_path / "s")
    write_world(world, tmp_path / "s", overwrite=True)


def test_csv_format_loads(tmp_path):
    from crm_helpers.data import load

    w = generate(SynthConfig(n_users=800, seed=2))
    out = write_world(w, tmp_path / "csv", fmt="csv")
    assert (out / "events.csv").exists() and not (out / "events.parquet").exists()
    rows = load(out).row_counts()
    assert rows == {t: len(getattr(w, t)) for t in TABLES}


def test_config_validation():
    with pytest.raises(ValueError, match="sum to 1"):
        SynthConfig(type_shares=(("loyalists", 0.5), ("sports_fans", 0.6), ("bargain_hunters", 0),
                                 ("at_risk", 0), ("churned", 0), ("casual", 0)))  # fmt: skip
    with pytest.raises(ValueError, match="drop-off|dropoff"):
        SynthConfig(days=60, dropoff_start_day=100)


# --- structural truths ---------------------------------------------------------------------
def test_timestamps_within_range_and_ordered(small):
    tables, gt, _ = small
    start, end = pd.Timestamp(gt["period"]["start"]), pd.Timestamp(gt["period"]["end"])
    ev, users = tables["events"], tables["users"]
    assert ev["ts"].between(start, end, inclusive="left").all()
    assert (users["signup_at"] < end).all()
    first = ev.groupby("user_id")["ts"].min()
    assert (first >= users.set_index("user_id").loc[first.index, "signup_at"]).all()
    for t, col in (("orders", "ts"), ("messages", "sent_at"), ("assignments", "assigned_at")):
        assert tables[t][col].between(start, end, inclusive="left").all(), t
    m = tables["messages"]
    assert (m["opened_at"].dropna() >= m.loc[m["opened_at"].notna(), "sent_at"]).all()
    both = m["clicked_at"].notna()
    assert m.loc[both, "opened_at"].notna().all()  # a click implies an open
    assert (m.loc[both, "clicked_at"] >= m.loc[both, "opened_at"]).all()
    assert m["opened_at"].dropna().lt(end).all()
    # funnel steps are in time order inside each session
    steps = ["visit", "product_view", "add_to_cart", "checkout", "purchase"]
    f = ev[ev["event"].isin(steps)].pivot_table(
        index="session_id", columns="event", values="ts", aggfunc="min"
    )
    for a, b in zip(steps, steps[1:], strict=False):
        ok = f[[a, b]].dropna()
        assert (ok[a] < ok[b]).all(), (a, b)
    # every purchase step follows a checkout in its session; every checkout an add_to_cart
    # of the same user earlier (cart returns continue in a later session)
    assert f["checkout"].notna()[f["purchase"].notna()].all()


def test_purchase_events_match_orders(small):
    tables, gt, _ = small
    ev, orders = tables["events"], tables["orders"]
    pur = ev.loc[ev["event"] == "purchase", ["user_id", "ts", "category", "product_id"]]
    assert len(pur) == len(orders) == gt["counts"]["orders"]
    j = pur.merge(orders, on=["user_id", "ts"], how="outer", indicator=True, validate="1:1")
    assert (j["_merge"] == "both").all()
    assert (j["category_x"] == j["category_y"]).all()
    assert (orders["revenue"] > 0).all() and (orders["quantity"] >= 1).all()
    assert orders["coupon"].isna().mean() > 0.5
    assert set(orders["coupon"].dropna()) <= set(gt["vocabularies"]["coupons"])


def test_type_shares_recovered(world):
    truth = world.truth["users"]
    gt = world.ground_truth["customer_types"]
    counts = truth["customer_type"].value_counts()
    assert counts.to_dict() == gt["counts"]
    for t, p in gt["shares_planned"].items():
        se = np.sqrt(p * (1 - p) / N_BIG)
        assert abs(counts[t] / N_BIG - p) < 4 * se, t


def test_types_drive_attributes_and_behaviour(world):
    u = world.users.merge(world.truth["users"], on="user_id")
    sports = u["customer_type"] == "sports_fans"
    assert (u.loc[sports, "gender"] == "male").mean() > 0.7
    assert (u.loc[~sports, "gender"] == "male").mean() < 0.5
    assert u.loc[sports, "age_band"].isin(["18-24", "25-34"]).mean() > 0.65
    o = world.orders.merge(world.truth["users"][["user_id", "customer_type"]], on="user_id")
    top = o.groupby("customer_type")["category"].agg(lambda s: s.value_counts().idxmax())
    assert top["sports_fans"] == "sports"
    per_user = u.groupby("customer_type")["n_orders"].mean()
    assert per_user["loyalists"] > 2.5 * per_user["casual"]
    bargain_coupon = o.groupby("customer_type")["coupon"].apply(lambda s: s.notna().mean())
    assert bargain_coupon.idxmax() == "bargain_hunters"
    # churned users: no session events in the last churn_quiet_days of the period
    ev = world.events.merge(world.truth["users"][["user_id", "customer_type"]], on="user_id")
    end = pd.Timestamp(world.ground_truth["period"]["end"])
    quiet = end - pd.Timedelta(days=world.ground_truth["config"]["churn_quiet_days"])
    late = ev[(ev["ts"] >= quiet) & ev["session_id"].notna()]
    assert (late["customer_type"] == "churned").sum() == 0
    # ... and none after their recorded churn_at (the truth of each churned user)
    churn_at = world.truth["users"].set_index("user_id")["churn_at"]
    ch = ev[(ev["customer_type"] == "churned") & ev["session_id"].notna()]
    assert (ch["ts"] <= ch["user_id"].map(churn_at)).all()
    assert churn_at.notna().sum() == (world.truth["users"]["customer_type"] == "churned").sum()
    # at_risk users slow down: sessions/day in the last 3 weeks vs days 30-100, relative to
    # loyalists (who do not)
    visits = ev[ev["event"] == "visit"]
    d = (visits["ts"] - pd.Timestamp(world.ground_truth["period"]["start"])).dt.days
    early = visits[(d >= 30) & (d < 100)].groupby("customer_type").size() / 70
    recent = visits[d >= 159].groupby("customer_type").size() / 21
    ratio = recent / early
    assert ratio["at_risk"] < 0.5 * ratio["loyalists"]


def test_platform_dropoff_recovered(world):
    gt = world.ground_truth["dropoff"]
    ev = world.events
    sess = ev[ev["event"].isin(["checkout", "purchase"])].pivot_table(
        index="session_id", columns="event", values="ts", aggfunc="min"
    )
    platform = ev.groupby("session_id")["platform"].first()
    sess = sess[sess["checkout"].notna()].join(platform)
    lo, hi = pd.Timestamp(gt["window_start"]), pd.Timestamp(gt["window_end"])
    sess["in_window"] = sess["checkout"].between(lo, hi, inclusive="left")
    sess["bought"] = sess["purchase"].notna()
    g = sess.groupby(["platform", "in_window"])["bought"].agg(["size", "sum"])
    for p in ("ios", "android", "web"):
        for flag, key in ((False, "outside_window"), (True, "in_window")):
            cell = gt["by_platform"][p][key]
            assert (g.loc[(p, flag), "size"], g.loc[(p, flag), "sum"]) == (
                cell["checkouts"],
                cell["purchases"],
            )
    rate = g["sum"] / g["size"]
    affected = rate[(gt["platform"], True)] / rate[(gt["platform"], False)]
    n_aff = g.loc[(gt["platform"], True), "size"]
    se = affected * np.sqrt(
        (1 - rate[(gt["platform"], True)]) / (rate[(gt["platform"], True)] * n_aff)
    )
    # planted-response sessions always buy, so the realised factor is pulled slightly up
    assert abs(affected - gt["factor"]) < 4 * se + 0.03, affected
    for p in ("ios", "web"):
        assert abs(rate[(p, True)] / rate[(p, False)] - 1) < 0.1, p


def test_lookalike_seed_is_subset_of_its_type(world):
    truth = world.truth["users"].set_index("user_id")
    gt = world.ground_truth["lookalike_seed"]
    seed_ids = world.users.loc[world.users["lookalike_seed"], "user_id"]
    assert len(seed_ids) == gt["seed_count"] > 0
    assert (truth.loc[seed_ids, "customer_type"] == gt["type"]).all()
    assert truth.loc[seed_ids, "is_seed"].all() and truth["is_seed"].sum() == len(seed_ids)
    n_type = (truth["customer_type"] == gt["type"]).sum()
    assert n_type - len(seed_ids) == gt["hidden_rest_count"]
    p = gt["fraction"]
    assert abs(len(seed_ids) / n_type - p) < 4 * np.sqrt(p * (1 - p) / n_type)


def _window_conversion(world, exp: str, days: int) -> pd.DataFrame:
    a = world.assignments[world.assignments["experiment_id"] == exp]
    j = a.merge(world.orders[["user_id", "ts", "revenue"]], on="user_id", how="left")
    inside = (j["ts"] > j["assigned_at"]) & (j["ts"] <= j["assigned_at"] + pd.Timedelta(days=days))
    j["rev_in"] = np.where(inside, j["revenue"], 0.0)
    j["conv"] = inside
    per_user = j.groupby(["variant", "user_id"]).agg(conv=("conv", "any"), rev=("rev_in", "sum"))
    return per_user.groupby("variant").agg(
        n=("conv", "size"), conv=("conv", "sum"), rev=("rev", "sum")
    )


def test_cart_coupon_experiment(world):
    gt = world.ground_truth["experiments"]["cart_abandoner_coupon"]
    r = _window_conversion(world, "cart_abandoner_coupon", gt["window_days"])
    assert r["n"].to_dict() == gt["realised_counts"]
    assert r["conv"].to_dict() == gt["converted_in_window"]
    n = r["n"].sum()
    assert abs(r.loc["treatment", "n"] / n - 0.8) < 4 * np.sqrt(0.16 / n)
    p = r["conv"] / r["n"]
    lift = p["treatment"] - p["holdout"]
    se = np.sqrt((p * (1 - p) / r["n"]).sum())
    assert lift > 0
    assert abs(lift - gt["expected_lift"]) < 4 * se
    # planted recovery rates per arm, from the hidden truth
    ta = world.truth["assignments"]
    ta = ta[ta["experiment_id"] == "cart_abandoner_coupon"]
    resp = ta.groupby("variant")["planted_response"].agg(["mean", "size"])
    for v, pv in gt["true_recovery_probability"].items():
        assert abs(resp.loc[v, "mean"] - pv) < 4 * np.sqrt(pv * (1 - pv) / resp.loc[v, "size"])
    coupons = world.orders["coupon"].eq(gt["coupon_code"])
    treated = set(world.assignments.query("variant == 'treatment'")["user_id"])
    assert world.orders.loc[coupons, "user_id"].isin(treated).all() and coupons.sum() > 0


def test_message_test_3arm(world):
    gt = world.ground_truth["experiments"]["message_test_3arm"]
    r = _window_conversion(world, "message_test_3arm", gt["window_days"])
    assert r["n"].to_dict() == gt["realised_counts"]
    assert r["conv"].to_dict() == gt["converted_in_window"]
    np.testing.assert_allclose(r["rev"].to_numpy(), [gt["revenue_in_window"][v] for v in r.index])
    n = r["n"].sum()
    assert stats.chisquare(r["n"]).pvalue > 0.001
    ta = world.truth["assignments"]
    ta = ta[ta["experiment_id"] == "message_test_3arm"]
    resp = ta.groupby("variant")["planted_response"].agg(["mean", "size"])
    for v, pv in gt["true_response_probability"].items():
        assert abs(resp.loc[v, "mean"] - pv) < 4 * np.sqrt(pv * (1 - pv) / resp.loc[v, "size"])
    assert n == len(ta)
    # the push of each arm is in messages with its campaign id, sent at assignment
    m = world.messages.merge(ta, on="user_id")
    cids = {v: c["campaign_id"] for v, c in world.ground_truth["messages"]["experiment_campaigns"][
        "message_test_3arm"].items()}  # fmt: skip
    m = m[m["campaign_id"].isin(cids.values())]
    assert len(m) == n and (m["campaign_id"] == m["variant"].map(cids)).all()
    assert (m["sent_at"] == m["assigned_at"]).all()


def test_srm_experiment(world):
    gt = world.ground_truth["experiments"]["checkout_redesign"]
    a = world.assignments[world.assignments["experiment_id"] == "checkout_redesign"]
    counts = a["variant"].value_counts()
    assert counts.to_dict() == gt["realised_counts"]
    share = counts["control"] / counts.sum()
    assert 0.51 < share < 0.54  # planted ~52/48
    assert stats.chisquare([counts["control"], counts["treatment"]]).pvalue < 0.01
    ta = world.truth["assignments"]
    ta = ta[ta["experiment_id"] == "checkout_redesign"]
    intended = ta["variant"].value_counts()
    assert stats.chisquare([intended["control"], intended["treatment"]]).pvalue > 0.001
    dropped = ta[~ta["logged"]]
    assert (dropped["variant"] == "treatment").all()
    assert len(dropped) == gt["dropped_count"] > 0


def test_messages_rates_and_message_sessions(world):
    gt = world.ground_truth["messages"]
    m = world.messages[world.messages["campaign_id"] >= 100]  # regular campaigns
    by_ch = m.groupby("channel").agg(
        sent=("message_id", "size"),
        opened=("opened_at", "count"),
        clicked=("clicked_at", "count"),
    )
    assert by_ch.to_dict(orient="index") == gt["realised_regular"]["by_channel"]
    open_rate = by_ch["opened"] / by_ch["sent"]
    assert list(open_rate.sort_values(ascending=False).index) == ["in-app", "email", "sms", "push"]
    # the send-hour curve is planted per channel (issue #22): around each channel's best hour
    # (planted x1.46-1.60) the open rate beats hours 4+ away (x0.90-0.92) by more than 1.3x
    for ch, best in gt["best_send_hour"].items():
        mc = m[m["channel"] == ch]
        d = (mc["sent_at"].dt.hour - best).abs()
        rate = mc["opened_at"].notna().groupby(d.clip(upper=4)).mean()
        assert rate.loc[0:1].mean() > 1.3 * rate.loc[4], ch
    # sessions from a message start 1 s after a click of that user on that channel
    ev = world.events
    crm = ev[ev["channel"].isin(["push", "email", "sms", "in-app"]) & ev["session_id"].notna()]
    starts = crm.groupby("session_id").agg(
        user_id=("user_id", "first"), ts=("ts", "min"), channel=("channel", "first")
    )
    clicks = world.messages.dropna(subset=["clicked_at"])
    clicks = clicks.assign(ts=clicks["clicked_at"] + pd.Timedelta(seconds=1))
    j = starts.merge(clicks, on=["user_id", "ts", "channel"], how="left", indicator=True)
    assert (j["_merge"] == "both").mean() > 0.99
    assert len(starts) > 0


def test_seasonality_weekly_promo_and_hourly(world):
    gt = world.ground_truth["seasonality"]
    ev = world.events
    visits = ev.loc[ev["event"] == "visit", "ts"]
    start = pd.Timestamp(world.ground_truth["period"]["start"])
    day = (visits - start).dt.days
    per_day = day.value_counts().sort_index()
    dates = start + pd.to_timedelta(per_day.index, unit="D")
    stable = (per_day.index >= 20) & (per_day.index < 55)  # before the promo
    weekend = dates.dayofweek >= 5
    wk = per_day[stable & weekend].mean() / per_day[stable & ~weekend].mean()
    assert abs(wk - gt["weekend_lift"]) < 0.1
    promo = (per_day.index >= 60) & (per_day.index < 67)
    around = (per_day.index >= 46) & (per_day.index < 60) | (per_day.index >= 67) & (
        per_day.index < 81
    )
    assert abs(per_day[promo].mean() / per_day[around].mean() - gt["promo_traffic_lift"]) < 0.2
    wd = visits[visits.dt.dayofweek < 5].dt.hour.value_counts(normalize=True).sort_index()
    assert np.corrcoef(wd.to_numpy(), gt["hour_profile_weekday"])[0, 1] > 0.97


def test_dirt_counts_match_ground_truth(dirty_world):
    gt = json.loads((dirty_world / "ground_truth.json").read_text())["dirt"]
    ev = pd.read_parquet(dirty_world / "events.parquet")
    orders = pd.read_parquet(dirty_world / "orders.parquet")
    end = pd.Timestamp(json.loads((dirty_world / "ground_truth.json").read_text())["period"]["end"])
    assert gt["enabled"]
    assert ev.duplicated().sum() == gt["duplicate_event_rows"] > 0
    assert ev["user_id"].isna().sum() == gt["null_user_id_events"] > 0
    assert (ev["ts"] >= end).sum() == gt["late_events"] >= 3
    assert orders["order_id"].duplicated().sum() == gt["duplicate_order_id_rows"] > 0
    assert (orders["quantity"] < 0).sum() == gt["negative_quantity_orders"] > 0


def test_clean_world_has_no_dirt(small):
    tables, gt, _ = small
    assert gt["dirt"] == {"enabled": False}
    ev = tables["events"]
    assert ev.duplicated().sum() == 0 and ev["user_id"].notna().all()
    assert not tables["orders"]["order_id"].duplicated().any()

"""Defaults derived from the data (crm_helpers.funnels.defaults) on tiny inline worlds whose
answer is obvious by construction, and the analyses that run without a users table."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.funnels import analysis, defaults, funnel_table
from crm_helpers.funnels.core import FunnelSpec
from crm_helpers.funnels.reference import reference_funnel_counts

T0 = pd.Timestamp("2024-03-01")


def _events(rows: list[tuple]) -> pd.DataFrame:
    """rows: (user_id, event, minutes after T0, platform)."""
    df = pd.DataFrame(rows, columns=["user_id", "event", "minute", "platform"])
    df["ts"] = (T0 + pd.to_timedelta(df.pop("minute"), unit="min")).astype("datetime64[us]")
    return df[["user_id", "event", "ts", "platform"]]


def _write(d, events: pd.DataFrame, users: pd.DataFrame | None = None):
    d.mkdir(parents=True, exist_ok=True)
    events.to_parquet(d / "events.parquet", index=False)
    if users is not None:
        users.to_parquet(d / "users.parquet", index=False)
    return load(d)


def _chain_world() -> pd.DataFrame:
    """30 users do a -> b -> c in that order, fewer at each step; 'rare' is done by 1 user.

    Users 0..29 do a; 0..19 then b; 0..9 then c. Platform on the entry event: even users
    'ios', odd 'web'. A 'sku' property with a value per user (too many groups).
    """
    rows = []
    for u in range(30):
        p = "ios" if u % 2 == 0 else "web"
        rows.append((u, "a", u * 10, p))
        if u < 20:
            rows.append((u, "b", u * 10 + 1, None))
        if u < 10:
            rows.append((u, "c", u * 10 + 2, None))
    rows.append((0, "rare", 5000, None))
    df = _events(rows)
    df["sku"] = [f"s{i}" for i in range(len(df))]
    return df


def test_choose_steps_standard_shopping_events(tmp_path):
    ev = _events(
        [(1, "pv", 0, None), (1, "cart", 1, None), (1, "buy", 2, None), (2, "pv", 0, None)]
    )
    data = _write(tmp_path, ev)
    steps, how = defaults.choose_steps(data)
    assert steps == ["pv", "cart", "buy"]
    assert "standard shopping" in how


def test_choose_steps_most_common_order(tmp_path):
    data = _write(tmp_path, _chain_world())
    steps, how = defaults.choose_steps(data, min_share=0.05)
    assert steps == ["a", "b", "c"]  # 'rare' (1 of 30 users) is below 5 %
    assert "order" in how
    assert defaults.choose_steps(data, max_steps=2, min_share=0.05)[0] == ["a", "b"]


def test_choose_steps_needs_two_events(tmp_path):
    data = _write(tmp_path, _events([(1, "only", 0, None), (2, "only", 1, None)]))
    with pytest.raises(ValueError, match="pass steps"):
        defaults.choose_steps(data)


def test_choose_breakdown_prefers_entry_property_then_user_attribute(tmp_path):
    ev = _chain_world()
    users = pd.DataFrame(
        {"user_id": range(30), "country": ["DE"] * 20 + ["FR"] * 10, "name": [f"n{i}" for i in range(30)]}
    )  # fmt: skip
    data = _write(tmp_path / "both", ev, users)
    spec = FunnelSpec(["a", "b", "c"])
    b = defaults.choose_breakdown(data, spec, min_group_users=10)
    assert (b.property, b.source, b.groups) == ("platform", "first_touch", 2)
    assert b.coverage == 1.0
    # without the event property: the user attribute (name has 30 values: too many groups)
    data = _write(tmp_path / "users", ev.drop(columns=["platform"]), users)
    b = defaults.choose_breakdown(data, spec, min_group_users=10)
    assert (b.property, b.source) == ("country", "user")
    # groups too small for the threshold: nothing qualifies
    assert defaults.choose_breakdown(data, spec, min_group_users=11) is None
    # no properties and no users at all
    data = _write(tmp_path / "bare", ev[["user_id", "event", "ts"]])
    assert defaults.choose_breakdown(data, spec, min_group_users=1) is None


def test_choose_audience_step_is_the_largest_loss():
    table = pd.DataFrame({"step": [1, 2, 3, 4], "users": [100, 90, 40, 35]})
    assert defaults.choose_audience_step(table) == 2  # 90 -> 40 loses 50
    tie = pd.DataFrame({"step": [1, 2, 3], "users": [100, 50, 0]})
    assert defaults.choose_audience_step(tie) == 1  # ties: the earlier step
    with pytest.raises(ValueError):
        defaults.choose_audience_step(table.head(1))


def test_drivers_and_prior_events(tmp_path):
    users = pd.DataFrame(
        {
            "user_id": range(30),
            "country": ["DE", "FR", "IT"] * 10,
            "vip": [True, False] * 15,
            "constant": ["x"] * 30,  # one value: nothing to compare
            "email": [f"u{i}@x" for i in range(30)],  # 30 values: more than max_levels
            "age": range(30),  # numeric: not an attribute
        }
    )
    data = _write(tmp_path, _chain_world(), users)
    assert defaults.choose_driver_properties(data) == ["country", "vip"]
    spec = FunnelSpec(["a", "b"])
    assert defaults.choose_prior_events(data, spec) == ["c", "rare"]
    assert defaults.choose_prior_events(data, spec, n=1) == ["c"]


def test_analyses_run_without_a_users_table(tmp_path):
    ev = _chain_world()[["user_id", "event", "ts"]]
    data = _write(tmp_path, ev)
    assert not data.has("users")
    assert defaults.choose_driver_properties(data) == []
    spec = FunnelSpec(["a", "b", "c"])
    table = funnel_table(data, spec)
    assert list(table["users"]) == reference_funnel_counts(ev, spec) == [30, 20, 10]
    step = defaults.choose_audience_step(table)
    assert step == 1  # 30 -> 20 and 20 -> 10 lose 10 each: the earlier step
    aud = analysis.dropoff_audience(data, spec, step)
    assert list(aud.columns) == ["user_id", "entry_at", "last_step_at"]
    assert sorted(aud.to_pandas()["user_id"]) == list(range(20, 30))
    drivers = analysis.conversion_drivers(data, spec, prior_events=[], min_users=1)
    assert drivers.empty
    with pytest.raises(Exception, match="users"):
        analysis.dropoff_audience(data, spec, 1, attributes=["country"])

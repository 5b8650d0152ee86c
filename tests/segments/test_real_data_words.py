"""The segment summary names its populations, on real-shaped data.

*Customers* are the users with at least one purchase (``revenue >= 0``) by the as-of date;
the health states and their flows are of *users* (everyone active by then: a purchase or any
event) when the data have events, of the customers when they do not. Each sentence's
figures are checked against plain pandas on the same frames (the loaded orders and events):
on the committed Online Retail II extract (invoice lines with cancellations), the
orders-only shape of ``tests/notebooks/test_foreign_shapes.py`` and the small synthetic
world (orders and events). The events-only shape has no orders: the segment report refuses
it (``test_foreign_shapes``), so there is no summary to check.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.segments import core, narrative
from crm_helpers.segments import states as st
from tests.notebooks.test_foreign_shapes import SHAPES

SAMPLE = Path(__file__).parents[1] / "data" / "online_retail_ii_sample"
RULES = st.HealthRules()


def _days(ts: pd.Series) -> pd.Series:
    return (pd.to_datetime(ts) - pd.Timestamp("1970-01-01")).dt.days


def _states_by_hand(orders: pd.DataFrame, events: pd.DataFrame | None, day: int) -> pd.Series:
    """Each user's rule state at day number ``day`` (module docstring of segments.states)."""
    parts = [pd.DataFrame({"user_id": orders.loc[orders.revenue >= 0, "user_id"],
                           "day": _days(orders.loc[orders.revenue >= 0, "ts"])})]  # fmt: skip
    if events is not None:
        parts.append(pd.DataFrame({"user_id": events["user_id"], "day": _days(events["ts"])}))
    a = pd.concat(parts).drop_duplicates()
    a = a[a["day"] <= day]
    last = a.groupby("user_id")["day"].max()
    recent = a[a["day"] > day - RULES.active_window_days].groupby("user_id").size()
    recent = recent.reindex(last.index, fill_value=0)
    since = day - last
    state = pd.Series("active", index=last.index)
    state[recent >= RULES.super_active_min_days] = "super-active"
    state[since > RULES.dormant_after_days] = "dormant-risk"
    state[since > RULES.churned_after_days] = "churned"
    return state


def _run(data, population: str):
    orders = data.orders
    as_of = core.last_order_date(orders)
    rfm = core.rfm_table(orders, as_of)
    summary = core.segment_summary(rfm)
    events = data.events if population == "users" else None
    activity = st.activity_days(orders, events)
    counts = st.state_counts(st.rule_states(activity, as_of, RULES))
    first = pd.Timestamp(orders.ts.min().execute()).date()
    ends = st.month_ends(first, as_of)[-2:]  # the last month: the flows line reads it
    flows = st.churn_flows(st.migration_table(activity, ends, RULES))
    lines = narrative.segment_findings(summary, counts, as_of, flows=flows, population=population)
    return as_of, ends, lines


def _check(data, population: str) -> list[str]:
    o = data.orders.to_pandas()
    ev = data.events.to_pandas() if population == "users" else None
    as_of, ends, lines = _run(data, population)
    end = core.day_number(as_of)
    o = o[_days(o["ts"]) <= end]
    customers = o.loc[o["revenue"] >= 0, "user_id"].nunique()
    state = _states_by_hand(o, ev, end)
    n = state.value_counts()
    # line 1: customers, and the top segments' customers among them
    assert lines[0].startswith(
        f"{customers:,} customers as of {as_of} (users with at least one purchase by then): "
    )
    # line 2: the health states, of the population it names
    tail = (
        f"{n.get('super-active', 0):,} super-active, {n.get('active', 0):,} active, "
        f"{n.get('dormant-risk', 0):,} dormant-risk, {n.get('churned', 0):,} churned."
    )
    if population == "users":
        assert len(state) >= customers  # every customer is active on their purchase day
        head = (
            f"Health of the {len(state):,} users seen by {as_of} (a purchase or any event; "
            f"{customers:,} of them customers): "
        )
    else:
        assert len(state) == customers  # activity = purchases: the states are the customers'
        head = f"Health of the {customers:,} customers by their purchases: "
    assert lines[1] == head + tail
    # line 3: the last month's flows, of the same population
    prev_end, cur_end = (core.day_number(e) for e in ends)
    before = _states_by_hand(o, ev, prev_end).reindex(state.index).fillna("(new)")
    into_dr = int(
        ((state == "dormant-risk") & before.isin(["super-active", "active", "(new)"])).sum()
    )
    into_ch = int(((state == "churned") & (before != "churned")).sum())
    assert cur_end == end
    assert lines[2] == (
        f"In the month to {as_of}, **{into_dr:,}** {population} slipped into dormant-risk "
        f"and {into_ch:,} into churned."
    )
    return lines


def test_order_lines_extract():
    data = load(SAMPLE)
    lines = _check(data, "customers")
    assert lines[0].startswith("270 customers as of 2010-12-09")  # not the 307 ids with orders
    assert "users" not in lines[1] + lines[2]


def test_orders_only_shape(tmp_path):
    SHAPES["orders_only"](tmp_path)
    _check(load(tmp_path), "customers")


def test_small_synthetic_world_names_users_and_customers(small_world):
    data = load(small_world)
    lines = _check(data, "users")
    assert "customers slipped" not in " ".join(lines)


def test_population_is_checked():
    summary = pd.DataFrame(
        {"segment": ["Champions"], "customers": [4], "revenue": [100.0], "revenue_share": [1.0]}
    )
    states = pd.DataFrame({"state": ["active"], "users": [4]})
    with pytest.raises(ValueError, match="population"):
        narrative.segment_findings(summary, states, "2025-01-05", population="buyers")


def test_holdout_line_names_its_customers():
    summary = pd.DataFrame(
        {"segment": ["Champions"], "customers": [4], "revenue": [100.0], "revenue_share": [1.0]}
    )
    states = pd.DataFrame({"state": ["active"], "users": [4]})
    holdout = {"predicted_total": 10.4, "actual_total": 9.0, "mae": 0.25, "customers": 3}
    lines = narrative.segment_findings(summary, states, "2025-01-05", holdout=holdout)
    assert lines[-1] == (
        "The purchase model (BG/NBD) predicted 10 repeat purchases in the holdout period "
        "against 9 observed, for the 3 customers who had bought by the calibration end "
        "(mean absolute error 0.25 per customer)."
    )


def test_cluster_counts_are_fewer_not_less():
    summary = pd.DataFrame(
        {"segment": ["Champions"], "customers": [4], "revenue": [100.0], "revenue_share": [1.0]}
    )
    states = pd.DataFrame({"state": ["active"], "users": [4]})
    tops = pd.DataFrame(
        {"cluster": [0, 0, 0], "feature": ["revenue", "orders", "active_days"],
         "effect_size": [-1.0, -0.9, 0.5]}
    )  # fmt: skip
    sizes = pd.DataFrame({"cluster": [0], "users": [4], "share": [1.0]})
    lines = narrative.segment_findings(
        summary, states, "2025-01-05", tops=tops, cluster_sizes=sizes
    )
    assert lines[-1].endswith("cluster 0 (100%): less revenue, fewer orders, more active days.")

"""crm_helpers.events: the event matching and time bounds shared by funnels and journeys."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from crm_helpers import events as ev

DF = pd.DataFrame(
    {
        "user_id": [1, 1, 2, 2],
        "event": ["buy", "buy", "buy", "view"],
        "ts": pd.to_datetime(
            ["2024-01-01 00:00", "2024-01-02 00:00", "2024-01-03 00:00", "2024-01-04 00:00"]
        ),
        "cat": ["a", None, "b", "a"],
    }
)


def _count(t, cond) -> int:
    return int(t.filter(cond).count().to_pyarrow().as_py())


def test_match_equality_membership_and_null():
    t = ibis.memtable(DF)
    assert _count(t, ev.match(t, "buy", None)) == 3
    assert _count(t, ev.match(t, "buy", ev.norm_where({"cat": "a"}))) == 1
    assert _count(t, ev.match(t, "buy", ev.norm_where({"cat": ["a", "b"]}))) == 2
    assert _count(t, ev.match(t, "buy", ev.norm_where({"cat": None}))) == 1


def test_norm_where_and_labels():
    assert ev.norm_where({"c": {"y", "x"}}) == {"c": ("x", "y")}
    assert ev.norm_where({}) is None
    assert ev.where_text({"c": ("x", "y"), "d": 1}) == " [c in ['x', 'y'], d=1]"
    with pytest.raises(ValueError, match="empty list"):
        ev.norm_where({"c": []})
    with pytest.raises(TypeError):
        ev.norm_where(["c"])


def test_time_bounds_and_timestamps():
    t = ibis.memtable(DF)
    start = ev.to_timestamp("2024-01-02", "start")
    end = ev.to_timestamp("2024-01-04T00:00:00+00:00", "end")  # aware: read as UTC
    assert end == pd.Timestamp("2024-01-04")
    assert _count(t, ev.ts_bounds(t, start, end)) == 2  # [start, end)
    assert _count(t, ev.ts_bounds(t, start, end, slack_us=0)) == 3  # [start, end]
    assert ev.ts_us(pd.Timestamp("1970-01-01 00:00:01")) == 1_000_000
    with pytest.raises(ValueError, match="not a valid timestamp"):
        ev.to_timestamp("NaT", "start")


def test_checks_name_the_problem():
    t = ibis.memtable(DF)
    ev.check_columns(t, [("step 1", "buy", {"cat": "a"})])
    with pytest.raises(ValueError, match="closest columns"):
        ev.check_columns(t, [("step 1", "buy", {"cats": "a"})])
    with pytest.raises(ValueError, match="closest first"):
        ev.check_events_exist(t, [("step 1", "buyy", None)])
    with pytest.raises(TypeError, match="CRMData"):
        ev.events_of(42)


# --- the shared event vocabulary (EVENT_STAGES, stage_event, resolve_event) ---------------
def test_resolve_event_exact_case_and_alias():
    names = ["pv", "cart", "buy", "Signup"]
    assert ev.resolve_event("buy", names) == ("buy", "")
    assert ev.resolve_event("signup", names) == ("Signup", "'signup' is named 'Signup' in the data")
    assert ev.resolve_event("purchase", names) == ("buy", "'purchase' is named 'buy' in the data")
    # an alias resolves through its stage to the stage's preferred name present
    assert ev.resolve_event("transaction", names)[0] == "buy"
    assert ev.resolve_event("add_to_cart", names)[0] == "cart"
    assert ev.resolve_event("refund", names) == (None, "")


def test_stage_event_prefers_the_stage_order_then_ignores_case():
    assert ev.stage_event("purchase", ["order", "purchase"]) == "purchase"
    assert ev.stage_event("purchase", ["Transaction", "view"]) == "Transaction"
    assert ev.stage_event("purchase", ["view", "cart"]) is None
    assert ev.stage_of("BUY") == "purchase"
    assert ev.stage_of("purchase") == "purchase"
    assert ev.stage_of("refund") is None

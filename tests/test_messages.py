"""Error messages that say what is wrong once: unparseable timestamps, unknown step events."""

from __future__ import annotations

import ibis
import pytest

from crm_helpers.data.validate import DataContractError
from crm_helpers.funnels.core import FunnelSpec, closest_first, user_funnel
from tests.test_validate import load_broken


def test_unparseable_timestamps_are_reported_once_as_unparseable(tmp_path):
    def garble(fr):
        ts = fr["events"]["ts"].astype(str)
        ts[[3, 4, 9]] = ["yesterday", "2024-13-45 10:00", "31/01/2024 10:00"]
        ts[[5, 6]] = ["", None]  # really empty: these are the empty values
        fr["events"]["ts"] = ts

    with pytest.raises(DataContractError) as exc:
        load_broken(tmp_path, garble, "csv")
    found = {f.check: f for f in exc.value.findings if f.column == "ts"}
    assert found["unparseable_timestamp"].count == 3
    assert "unparseable" in found["unparseable_timestamp"].message
    assert found["null_value"].count == 2  # not 5: unparseable text is not "empty"
    assert "empty values" in found["null_value"].message


def test_only_unparseable_timestamps_give_no_empty_value_finding(tmp_path):
    def garble(fr):
        ts = fr["events"]["ts"].astype(str)
        ts[[3]] = ["not a date"]
        fr["events"]["ts"] = ts

    with pytest.raises(DataContractError) as exc:
        load_broken(tmp_path, garble, "csv")
    checks = [f.check for f in exc.value.findings if f.column == "ts"]
    assert checks == ["unparseable_timestamp"]
    assert str(exc.value).count("not a date") >= 1


def test_closest_first_orders_every_name_by_similarity():
    known = ["visit", "purchase", "push_open", "add_to_cart", "checkout"]
    got = closest_first("purchse", known)
    assert got[0] == "purchase" and sorted(got) == sorted(known)
    assert closest_first("Checkout", known)[0] == "checkout"  # case is ignored
    assert closest_first("x", [f"e{i}" for i in range(40)], limit=5) == [
        "e0",
        "e1",
        "e10",
        "e11",
        "e12",
    ]  # no similarity: alphabetical, capped


def test_unknown_step_lists_the_events_that_exist_closest_first():
    events = ibis.memtable(
        {
            "user_id": [1, 1, 2, 2],
            "event": ["visit", "add_to_cart", "checkout", "purchase"],
            "ts": ibis.timestamp("2024-01-01 00:00:00").execute(),
        }
    )
    with pytest.raises(ValueError) as exc:
        user_funnel(events, FunnelSpec(["visit", "chekout"]))
    msg = str(exc.value)
    assert "step 2: event 'chekout' does not occur in the data" in msg
    assert "closest first: ['checkout', " in msg
    listed = msg.split("closest first: ")[1].split("]")[0]
    assert all(e in listed for e in ("visit", "add_to_cart", "checkout", "purchase"))

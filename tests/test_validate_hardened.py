"""Hardened loads (issue #23 rows 4, 5, 7, 8): absurd dates, absurd amounts, lost time order.

Each test plants one absurdity into a small synthetic world (400 users, generated in
memory) and checks the finding (table, column, count) and what the loaded tables keep,
against counts taken from the planted frames with plain pandas.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.data.validate import EARLIEST_PLAUSIBLE, DataContractError
from crm_helpers.overview import event_counts, overview_summary, quality_table, table_summary


@pytest.fixture(scope="module")
def world_frames():
    from crm_helpers.synth import SynthConfig, generate

    return generate(SynthConfig(n_users=400, seed=3)).tables()


@pytest.fixture
def frames(world_frames):
    return {k: v.copy() for k, v in world_frames.items()}


def write(tmp_path, frames):
    d = tmp_path / "data"
    d.mkdir()
    for name, df in frames.items():
        df.to_parquet(d / f"{name}.parquet", index=False)
    return d


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def by_check(data) -> dict:
    return {(f.table, f.column, f.check): f for f in data.quality.findings}


def test_order_and_message_dates_9999_and_year_1_are_counted_and_excluded(tmp_path, frames):
    orders, messages, users = frames["orders"], frames["messages"], frames["users"]
    orders.loc[0, "ts"] = utc("9999-12-31 23:59:59")
    orders.loc[1, "ts"] = utc("0001-01-01")
    messages.loc[0, "sent_at"] = utc("9999-12-31")
    opened = messages.index[messages.opened_at.notna()]
    messages.loc[opened[:2], "opened_at"] = utc("0001-01-01")  # optional time: set to missing
    users.loc[:2, "signup_at"] = utc("1969-12-31")
    assignments = frames["assignments"]
    assignments.loc[0, "assigned_at"] = utc("9999-12-31")

    data = load(write(tmp_path, frames))
    f = by_check(data)
    assert not data.quality.errors
    assert f[("orders", "ts", "future_dates")].count == 1
    assert f[("orders", "ts", "ancient_dates")].count == 1
    assert f[("messages", "sent_at", "future_dates")].count == 1
    assert f[("messages", "opened_at", "ancient_dates")].count == 2
    assert f[("users", "signup_at", "ancient_dates")].count == 3
    assert f[("assignments", "assigned_at", "future_dates")].count == 1
    assert "9999-12-31" in str(f[("orders", "ts", "future_dates")].examples[0]["ts"])
    assert "excluded from the loaded orders" in f[("orders", "ts", "future_dates")].message
    assert "treated as missing" in f[("messages", "opened_at", "ancient_dates")].message

    counts = data.row_counts()
    # row times: the rows are excluded; optional times: the rows are kept
    assert counts["orders"] == len(orders) - 2
    assert counts["messages"] == len(messages) - 1
    assert counts["assignments"] == len(assignments) - 1
    assert counts["users"] == len(users)
    spans = table_summary(data).set_index("table")
    assert spans.loc["orders", "max_ts"] == orders.ts.iloc[2:].max().tz_localize(None)
    assert spans.loc["orders", "min_ts"] == orders.ts.iloc[2:].min().tz_localize(None)
    assert data.users.signup_at.min().to_pyarrow().as_py() >= EARLIEST_PLAUSIBLE
    assert int(data.users.signup_at.isnull().sum().to_pyarrow().as_py()) == 3
    n_opened = int(data.messages.opened_at.notnull().sum().to_pyarrow().as_py())
    assert n_opened == messages.opened_at.notna().sum() - 2 - int(pd.notna(messages.opened_at[0]))


def test_events_of_year_1_and_1969_warn_and_leave_the_period(tmp_path, frames):
    ev = frames["events"]
    first, last = ev.ts.min(), ev.ts.max()
    ev.loc[0, "ts"] = utc("0001-01-01")
    ev.loc[1, "ts"] = utc("1969-07-20 20:17")
    data = load(write(tmp_path, frames))
    f = by_check(data)[("events", "ts", "ancient_dates")]
    assert f.count == 2 and f.severity == "warning"
    assert data.row_counts()["events"] == len(ev) - 2

    tables = table_summary(data)
    lines = overview_summary(tables, event_counts(data), quality_table(data))
    period = next(s for s in lines if s.startswith("Events run from"))
    kept = ev.ts.iloc[2:]
    assert kept.min() >= first and kept.max() == last
    days = (kept.max().normalize() - kept.min().normalize()).days + 1
    assert f"({days:,} days)" in period and days < 400
    assert "2 events with implausible dates" in period and "excluded" in period


def test_non_finite_and_huge_revenue_is_a_contract_error(tmp_path, frames):
    orders = frames["orders"]
    orders.loc[3, "revenue"] = np.inf
    orders.loc[5, "revenue"] = 1e308
    orders.loc[6, "revenue"] = -np.inf
    with pytest.raises(DataContractError) as exc:
        load(write(tmp_path, frames))
    (f,) = [f for f in exc.value.findings if f.check == "absurd_number"]
    assert (f.table, f.column, f.severity, f.count) == ("orders", "revenue", "error", 3)
    ids = {ex["order_id"] for ex in f.examples}
    assert ids == set(orders.order_id[[3, 5, 6]])
    msg = str(exc.value)
    assert "table 'orders', column 'revenue'" in msg and "(3 row(s))" in msg


def test_a_normal_large_revenue_passes(tmp_path, frames):
    frames["orders"].loc[3, "revenue"] = 9.5e11  # large but below the magnitude limit
    data = load(write(tmp_path, frames))
    assert not [f for f in data.quality.findings if f.check == "absurd_number"]


def test_every_event_at_one_instant_warns_that_time_order_is_lost(tmp_path, frames):
    ev = frames["events"]
    ev["ts"] = utc("2025-03-01 12:00")
    data = load(write(tmp_path, frames))
    f = by_check(data)[("events", "ts", "tied_timestamps")]
    # brute force: events in (user, ts) groups with more than one event name
    g = ev.groupby(["user_id", "ts"]).event
    tied = int(g.transform("size")[g.transform("nunique") > 1].count())
    assert f.count == tied and tied > 0.5 * len(ev)
    assert "time order is lost" in f.message


def test_the_synthetic_world_has_no_time_order_warning(tmp_path, frames):
    data = load(write(tmp_path, frames))
    checks = {f.check for f in data.quality.findings}
    assert not checks & {"tied_timestamps", "ancient_dates", "future_dates", "future_events"}


def test_ancient_rule_is_exactly_before_1990(tmp_path, frames):
    ev = frames["events"]
    ev.loc[0, "ts"] = utc("1990-01-01 00:00:00")  # plausible (the bound itself)
    ev.loc[1, "ts"] = utc("1989-12-31 23:59:59")  # implausible
    data = load(write(tmp_path, frames))
    assert by_check(data)[("events", "ts", "ancient_dates")].count == 1
    assert data.events.ts.min().to_pyarrow().as_py() == dt.datetime(1990, 1, 1)


def test_same_findings_on_every_engine(tmp_path, frames, con):
    ev, orders = frames["events"], frames["orders"]
    ev.loc[0, "ts"] = utc("0001-01-01")
    ev.loc[1, "ts"] = utc("1969-07-20 20:17")
    orders.loc[0, "ts"] = utc("9999-12-31")
    data = load(write(tmp_path, frames), engine=con)
    f = by_check(data)
    assert f[("events", "ts", "ancient_dates")].count == 2
    assert f[("orders", "ts", "future_dates")].count == 1
    assert data.row_counts()["events"] == len(ev) - 2
    assert data.row_counts()["orders"] == len(orders) - 1


def test_summaries_say_time_order_is_lost_once(tmp_path, frames):
    from crm_helpers.report.data_quality import summary_lines

    frames["events"]["ts"] = utc("2025-03-01 12:00")
    frames["orders"].loc[0, "ts"] = utc("9999-12-31")
    data = load(write(tmp_path, frames))
    lines = summary_lines(data)  # what every report's summary ends with
    assert lines[0] == (
        "Data quality: rows with implausible dates were left out on load: 1 row(s) of orders "
        "excluded (ts in the future or far beyond the rest)."
    )
    assert lines[1].startswith("Data quality: time order is lost: 100% of events")
    overview = overview_summary(table_summary(data), event_counts(data), quality_table(data))
    assert sum("time order is lost" in s for s in overview) == 1
    assert lines[0] in overview

"""Extract guards: empty tables, an empty date range and a sudden shrink fail the report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.report import guard, metrics, provenance


@pytest.fixture(autouse=True)
def _no_guard_env(monkeypatch):
    monkeypatch.delenv(guard.ENV_VAR, raising=False)
    monkeypatch.delenv(metrics.ENV_VAR, raising=False)
    monkeypatch.delenv("CRM_SHRINK_SHARE", raising=False)
    yield
    metrics.reset()


def _write(d, n_events: int):
    d.mkdir()
    pd.DataFrame(
        {"user_id": [1, 2], "signup_at": pd.to_datetime(["2024-01-01", "2024-01-02"])}
    ).to_parquet(d / "users.parquet")
    ts = pd.date_range("2024-01-10", periods=max(n_events, 1), freq="D")[:n_events]
    pd.DataFrame(
        {"user_id": [1 + i % 2 for i in range(n_events)], "event": ["visit"] * n_events, "ts": ts},
    ).astype({"user_id": "int64", "event": "string"}).to_parquet(d / "events.parquet")
    return d


def test_pure_rules():
    assert guard.empty_tables({"users": 5, "events": 0, "orders": 0}, ["users", "events"]) == [
        "events"
    ]
    before = {"users": 100, "events": 1000, "orders": 0}
    assert guard.shrunk_tables({"users": 100, "events": 99, "orders": 0}, before) == [
        ("events", 99, 1000)
    ]
    assert guard.shrunk_tables({"users": 100, "events": 100}, before) == []  # exactly 10%
    assert guard.shrunk_tables({"events": 400}, before, share=0.5) == [("events", 400, 1000)]
    assert guard.shrink_share(None) == 0.10
    with pytest.raises(ValueError, match="between 0 and 1"):
        guard.shrink_share(1.5)


def test_required_empty_table_fails_the_header(tmp_path):
    data = load(_write(tmp_path / "d", 0), require=["users", "events"])
    assert data.required == ("users", "events")
    with pytest.raises(guard.EmptyExtractError, match="the events table has no rows"):
        provenance.header({"title": "t"}, data, "t")
    # recorded before failing: run.json gets the fingerprint of the empty extract
    assert metrics.current()["provenance"]["data"]["fingerprint"]["rows"]["events"] == 0
    # a table the report does not require may be empty
    provenance.header({}, load(tmp_path / "d", require=["users"]), "t")


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def test_empty_date_range_fails_naming_the_span(tmp_path, engine, request):
    con = request.getfixturevalue("spark_con") if engine == "spark" else engine
    data = load(_write(tmp_path / "d", 5), engine=con, require=["users", "events"])
    rows = data.row_counts()
    guard.check(data, rows, {"start_date": "2024-01-12", "end_date": "2024-01-13"})  # 1 row
    with pytest.raises(guard.EmptyExtractError) as exc:
        guard.check(data, rows, {"start_date": "2025-01-01", "end_date": ""})
    msg = str(exc.value)
    assert "no events rows from 2025-01-01" in msg
    assert "the events run from 2024-01-10 to 2024-01-14" in msg
    with pytest.raises(guard.EmptyExtractError):
        guard.check(data, rows, {"start_date": "", "end_date": "2024-01-10"})  # [.., end)


def test_shrink_guard_names_both_counts(tmp_path, monkeypatch):
    data = load(_write(tmp_path / "d", 5), require=["users", "events"])
    rows = data.row_counts()
    env = guard.guard_env({"users": 2, "events": 60}, 0.1, "2026-01-01T06:00:00+00:00")
    monkeypatch.setenv(guard.ENV_VAR, env)
    with pytest.raises(guard.ShrunkExtractError) as exc:
        guard.check(data, rows, {})
    msg = str(exc.value)
    assert "events has 5 rows, the previous good run (2026-01-01T06:00:00+00:00) had 60" in msg
    assert "--allow-shrink" in msg and "users" not in msg
    monkeypatch.setenv(guard.ENV_VAR, guard.guard_env({"events": 49}, 0.1, None))
    guard.check(data, rows, {})  # 5 >= 4.9


def test_previous_rows_env_reads_the_last_good_metrics(tmp_path):
    m = tmp_path / "metrics.json"
    assert guard.previous_rows_env(m, 0.1, None) is None  # no previous run
    m.write_text(json.dumps({"provenance": {"data": {"fingerprint": {"rows": {"events": 7}}}}}))
    got = json.loads(guard.previous_rows_env(m, 0.2, "yesterday"))
    assert got == {"rows": {"events": 7}, "share": 0.2, "since": "yesterday"}

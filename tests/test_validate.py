"""Contract validation: one tiny bad data set per check, each asserting type, message, fix.

``good_frames`` / ``write_frames`` build a small valid data set (also used by
``test_data.py`` and ``test_engine.py``); each test breaks one thing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.data.validate import DataContractError, DataQualityReport, Finding, validate

N_USERS = 20


def good_frames(n_users: int = N_USERS) -> dict[str, pd.DataFrame]:
    """A valid data set: ``n_users`` users (even), 5 events each, 1 order/message/assignment."""
    ids = np.arange(1, n_users + 1)
    users = pd.DataFrame(
        {
            "user_id": ids,
            "signup_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(ids, unit="h"),
            "country": ["DE", "FR"] * (n_users // 2),
        }
    )
    events = pd.DataFrame(
        [
            (
                u,
                ["view", "cart", "purchase"][k % 3],
                pd.Timestamp("2024-01-02") + pd.Timedelta(hours=int(u), minutes=7 * k),
            )
            for u in ids
            for k in range(5)
        ],
        columns=["user_id", "event", "ts"],
    )
    orders = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in ids],
            "user_id": ids,
            "ts": pd.Timestamp("2024-01-03") + pd.to_timedelta(ids, unit="h"),
            "revenue": np.linspace(5.0, 100.0, n_users),
            "quantity": ids % 3 + 1,
        }
    )
    sent = pd.Timestamp("2024-01-04") + pd.to_timedelta(ids, unit="h")
    messages = pd.DataFrame(
        {
            "message_id": ids,
            "user_id": ids,
            "campaign_id": ids % 2,
            "channel": ["push", "email", "sms", "in-app"] * (n_users // 4),
            "sent_at": sent,
            "opened_at": sent + pd.Timedelta(minutes=5),
            "clicked_at": sent + pd.Timedelta(minutes=9),
        }
    )
    assignments = pd.DataFrame(
        {
            "experiment_id": "exp1",
            "user_id": ids,
            "variant": ["control", "treatment"] * (n_users // 2),
            "assigned_at": sent,
        }
    )
    return {
        "users": users,
        "events": events,
        "orders": orders,
        "messages": messages,
        "assignments": assignments,
    }


def write_frames(d: Path, frames: dict[str, pd.DataFrame], fmt: str = "parquet") -> Path:
    """Write each frame as ``d/<name>.parquet`` or ``.csv``."""
    d.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        if fmt == "csv":
            df.to_csv(d / f"{name}.csv", index=False)
        else:
            df.to_parquet(d / f"{name}.parquet", index=False)
    return d


def load_broken(tmp_path: Path, break_it, fmt: str = "parquet", **kw):
    frames = good_frames()
    break_it(frames)
    return load(write_frames(tmp_path / "data", frames, fmt), **kw)


def expect_error(tmp_path, break_it, table, column, check, fix_words, fmt="parquet", **kw):
    """Load broken data; assert a DataContractError naming table, column, rows and fix."""
    with pytest.raises(DataContractError) as exc:
        load_broken(tmp_path, break_it, fmt, **kw)
    msg = str(exc.value)
    found = [f for f in exc.value.findings if f.check == check]
    assert found, f"no {check!r} finding in:\n{msg}"
    f = found[0]
    assert (f.table, f.severity) == (table, "error")
    assert column is None or column in (f.column or "")
    assert f"table '{table}'" in msg
    if column:
        assert column in msg
    assert "Fix:" in msg
    for word in fix_words:
        assert word in f.fix, f.fix
    # the traceback ends in load(), not inside DuckDB/Spark
    assert exc.traceback[-1].name == "load"
    return f


def expect_warning(tmp_path, break_it, table, column, check, fmt="parquet", **kw):
    data = load_broken(tmp_path, break_it, fmt, **kw)
    found = [f for f in data.quality.warnings if f.check == check]
    assert found, data.quality.to_frame()
    f = found[0]
    assert f.table == table and (column is None or f.column == column)
    assert not data.quality.errors
    return data, f


# --- good data --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_good_data_has_no_findings(tmp_path, con, fmt):
    data = load(write_frames(tmp_path, good_frames(), fmt), engine=con)
    assert data.quality.findings == []
    assert data.row_counts() == {
        "users": 20,
        "events": 100,
        "orders": 20,
        "messages": 20,
        "assignments": 20,
    }
    assert data.quality.to_frame().empty


# --- errors -----------------------------------------------------------------------------


def test_missing_table_when_required(tmp_path):
    def drop(fr):
        del fr["orders"]

    f = expect_error(
        tmp_path,
        drop,
        "orders",
        None,
        "missing_table",
        ["orders.parquet", "schema.yaml"],
        require=["events", "orders"],
    )
    assert f.column is None
    # not required -> loads, and asking for it later gives the same clear error
    data = load_broken(tmp_path / "b", drop)
    with pytest.raises(DataContractError, match="needs the 'orders' table"):
        _ = data.orders


def test_missing_required_column(tmp_path):
    def drop(fr):
        fr["events"] = fr["events"].drop(columns="event")

    f = expect_error(tmp_path, drop, "events", "event", "missing_column", ["schema.yaml"])
    assert "'event'" in f.message and "ts" in f.message  # names the columns the file has


def test_revenue_as_text(tmp_path):
    def text(fr):
        fr["orders"]["revenue"] = [f"{v:.2f} EUR" for v in fr["orders"]["revenue"]]

    f = expect_error(tmp_path, text, "orders", "revenue", "wrong_type", ["currency", "numbers"])
    assert "text" in f.message
    assert f.examples and f.examples[0]["revenue"].endswith("EUR")


def test_user_id_float_with_fractions(tmp_path):
    def frac(fr):
        fr["events"]["user_id"] = fr["events"]["user_id"].astype(float)
        fr["events"].loc[[0, 7], "user_id"] = [1.5, 2.25]

    f = expect_error(tmp_path, frac, "events", "user_id", "wrong_type", ["whole numbers"])
    assert f.count == 2
    assert sorted(e["user_id"] for e in f.examples) == [1.5, 2.25]


def test_whole_float_ids_are_accepted_as_integers(tmp_path):
    def whole(fr):
        fr["events"]["user_id"] = fr["events"]["user_id"].astype(float)

    data = load_broken(tmp_path, whole)
    assert data.events.user_id.type().is_integer()
    assert not data.quality.findings


def test_event_not_a_string(tmp_path):
    def numeric(fr):
        fr["events"]["event"] = np.arange(len(fr["events"]))

    f = expect_error(tmp_path, numeric, "events", "event", "wrong_type", ["text"])
    assert "whole numbers" in f.message


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def test_unparseable_timestamps_are_counted(tmp_path, engine, request):
    con = request.getfixturevalue("spark_con") if engine == "spark" else engine

    def garble(fr):
        ts = fr["events"]["ts"].astype(str)
        ts[[3, 4, 9]] = ["yesterday", "2024-13-45 10:00", "31/01/2024 10:00"]
        fr["events"]["ts"] = ts

    f = expect_error(
        tmp_path,
        garble,
        "events",
        "ts",
        "unparseable_timestamp",
        ["YYYY-MM-DD"],
        fmt="csv",
        engine=con,
    )
    assert f.count == 3
    assert {e["ts"] for e in f.examples} == {"yesterday", "2024-13-45 10:00", "31/01/2024 10:00"}


def test_null_user_id_in_users_is_error(tmp_path):
    def null(fr):
        fr["users"]["user_id"] = fr["users"]["user_id"].astype(float)
        fr["users"].loc[2, "user_id"] = np.nan

    f = expect_error(tmp_path, null, "users", "user_id", "null_key", ["fill users.user_id"])
    assert f.count == 1


def test_null_order_id_is_error(tmp_path):
    def null(fr):
        fr["orders"].loc[[1, 2], "order_id"] = None

    f = expect_error(tmp_path, null, "orders", "order_id", "null_key", ["order_id"])
    assert f.count == 2


def test_few_null_user_events_warn_and_are_dropped(tmp_path):
    def null(fr):
        ev = fr["events"]
        ev["user_id"] = ev["user_id"].astype("Int64")
        fr["events"] = pd.concat(
            [
                ev,
                pd.DataFrame({"user_id": [pd.NA], "event": ["view"], "ts": [ev.ts[0]]}).astype(
                    {"user_id": "Int64"}
                ),
            ],
            ignore_index=True,
        )

    data, f = expect_warning(tmp_path, null, "events", "user_id", "null_user_id")
    assert f.count == 1
    assert data.row_counts()["events"] == 100  # the null-user row is dropped
    assert "dropped" in f.message


def test_many_null_user_events_are_an_error(tmp_path):
    def null(fr):
        fr["events"]["user_id"] = fr["events"]["user_id"].astype(float)
        fr["events"].loc[:9, "user_id"] = np.nan  # 10 %

    f = expect_error(tmp_path, null, "events", "user_id", "null_user_id", ["user_id"])
    assert f.count == 10 and "10.0%" in f.message


@pytest.mark.parametrize(
    ("table", "key"), [("users", "user_id"), ("orders", "order_id"), ("messages", "message_id")]
)
def test_duplicate_primary_key(tmp_path, table, key):
    def dup(fr):
        fr[table].loc[1, key] = fr[table].loc[0, key]

    f = expect_error(tmp_path, dup, table, key, "duplicate_key", ["one row per"])
    assert f.count == 1
    assert f.examples[0]["rows"] == 2


def test_user_in_two_variants_is_a_warning_the_readout_handles(tmp_path):
    # an impression-level log has many rows per user: it loads; the experiment readout
    # counts each user once and excludes users in several variants (tests/experiments)
    def two(fr):
        a = fr["assignments"]
        fr["assignments"] = pd.concat(
            [a, a.iloc[[0]].assign(variant="treatment")], ignore_index=True
        )

    _, f = expect_warning(tmp_path, two, "assignments", None, "duplicate_key")
    assert "exactly one variant" in f.fix and "excludes users in several variants" in f.message
    assert "different variants" in f.message
    assert f.examples[0]["user_id"] == 1 and f.examples[0]["variants"] == 2


def test_channel_outside_contract_is_error(tmp_path):
    def bad(fr):
        fr["messages"].loc[[0, 5], "channel"] = ["E-Mail", "whatsapp"]

    f = expect_error(tmp_path, bad, "messages", "channel", "unknown_channel", ["'email'"])
    assert f.count == 2
    assert {e["channel"] for e in f.examples} == {"E-Mail", "whatsapp"}


def test_corrupt_file_is_a_contract_error_from_load(tmp_path):
    d = write_frames(tmp_path, good_frames())
    (d / "orders.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataContractError) as exc:
        load(d)
    assert "orders" in str(exc.value) and "Fix:" in str(exc.value)
    assert exc.traceback[-1].name == "load"


def test_all_errors_are_reported_together(tmp_path):
    def many(fr):
        fr["orders"]["revenue"] = "12"
        fr["messages"].loc[0, "channel"] = "fax"

    with pytest.raises(DataContractError) as exc:
        load_broken(tmp_path, many)
    assert {f.check for f in exc.value.findings} == {"wrong_type", "unknown_channel"}


# --- warnings (recoverable) -------------------------------------------------------------


def test_negative_revenue_and_quantity_warn_and_are_kept(tmp_path):
    def neg(fr):
        fr["orders"].loc[3, "revenue"] = -20.0
        fr["orders"].loc[[4, 5], "quantity"] = -1

    data = load_broken(tmp_path, neg)
    w = {f.check: f for f in data.quality.warnings}
    assert w["negative_revenue"].count == 1 and w["negative_revenue"].column == "revenue"
    assert w["negative_quantity"].count == 2
    assert data.row_counts()["orders"] == 20  # kept


def test_far_future_events_warn_and_are_excluded(tmp_path):
    def future(fr):
        ev = fr["events"]
        fr["events"] = pd.concat(
            [
                ev,
                pd.DataFrame(
                    {
                        "user_id": [1, 2],
                        "event": ["view", "view"],
                        "ts": pd.to_datetime(["2099-01-01", "2098-05-05"]),
                    }
                ),
            ],
            ignore_index=True,
        )

    data, f = expect_warning(tmp_path, future, "events", "ts", "future_events")
    assert f.count == 2
    assert data.row_counts()["events"] == 100
    assert data.events.ts.max().to_pyarrow().as_py() < dt.datetime(2025, 1, 1)


def test_data_end_rule_catches_outliers_before_now(tmp_path):
    # 2024 data with one event in 2025 (before "now") is far beyond the data's own end.
    def outlier(fr):
        ev = fr["events"]
        fr["events"] = pd.concat(
            [
                ev,
                pd.DataFrame(
                    {"user_id": [3], "event": ["view"], "ts": [pd.Timestamp("2025-06-01")]}
                ),
            ],
            ignore_index=True,
        )

    data, f = expect_warning(tmp_path, outlier, "events", "ts", "future_events")
    assert f.count == 1 and data.row_counts()["events"] == 100


def test_open_before_sent_and_click_without_open_warn(tmp_path):
    def odd(fr):
        m = fr["messages"]
        m.loc[0, "opened_at"] = m.loc[0, "sent_at"] - pd.Timedelta(hours=1)
        m.loc[[1, 2], "opened_at"] = pd.NaT

    data = load_broken(tmp_path, odd)
    w = {f.check: f for f in data.quality.warnings}
    assert w["opened_before_sent"].count == 1 and w["opened_before_sent"].table == "messages"
    assert w["clicked_without_open"].count == 2
    assert data.row_counts()["messages"] == 20


def test_assignment_of_unknown_user_warns(tmp_path):
    def unknown(fr):
        fr["assignments"].loc[0, "user_id"] = 999

    data, f = expect_warning(tmp_path, unknown, "assignments", "user_id", "unknown_user")
    assert f.count == 1 and f.examples[0]["user_id"] == 999


def test_events_of_unknown_users_warn(tmp_path):
    def unknown(fr):
        fr["events"].loc[[0, 1, 2], "user_id"] = 777

    data, f = expect_warning(tmp_path, unknown, "events", "user_id", "unknown_user")
    assert f.count == 3
    assert data.row_counts()["events"] == 100  # kept


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def test_exact_duplicate_events_warn_and_are_dropped(tmp_path, engine, request):
    con = request.getfixturevalue("spark_con") if engine == "spark" else engine

    def dup(fr):
        ev = fr["events"]
        fr["events"] = pd.concat([ev, ev.iloc[[0, 0, 5]]], ignore_index=True)

    data, f = expect_warning(tmp_path, dup, "events", None, "duplicate_events", engine=con)
    assert f.count == 3
    assert data.row_counts()["events"] == 100
    by_event = data.events.group_by("event").aggregate(n=data.events.count()).to_pandas()
    assert by_event.set_index("event")["n"].to_dict() == {"view": 40, "cart": 40, "purchase": 20}


def test_validate_false_skips_checks_and_cleaning(tmp_path):
    def dup(fr):
        ev = fr["events"]
        fr["events"] = pd.concat([ev, ev.iloc[[0]]], ignore_index=True)
        fr["messages"].loc[0, "channel"] = "fax"

    data = load_broken(tmp_path, dup, validate=False)
    assert data.quality.findings == []
    assert data.row_counts()["events"] == 101
    # the same checks can be run afterwards
    report = validate(data)
    assert {f.check for f in report.findings} == {"duplicate_events", "unknown_channel"}


def test_report_frame_and_describe():
    f = Finding(
        "orders",
        "revenue",
        "negative_revenue",
        "warning",
        3,
        "negative revenue",
        "check it",
        ({"order_id": "o1", "revenue": -2.0},),
    )
    frame = DataQualityReport([f]).to_frame()
    assert list(frame.columns) == [
        "table",
        "column",
        "check",
        "severity",
        "count",
        "message",
        "fix",
    ]
    assert frame.loc[0, "count"] == 3
    text = f.describe()
    assert "table 'orders', column 'revenue'" in text and "3 row(s)" in text
    assert "order_id='o1'" in text and "Fix: check it" in text

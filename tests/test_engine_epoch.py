"""``engine.epoch_us`` / ``from_epoch_us``: exact integer microseconds on every engine.

Spark has two timestamp types: ``TIMESTAMP`` (an instant) and ``TIMESTAMP_NTZ`` (a wall
time; what Spark makes of naive Parquet timestamps, e.g. written by pandas). Ibis types both
as a naive timestamp, and Spark's ``unix_micros`` takes only the first, so both are tested,
as SQL literals and as loaded Parquet.
"""

from __future__ import annotations

import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.engine import epoch_us, from_epoch_us

# wall times (UTC) and their epoch microseconds, worked out by hand:
# 2024-03-01 12:34:56.789012 = 19783 days + 45296.789012 s after 1970-01-01
CASES = [
    ("1970-01-01 00:00:00", 0),
    ("1969-12-31 23:59:59.999999", -1),
    ("2024-03-01 12:34:56.789012", 19783 * 86_400_000_000 + 45_296_789_012),
    ("2024-10-27 02:30:00", 20023 * 86_400_000_000 + 9_000_000_000),  # Berlin's repeated hour
]


def test_cases_are_right():
    for text, us in CASES:
        assert (pd.Timestamp(text) - pd.Timestamp("1970-01-01")) // pd.Timedelta("1us") == us


def _literal_table(con, sql_type: str):
    """A Spark view with column ``ts`` of ``sql_type`` holding :data:`CASES`."""
    rows = " UNION ALL ".join(
        f"SELECT {i} AS i, {sql_type} '{text}' AS ts" for i, (text, _) in enumerate(CASES)
    )
    sdf = con._session.sql(rows)
    kind = sdf.schema["ts"].dataType.typeName()
    view = f"epoch_cases_{sql_type.lower()}"
    sdf.createOrReplaceTempView(view)
    return con.table(view), kind


def _check(con, t):
    expr = t.mutate(us=epoch_us(t.ts, con.name))
    expr = expr.mutate(back=from_epoch_us(expr.us, con.name)).order_by("i")
    out = con.to_pandas(expr)
    assert out["us"].astype("int64").tolist() == [us for _, us in CASES]
    back = pd.to_datetime(out["back"]).dt.tz_localize(None).astype("datetime64[us]")
    assert back.tolist() == [pd.Timestamp(text) for text, _ in CASES]


@pytest.mark.spark
@pytest.mark.parametrize(
    ("sql_type", "spark_type"),
    [("TIMESTAMP_LTZ", "timestamp"), ("TIMESTAMP_NTZ", "timestamp_ntz")],
)
def test_spark_epoch_us_of_both_timestamp_types(spark_con, sql_type, spark_type):
    t, kind = _literal_table(spark_con, sql_type)
    assert kind == spark_type  # the input really is of that type
    _check(spark_con, t)


def test_duckdb_epoch_us():
    import ibis

    from crm_helpers.engine import connect

    con = connect("duckdb")
    df = pd.DataFrame(
        {"i": range(len(CASES)), "ts": pd.to_datetime([pd.Timestamp(c) for c, _ in CASES])}
    )
    _check(con, con.create_table("cases", ibis.memtable(df), temp=True))


@pytest.mark.parametrize("aware", [False, True], ids=["naive", "utc"])
def test_loaded_parquet_timestamps(con, tmp_path, aware):
    """Naive Parquet timestamps (Spark: TIMESTAMP_NTZ) and UTC ones (TIMESTAMP) through the
    loader give the same epoch microseconds on each engine."""
    ts = pd.to_datetime([pd.Timestamp(c) for c, _ in CASES]).astype("datetime64[us]")
    if aware:
        ts = ts.tz_localize("UTC")
    ev = pd.DataFrame({"user_id": [f"u{i}" for i in range(len(CASES))], "event": "visit", "ts": ts})
    ev.to_parquet(tmp_path / "events.parquet", index=False)
    data = load(tmp_path, engine=con, validate=False)
    e = data.events
    got = e.select("user_id", us=epoch_us(e.ts, con.name)).to_pandas().sort_values("user_id")
    assert got["us"].astype("int64").tolist() == [us for _, us in CASES]

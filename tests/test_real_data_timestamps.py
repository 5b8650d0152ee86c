"""Every Parquet timestamp flavour analysts write loads, as naive UTC, in every table.

The same instants are written per flavour (pandas ``datetime64[ns, UTC]`` — pandas 2's and most
pipelines' default —, other zones and units, naive wall times, INT96 as Spark writes it) into
every timestamp column of the five tables; each load must give the instants as naive UTC, the
same on DuckDB and Spark. The schema's ``timezone`` is ``America/New_York`` throughout: naive
flavours hold New York wall times (and must be converted from it), zone-aware and INT96 ones
must ignore it (their own zone, not the schema's, applies — a zone dropped instead of converted
would shift them by hours). A type that cannot hold date-times is an error in plain words.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm_helpers.data import load
from crm_helpers.data.column_types import (
    ParquetTimestamp,
    parquet_timestamps,
    parquet_type_words,
    type_words,
)
from crm_helpers.data.validate import DataContractError
from crm_helpers.schema import CONTRACT

SCHEMA_TZ = "America/New_York"

#: The instants (UTC): sub-microsecond digits, both Berlin DST changes (the repeated hour's two
#: readings 00:30Z and 01:30Z are 02:30 CEST and 02:30 CET), a year's end.
INSTANTS = pd.Series(
    pd.to_datetime(
        [
            "2024-01-15 11:00:00.123456789",
            "2024-03-31 00:30:00",
            "2024-03-31 01:30:00.5",
            "2024-07-01 10:00:00.000001",
            "2024-10-27 00:30:00",
            "2024-10-27 01:30:00",
            "2024-12-31 23:59:59.999",
        ],
        utc=True,
        format="ISO8601",
    ).as_unit("ns")
)

#: Every timestamp column of the contract, as (table, column).
TS_COLUMNS = [
    (t, c) for t, cols in CONTRACT.items() for c, s in cols.items() if s.kind == "timestamp"
]


def _frames(ts: pd.Series) -> dict[str, pd.DataFrame]:
    """The five tables, each timestamp column holding ``ts`` (one row per value)."""
    n = len(ts)
    ids = list(range(1, n + 1))
    return {
        "users": pd.DataFrame({"user_id": ids, "signup_at": ts}),
        "events": pd.DataFrame({"user_id": ids, "event": "view", "ts": ts}),
        "orders": pd.DataFrame({"order_id": ids, "user_id": ids, "ts": ts, "revenue": [10.0] * n}),
        "messages": pd.DataFrame(
            {
                "message_id": ids,
                "user_id": ids,
                "campaign_id": 1,
                "channel": "email",
                "sent_at": ts,
                "opened_at": ts,
                "clicked_at": ts,
            }
        ),  # fmt: skip
        "assignments": pd.DataFrame(
            {"experiment_id": 1, "user_id": ids, "variant": ["a", "b"] * (n // 2) + ["a"] * (n % 2)}
        ).assign(assigned_at=ts),
    }


def _pandas(convert: Callable[[pd.Series], pd.Series]) -> Callable[[Path], None]:
    """A flavour written by pandas' ``to_parquet`` (pyarrow, its defaults)."""

    def write(d: Path) -> None:
        for name, df in _frames(convert(INSTANTS)).items():
            df.to_parquet(d / f"{name}.parquet", index=False)

    return write


def _int96(d: Path) -> None:
    """INT96, as Spark (and Hive, Impala) write timestamps."""
    for name, df in _frames(INSTANTS).items():
        table = pa.Table.from_pandas(df, preserve_index=False)
        pq.write_table(table, d / f"{name}.parquet", use_deprecated_int96_timestamps=True)


def _aware(unit: str, zone: str) -> Callable[[pd.Series], pd.Series]:
    return lambda s: s.dt.floor(unit).dt.tz_convert(zone).astype(f"datetime64[{unit}, {zone}]")


def _naive(unit: str) -> Callable[[pd.Series], pd.Series]:  # New York wall times
    return lambda s: (
        s.dt.floor(unit).dt.tz_convert(SCHEMA_TZ).dt.tz_localize(None).astype(f"datetime64[{unit}]")
    )


#: flavour -> (writer, the Parquet flavour the file must hold, the unit values keep)
FLAVOURS: dict[str, tuple[Callable[[Path], None], ParquetTimestamp, str]] = {
    "ns-UTC": (_pandas(_aware("ns", "UTC")), ParquetTimestamp("ns", utc=True), "ns"),
    "ns-Berlin": (_pandas(_aware("ns", "Europe/Berlin")), ParquetTimestamp("ns", True), "ns"),
    "us-UTC": (_pandas(_aware("us", "UTC")), ParquetTimestamp("us", True), "us"),
    "us-Berlin": (_pandas(_aware("us", "Europe/Berlin")), ParquetTimestamp("us", True), "us"),
    "ms-UTC": (_pandas(_aware("ms", "UTC")), ParquetTimestamp("ms", True), "ms"),
    "s-Tokyo": (_pandas(_aware("s", "Asia/Tokyo")), ParquetTimestamp("ms", True), "s"),
    "ns-naive": (_pandas(_naive("ns")), ParquetTimestamp("ns", utc=False), "ns"),
    "us-naive": (_pandas(_naive("us")), ParquetTimestamp("us", False), "us"),
    "ms-naive": (_pandas(_naive("ms")), ParquetTimestamp("ms", False), "ms"),
    "s-naive": (_pandas(_naive("s")), ParquetTimestamp("ms", False), "s"),
    # INT96 keeps nanoseconds; both engines truncate them to microseconds (Spark writes none)
    "int96": (_int96, ParquetTimestamp("ns", utc=True, int96=True), "us"),
}


def expected(unit: str) -> list[pd.Timestamp]:
    """The instants as naive UTC at the unit kept, in microseconds (ns rounded, as DuckDB)."""
    s = INSTANTS.dt.floor(unit) if unit != "ns" else INSTANTS.dt.round("us")
    return list(s.dt.tz_localize(None).astype("datetime64[us]"))


def write_flavour(d: Path, flavour: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    FLAVOURS[flavour][0](d)
    (d / "schema.yaml").write_text(f"timezone: {SCHEMA_TZ}\n")
    return d


def loaded_values(data) -> dict[tuple[str, str], list[pd.Timestamp]]:
    """Every timestamp column of ``data`` in row order (by the table's user_id), as us."""
    out = {}
    for table, col in TS_COLUMNS:
        t = data.table(table)
        assert t[col].type().is_timestamp() and t[col].type().timezone is None, (table, col)
        s = t.order_by("user_id")[col].to_pandas()
        out[(table, col)] = list(pd.Series(s).astype("datetime64[us]"))
    return out


def assert_flavour_loads(data, flavour: str) -> None:
    want = expected(FLAVOURS[flavour][2])
    got = loaded_values(data)
    for key, values in got.items():
        assert values == want, (flavour, key)
    assert not data.quality.findings, data.quality.to_frame()


def test_the_flavours_are_what_they_claim(tmp_path):
    for flavour, (_, stamp, _) in FLAVOURS.items():
        d = write_flavour(tmp_path / flavour, flavour)
        for name in ("users", "events", "messages"):
            stamps = parquet_timestamps(d / f"{name}.parquet")
            assert set(stamps.values()) == {stamp}, (flavour, name, stamps)
    assert expected("ns")[0] == pd.Timestamp("2024-01-15 11:00:00.123457")  # rounded up


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_every_flavour_loads_as_naive_utc_on_duckdb(tmp_path, flavour):
    data = load(write_flavour(tmp_path, flavour))
    assert_flavour_loads(data, flavour)


def test_a_folder_of_parts_in_two_flavours_of_one_type(tmp_path):
    """Parts of one folder written by pandas with ns (first) and as Spark does (INT96)."""
    d = write_flavour(tmp_path, "ns-UTC")
    ev = pd.read_parquet(d / "events.parquet")
    (d / "events.parquet").unlink()
    (d / "events").mkdir()
    ev.iloc[:4].to_parquet(d / "events" / "part-0.parquet", index=False)
    pq.write_table(
        pa.Table.from_pandas(ev.iloc[4:], preserve_index=False),
        d / "events" / "part-1.parquet",
        use_deprecated_int96_timestamps=True,
    )
    assert load(d).events.order_by("user_id").ts.to_pandas().astype(
        "datetime64[us]"
    ).tolist() == expected("ns")


def test_int96_is_an_instant_not_a_wall_time(tmp_path):
    """INT96 holds UTC instants: the schema's zone must not shift them (it does shift naive)."""
    a = load(write_flavour(tmp_path / "int96", "int96"))
    b = load(write_flavour(tmp_path / "naive", "us-naive"))
    assert loaded_values(a) == loaded_values(b)
    assert a.tz_aware["events"] == {"ts"} and b.tz_aware["events"] == frozenset()


def test_duckdb_warehouse_with_nanosecond_instants(tmp_path):
    """A DuckDB database (the warehouse path) whose table has TIMESTAMPTZ_NS columns."""
    import duckdb

    d = write_flavour(tmp_path / "files", "ns-Berlin")
    db = tmp_path / "wh.db"
    with duckdb.connect(str(db)) as c:
        for name in ("users", "events"):
            c.execute(
                f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{d / f'{name}.parquet'}')"
            )
        sql = "SELECT data_type FROM duckdb_columns() WHERE column_name = 'ts'"
        assert c.execute(sql).fetchone() == ("TIMESTAMPTZ_NS",)
    data = load(engine=f"duckdb:///{db}", schema=tmp_path / "files" / "schema.yaml")
    got = data.events.order_by("user_id").ts.to_pandas().astype("datetime64[us]").tolist()
    assert got == expected("ns")


# --- what cannot be read is said in plain words --------------------------------------------------


def _error(d: Path, table: str, column: str) -> tuple[str, object]:
    with pytest.raises(DataContractError) as exc:
        load(d)
    (f,) = [f for f in exc.value.findings if f.table == table and f.column == column]
    return str(exc.value), f


def test_unix_seconds_in_ts_name_the_column_and_the_conversion(tmp_path):
    d = write_flavour(tmp_path, "us-UTC")
    ev = pd.read_parquet(d / "events.parquet")
    ev["ts"] = ev["ts"].astype("int64") // 10**6  # Unix seconds
    ev.to_parquet(d / "events.parquet", index=False)
    text, f = _error(d, "events", "ts")
    assert f.check == "wrong_type"
    assert "should hold date-times but holds whole numbers" in f.message
    assert "unit='s'" in f.fix and "pd.to_datetime(df['ts']" in f.fix
    assert "table 'events', column 'ts'" in text
    assert f.examples and f.examples[0]["ts"] == 1705316400


def test_text_that_is_not_a_date(tmp_path):
    d = write_flavour(tmp_path, "us-UTC")
    ev = pd.read_parquet(d / "events.parquet")
    ev["ts"] = ["soon", "2024-03-31 00:30:00", "later", *ev["ts"].astype(str)[3:]]
    ev.to_parquet(d / "events.parquet", index=False)
    text, f = _error(d, "events", "ts")
    assert f.check == "unparseable_timestamp" and f.count == 2
    assert "text that cannot be read as a date-time" in f.message
    assert "YYYY-MM-DD HH:MM:SS" in f.fix
    assert {e["ts"] for e in f.examples} == {"soon", "later"}


def test_a_parquet_type_ibis_cannot_map_is_named_in_words(tmp_path):
    """TIME(NANOS): DuckDB reads it as TIME_NS, a type Ibis does not know."""
    d = write_flavour(tmp_path, "us-UTC")
    _time_of_day_events(d)
    text, f = _error(d, "events", "ts")
    assert f.check == "wrong_type"
    assert f.message.endswith("should hold date-times but holds times of day without a date "
                              "(type TIME_NS)")  # fmt: skip
    assert "combine the date and the time of day" in f.fix
    assert "Unknown" not in text and "DataType(" not in text


def test_nanosecond_instants_where_text_belongs_are_named_in_words(tmp_path):
    d = write_flavour(tmp_path, "ns-UTC")
    ev = pd.read_parquet(d / "events.parquet").assign(event=lambda e: e.ts)
    ev.to_parquet(d / "events.parquet", index=False)
    _, f = _error(d, "events", "event")
    assert f.check == "wrong_type"
    assert "should hold text but holds timestamps with microsecond precision and a time zone" in (
        f.message
    )  # read as microseconds: the loader made the nanoseconds usable


def test_type_words_of_types_ibis_cannot_map():
    import ibis.expr.datatypes as dt
    import sqlglot.expressions as sge

    tstz_ns = dt.Unknown(sge.DataType.build("TIMESTAMPTZ_NS", udt=True))
    assert type_words(tstz_ns) == "timestamps with nanosecond precision and a time zone"
    assert (
        type_words(dt.Timestamp(scale=9)) == "timestamps with nanosecond precision and no time zone"
    )
    assert type_words(dt.Timestamp(timezone="Europe/Berlin", scale=6)) == (
        "timestamps with microsecond precision and a time zone (Europe/Berlin)"
    )
    assert type_words(dt.Unknown(sge.DataType.build("BIT"))) == "bit strings"
    assert type_words(dt.int64) == "whole numbers" and type_words(dt.date) == (
        "dates without a time of day"
    )


# --- Spark: the same flavours, the same values (one session for the whole test run) --------------

SPARK_FLAVOURS = ["ns-UTC", "ns-naive", "us-Berlin", "int96"]


@pytest.mark.spark
@pytest.mark.parametrize("flavour", SPARK_FLAVOURS)
def test_flavour_loads_as_naive_utc_on_spark(tmp_path, flavour, spark_con):
    data = load(write_flavour(tmp_path, flavour), engine=spark_con)
    assert_flavour_loads(data, flavour)


@pytest.mark.spark
def test_int96_written_by_spark_loads_alike_on_both_engines(tmp_path, spark_con):
    from pyspark.sql import functions as F  # noqa: N812

    session = spark_con._session
    d = write_flavour(tmp_path, "us-UTC")
    (d / "events.parquet").unlink()
    ev = _frames(INSTANTS.dt.round("us").dt.tz_localize(None).astype("datetime64[us]"))["events"]
    sdf = session.createDataFrame(ev).withColumn("ts", F.col("ts").cast("timestamp"))
    before = session.conf.get("spark.sql.parquet.outputTimestampType")
    session.conf.set("spark.sql.parquet.outputTimestampType", "INT96")
    try:
        sdf.repartition(2).write.parquet(str(d / "events"))
    finally:
        session.conf.set("spark.sql.parquet.outputTimestampType", before)
    assert set(parquet_timestamps(d / "events").values()) == {ParquetTimestamp("ns", True, True)}
    want = expected("ns")
    for engine in ("duckdb", spark_con):
        got = load(d, engine=engine).events.order_by("user_id").ts.to_pandas()
        assert list(pd.Series(got).astype("datetime64[us]")) == want, engine


def _time_of_day_events(d: Path) -> None:
    ev = pa.Table.from_pandas(pd.read_parquet(d / "events.parquet"), preserve_index=False)
    ns_of_day = pa.array([3_600_000_000_000 * h for h in range(len(ev))], pa.time64("ns"))
    pq.write_table(ev.set_column(2, "ts", ns_of_day), d / "events.parquet")


def test_parquet_type_words_find_the_column_of_an_engine_message(tmp_path):
    d = write_flavour(tmp_path, "us-UTC")
    _time_of_day_events(d)
    msg = "[PARQUET_TYPE_ILLEGAL] Illegal Parquet type: INT64 (TIME(NANOS,false)). SQLSTATE: 42846"
    assert parquet_type_words(d / "events.parquet", msg) == [
        ("ts", "times of day without a date with nanosecond precision")
    ]
    nanos = "Illegal Parquet type: INT64 (TIMESTAMP(NANOS,true))"
    assert parquet_type_words(
        write_flavour(tmp_path / "ns", "ns-UTC") / "users.parquet", nanos
    ) == [("signup_at", "timestamps with nanosecond precision and a time zone")]
    assert parquet_type_words(d / "events.parquet", "some other failure") == []


@pytest.mark.spark
def test_a_parquet_type_spark_cannot_read_is_named_in_words(tmp_path, spark_con):
    d = write_flavour(tmp_path, "us-UTC")
    _time_of_day_events(d)
    with pytest.raises(DataContractError) as exc:
        load(d, engine=spark_con)
    (f,) = exc.value.findings
    assert (f.table, f.column, f.check) == ("events", "ts", "unreadable")
    assert "column 'ts' holds times of day without a date with nanosecond precision" in f.message
    assert "combine a date and a time of day into one column" in f.fix


@pytest.mark.spark
def test_naive_parquet_stays_a_wall_time_when_spark_infers_no_ntz(tmp_path, spark_con):
    """A session that reads naive Parquet timestamps as TIMESTAMP (not TIMESTAMP_NTZ)."""
    key = "spark.sql.parquet.inferTimestampNTZ.enabled"
    session = spark_con._session
    before = session.conf.get(key)
    session.conf.set(key, "false")
    try:
        data = load(write_flavour(tmp_path, "us-naive"), engine=spark_con)
        assert data.tz_aware["events"] == frozenset()
        assert_flavour_loads(data, "us-naive")
    finally:
        session.conf.set(key, before)

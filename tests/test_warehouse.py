"""Tables where they live: the contract read from a warehouse (a DuckDB database file here).

The PostgreSQL server tests are in ``test_postgres.py``; these need no server: a DuckDB
database file is a warehouse too (``duckdb:///path.db``), opened read-only so that any write
would fail.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.data.validate import DataContractError
from crm_helpers.data.warehouse import (
    SourceConflict,
    WarehouseData,
    redact,
    source_of,
    split_name,
)
from crm_helpers.report.run import ParametersError, run_notebook
from crm_helpers.schema import Schema
from tests.test_validate import good_frames, write_frames


@pytest.fixture(scope="module")
def warehouse_db(tmp_path_factory):
    """A DuckDB database file holding the good data set twice: contract names in ``main``,
    and in schema ``analytics`` under other names (``web_events``; ``customers`` with
    ``customer_id``); returns (db path, data directory of the same data as Parquet)."""
    root = tmp_path_factory.mktemp("warehouse")
    files = write_frames(root / "files", good_frames(), "parquet")
    db = root / "wh.duckdb"
    with duckdb.connect(str(db)) as c:
        for name in ("users", "events", "orders", "messages", "assignments"):
            c.execute(
                f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{files}/{name}.parquet')"
            )
        c.execute("CREATE SCHEMA analytics")
        c.execute(f"CREATE TABLE analytics.web_events AS SELECT * FROM '{files}/events.parquet'")
        c.execute(
            "CREATE TABLE analytics.customers AS SELECT * RENAME (user_id AS customer_id) "
            f"FROM '{files}/users.parquet'"
        )
    return db, files


def _ro(db) -> str:
    return f"duckdb:///{db}?read_only=true"


def test_source_of_decides_files_or_warehouse():
    assert source_of(None, "duckdb") == "files"
    assert source_of("/data", "spark") == "files"
    assert source_of(None, "postgres://u@h/db") == "warehouse"
    assert source_of("", "postgres://u@h/db") == "warehouse"  # the notebooks' empty default
    assert source_of(None, "duckdb:///w.db") == "warehouse"
    assert source_of("/data", "duckdb:///w.db") == "files"  # DuckDB reads the files itself
    with pytest.raises(SourceConflict, match="drop --data") as exc:
        source_of("/data", "postgres://u:secret@h/db")
    assert "secret" not in str(exc.value) and "postgres://u:***@h/db" in str(exc.value)


def test_split_name_and_redact():
    assert split_name("events") == (None, "events")
    assert split_name("analytics.web_events") == ("analytics", "web_events")
    assert split_name("prod.analytics.web_events") == (("prod", "analytics"), "web_events")
    assert split_name('"my.schema".events') == ("my.schema", "events")
    with pytest.raises(ValueError, match="not a table name"):
        split_name("a.b.c.d")
    assert redact("postgres://me:pw@host:5432/db") == "postgres://me:***@host:5432/db"
    assert redact("postgres://me@host/db") == "postgres://me@host/db"


def test_contract_names_in_a_read_only_warehouse_equal_the_files(warehouse_db):
    db, files = warehouse_db
    wh, fl = load(engine=_ro(db)), load(files)
    assert isinstance(wh, WarehouseData) and wh.data_dir is None
    assert wh.sources == {n: n for n in fl.tables}
    assert wh.row_counts() == fl.row_counts() and wh.row_counts()["events"] == 100
    assert wh.quality.to_frame().equals(fl.quality.to_frame())
    for name in fl.tables:
        a = wh.tables[name].to_pandas().sort_values(list(wh.tables[name].columns))
        b = fl.tables[name].to_pandas().sort_values(list(fl.tables[name].columns))
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    fp = wh.fingerprint()
    assert fp["rows"] == fl.row_counts() and fp == load(engine=_ro(db)).fingerprint()


def test_schema_maps_qualified_names_and_columns(warehouse_db, tmp_path, monkeypatch):
    db, files = warehouse_db
    schema = Schema(
        tables={"events": "analytics.web_events", "users": "analytics.customers"},
        columns={"users": {"user_id": "customer_id"}},
    )
    wh = load(engine=_ro(db), schema=schema, require=["users", "events"])
    assert wh.sources["events"] == "analytics.web_events"
    assert wh.sources["users"] == "analytics.customers"
    assert wh.row_counts() == load(files).row_counts()
    # the same mapping from $CRM_SCHEMA (what `crm run --schema FILE` sets)
    (tmp_path / "schema.yaml").write_text(
        "tables: {events: analytics.web_events, users: analytics.customers}\n"
        "columns: {users: {user_id: customer_id}}\n"
    )
    monkeypatch.setenv("CRM_SCHEMA", str(tmp_path / "schema.yaml"))
    assert load(engine=_ro(db)).sources == wh.sources


def test_missing_warehouse_table_names_the_warehouse_and_the_name(warehouse_db):
    db, _ = warehouse_db
    schema = Schema(tables={"events": "analytics.clicks"})
    with pytest.raises(DataContractError) as exc:
        load(engine=_ro(db), schema=schema, require=["events"])
    (f,) = exc.value.findings
    assert f.check == "missing_table"
    assert "the warehouse (duckdb:///" in f.message and "'analytics.clicks'" in f.message
    assert ".parquet" not in f.message and "--schema" in f.fix
    assert exc.traceback[-1].name == "load"


def test_mapped_column_missing_in_the_warehouse(warehouse_db):
    db, _ = warehouse_db
    schema = Schema(columns={"users": {"user_id": "cust"}})
    with pytest.raises(DataContractError, match="in table users, but it has no 'cust'"):
        load(engine=_ro(db), schema=schema)


def test_open_connection_without_data_dir_reads_its_tables(warehouse_db):
    from crm_helpers.engine import connect

    db, files = warehouse_db
    con = connect(_ro(db))
    assert load(engine=con).row_counts() == load(files).row_counts()
    # with a data directory, the files go through the same connection
    assert load(files, engine=con).files["events"].name == "events.parquet"


def test_unreadable_file_is_not_reported_as_missing(tmp_path):
    d = write_frames(tmp_path, good_frames())
    (d / "users.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataContractError) as exc:
        load(d, require=["users", "events"])
    checks = {f.table: f.check for f in exc.value.findings}
    assert checks == {"users": "unreadable"}
    assert "has no users.parquet" not in str(exc.value)


def test_crm_run_refuses_data_with_a_warehouse_before_running(tmp_path, capsys):
    from crm_helpers.cli import main

    with pytest.raises(ParametersError, match="cannot read files"):
        run_notebook(
            "funnel_dropoff", data_dir=tmp_path, engine="postgres://u@h/db", out_dir=tmp_path
        )
    rc = main(
        ["run", "funnel_dropoff", "--data", str(tmp_path), "--engine", "postgres://u@h/db"]
        + ["--out", str(tmp_path)]
    )
    assert rc == 2 and "drop --data" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written


@pytest.mark.spark
def test_spark_session_tables_are_a_warehouse(spark_con, tmp_path):
    """An open Spark connection without a data directory: its catalog's tables and views."""
    d = write_frames(tmp_path, good_frames(), "parquet")
    (d / "schema.yaml").write_text("timezone: Europe/Berlin\n")
    session = spark_con._session
    for n in ("users", "events"):
        session.read.parquet(str(d / f"{n}.parquet")).createOrReplaceTempView(f"wh_test_{n}")
    schema = Schema(
        tables={"users": "wh_test_users", "events": "wh_test_events"}, timezone="Europe/Berlin"
    )
    sp = load(engine=spark_con, schema=schema, require=["users", "events"])
    fl = load(d, require=["users", "events"])
    assert set(sp.tables) == {"users", "events"}
    assert sp.sources == {"users": "wh_test_users", "events": "wh_test_events"}
    for name in sp.tables:
        cols = list(fl.tables[name].columns)
        a = sp.tables[name].to_pandas().sort_values(cols).reset_index(drop=True)
        b = fl.tables[name].to_pandas().sort_values(cols).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    # naive wall times in Berlin became UTC the same way on both
    assert sp.events.ts.min().to_pyarrow().as_py() == pd.Timestamp("2024-01-02 00:00")

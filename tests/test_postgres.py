"""A real PostgreSQL: the contract's tables live only in the database and every helper
gives the same answers as DuckDB over the same data as Parquet.

The module fixture ``postgres_url`` starts a throwaway server from
Debian's ``postgresql`` binaries (``initdb`` into a temporary folder, 127.0.0.1, a free
port), loads ``small_world`` and stops it at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers import load, overview
from crm_helpers.data.warehouse import WarehouseData
from crm_helpers.engine import connect, local_to_utc
from crm_helpers.funnels import FunnelSpec, Step, funnel_table
from crm_helpers.funnels.analysis import breakdown_table, trend_table
from crm_helpers.schema import Schema
from tests.report_helpers import assert_same_report, run_funnel_report
from tests.shared_runs import shared_report
from tests.test_engine import pandas_local_to_utc

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]

SPECS = [
    FunnelSpec(["visit", "product_view", "add_to_cart", "purchase"], conversion_window_days=7),
    FunnelSpec(["add_to_cart", "checkout", "purchase"], mode="strict", count="attempts"),
    FunnelSpec(["visit", "add_to_cart", "purchase"], mode="any_order", conversion_window_days=3),
    FunnelSpec(
        ["visit", Step("product_view", max_seconds_from_previous=600), "purchase"],
        conversion_window_days=2,
    ),
]


@pytest.fixture(scope="module")
def postgres_url(small_world):
    """A throwaway PostgreSQL server holding ``small_world`` (its URL); stopped at the end.

    The contract's tables are in ``public`` under their own names, and once more in schema
    ``analytics`` as ``web_events`` and ``customers`` (``user_id`` renamed ``customer_id``).
    Skipped only where PostgreSQL's binaries are absent (``.ci/run`` installs them).
    """
    from crm_helpers.servers import LocalPostgres, copy_to_postgres, postgres_bin_dir

    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (initdb/pg_ctl): apt-get install postgresql")
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    with LocalPostgres() as pg:
        copy_to_postgres(small_world, pg.url)
        copy_to_postgres(
            small_world,
            pg.url,
            tables={"events": "web_events", "users": "customers"},
            schema="analytics",
        )
        import psycopg

        with psycopg.connect(pg.url.replace("postgres://", "postgresql://", 1)) as c:
            c.execute("ALTER TABLE analytics.customers RENAME COLUMN user_id TO customer_id")
        yield pg.url


@pytest.fixture(scope="module")
def both(postgres_url, small_world):
    """(PostgreSQL-loaded, DuckDB-loaded) CRMData of the same world."""
    return load(engine=postgres_url), load(small_world)


@pytest.fixture(scope="module")
def duckdb_funnel_report(small_world, tmp_path_factory):
    """The funnel report on ``small_world`` with DuckDB: what PostgreSQL's must equal."""
    # the same run as tests/notebooks/test_funnel_notebook.py's (tests/shared_runs.py)
    res = shared_report(tmp_path_factory, "funnel_dropoff", small_world, export=True)
    return res, json.loads(Path(res.metrics).read_text())


def _relations(url) -> set[tuple[str, str, str]]:
    """Every relation outside the session-temporary schemas: (schema, name, kind)."""
    con = connect(url)
    rows = con.raw_sql(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast%' "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    con.disconnect()
    return set(rows)


def test_loader_finds_the_tables_and_validates_them_in_the_database(both):
    pg, duck = both
    assert isinstance(pg, WarehouseData) and pg.engine == "postgres"
    assert pg.sources == {n: n for n in duck.tables}
    assert pg.row_counts() == duck.row_counts() and pg.row_counts()["events"] > 100_000
    assert pg.quality.to_frame().equals(duck.quality.to_frame())
    # contract types and naive UTC, as from the files (timestamptz -> naive UTC)
    assert pg.events.schema() == duck.events.schema()
    a = pg.users.order_by("user_id").limit(50).to_pandas()
    b = duck.users.order_by("user_id").limit(50).to_pandas()
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_schema_qualified_mapped_names(postgres_url, both):
    _, duck = both
    schema = Schema(
        tables={"events": "analytics.web_events", "users": "analytics.customers"},
        columns={"users": {"user_id": "customer_id"}},
    )
    pg = load(engine=postgres_url, schema=schema, require=["users", "events"])
    assert pg.sources["events"] == "analytics.web_events"
    assert pg.row_counts() == duck.row_counts()
    pd.testing.assert_frame_equal(
        funnel_table(pg, SPECS[0]), funnel_table(duck, SPECS[0]), check_dtype=False
    )


def test_overview_helpers_equal_duckdb(both):
    pg, duck = both
    for f in (
        overview.table_summary,
        overview.event_counts,
        overview.quality_table,
        lambda d: overview.users_by_attribute(d, "device"),
        lambda d: overview.events_over_time(d),
    ):
        pd.testing.assert_frame_equal(f(pg), f(duck), check_dtype=False)


def test_funnel_trend_and_breakdown_equal_duckdb(both):
    pg, duck = both
    for spec in SPECS:
        a, b = funnel_table(pg, spec), funnel_table(duck, spec)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
        assert a.filter(["users", "attempts"]).iloc[-1].max() > 0  # the whole funnel is used
    for period in ("week", "month"):
        pd.testing.assert_frame_equal(
            trend_table(pg, SPECS[0], period), trend_table(duck, SPECS[0], period)
        )
    pd.testing.assert_frame_equal(
        breakdown_table(pg, SPECS[0], "device"), breakdown_table(duck, SPECS[0], "device")
    )


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York"])
def test_local_to_utc_postgres_branch_matches_pandas(postgres_url, tz):
    wall = pd.Series(pd.date_range("2024-01-01", "2024-12-31 23:30", freq="30min", unit="us"))
    con = connect(postgres_url)
    t = ibis.memtable(pd.DataFrame({"i": np.arange(len(wall)), "wall": wall}))
    out = con.to_pandas(t.mutate(utc=local_to_utc(t.wall, tz, con.name)).order_by("i"))["utc"]
    pd.testing.assert_series_equal(
        out.astype("datetime64[us]"), pandas_local_to_utc(wall, tz), check_names=False
    )
    con.disconnect()


def test_funnel_report_from_postgres_equals_duckdb_and_writes_nothing(
    postgres_url, duckdb_funnel_report, tmp_path
):
    before = _relations(postgres_url)
    res, metrics = run_funnel_report(tmp_path, engine=postgres_url)
    assert_same_report(metrics, duckdb_funnel_report[1])
    assert metrics["provenance"]["data"]["dir"] == postgres_url
    assert metrics["provenance"]["data"]["engine"] == "postgres"
    assert _relations(postgres_url) == before  # temporary views only

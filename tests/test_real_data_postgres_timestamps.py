"""PostgreSQL tables with ``timestamp`` and ``timestamptz`` columns load as naive UTC.

The instants and frames of :mod:`tests.test_real_data_timestamps` are copied into a throwaway
PostgreSQL server, one schema per column type, every timestamp column of the five tables of
that type: ``timestamptz`` (instants) and ``timestamp`` (New York wall times; the schema
mapping's ``timezone``), each also with a reduced precision. The database's default time zone
is Asia/Tokyo, so a session that kept it would read ``timestamptz`` as Tokyo wall times.
"""

from __future__ import annotations

import pytest

from crm_helpers.data import load
from crm_helpers.schema import TABLES, Schema
from tests.test_real_data_timestamps import (
    FLAVOURS,
    SCHEMA_TZ,
    TS_COLUMNS,
    expected,
    loaded_values,
    write_flavour,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]

#: PostgreSQL column type -> (the Parquet flavour copied in, the unit values keep)
KINDS = {
    "timestamptz": ("us-Berlin", "us"),
    "timestamp": ("us-naive", "us"),
    "timestamptz(3)": ("ms-UTC", "ms"),
    "timestamp(0)": ("s-naive", "s"),
}


def _pg_schema(kind: str) -> str:
    return "k_" + kind.replace("(", "_").replace(")", "")


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory):
    """A server holding, per kind, the five tables in schema ``k_<kind>``."""
    from crm_helpers.servers import LocalPostgres, copy_to_postgres, postgres_bin_dir

    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (initdb/pg_ctl): apt-get install postgresql")
    psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    with LocalPostgres() as pg:
        url = pg.url.replace("postgres://", "postgresql://", 1)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("ALTER DATABASE crm SET timezone TO 'Asia/Tokyo'")
        for kind, (flavour, _) in KINDS.items():
            d = write_flavour(tmp_path_factory.mktemp(flavour), flavour)
            copy_to_postgres(d, pg.url, schema=_pg_schema(kind))
            with psycopg.connect(url) as c:
                for table, col in TS_COLUMNS:
                    c.execute(
                        f'ALTER TABLE {_pg_schema(kind)}."{table}" ALTER COLUMN "{col}" TYPE {kind}'
                    )
        yield pg.url


@pytest.mark.parametrize("kind", list(KINDS))
def test_postgres_column_type_loads_as_naive_utc(pg_url, kind):
    import psycopg

    with psycopg.connect(pg_url.replace("postgres://", "postgresql://", 1)) as c:
        types = c.execute(
            "SELECT DISTINCT data_type, datetime_precision FROM information_schema.columns "
            "WHERE table_schema = %s AND data_type LIKE 'timestamp%%'",
            (_pg_schema(kind),),
        ).fetchall()
        zone = c.execute("SHOW timezone").fetchone()[0]
    assert zone == "Asia/Tokyo"  # a new session's default
    precision = int(kind.split("(")[1][:-1]) if "(" in kind else 6
    aware = kind.startswith("timestamptz")
    assert types == [(f"timestamp {'with' if aware else 'without'} time zone", precision)]
    schema = Schema(tables={t: f"{_pg_schema(kind)}.{t}" for t in TABLES}, timezone=SCHEMA_TZ)
    data = load(engine=pg_url, schema=schema)
    assert data.engine == "postgres"
    assert data.tz_aware["events"] == ({"ts"} if aware else frozenset())
    want = expected(KINDS[kind][1])
    assert FLAVOURS[KINDS[kind][0]][2] == KINDS[kind][1]
    for key, values in loaded_values(data).items():
        assert values == want, (kind, key)
    assert not data.quality.findings, data.quality.to_frame()

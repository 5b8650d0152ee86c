"""Shared fixtures: engines (DuckDB and Spark local) and small synthetic worlds."""

from __future__ import annotations

import pytest

from crm_helpers.engine import connect

ENGINE_PARAMS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("spark", id="spark", marks=pytest.mark.spark),
]


def pytest_collection_modifyitems(config, items):
    """Keep every Spark test on one xdist worker, so one JVM serves them all."""
    for item in items:
        if item.get_closest_marker("spark"):
            item.add_marker(pytest.mark.xdist_group("spark"))


@pytest.fixture(scope="session")
def spark_con():
    """One local Spark connection for the whole session (it takes ~9 s to start)."""
    pytest.importorskip("pyspark")
    return connect("spark")


@pytest.fixture(params=ENGINE_PARAMS)
def con(request):
    """An Ibis connection, once per engine: a test using it runs on DuckDB and on Spark."""
    if request.param == "spark":
        return request.getfixturevalue("spark_con")
    return connect("duckdb")


# --- small synthetic worlds (owned by crm_helpers.synth) -------------------------------


def _write_synthetic_world(out, **cfg):
    from crm_helpers.synth import SynthConfig, generate, write_world

    write_world(generate(SynthConfig(**cfg)), out, fmt="parquet", overwrite=True)
    return out


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A ~5,000-user synthetic world (seed 7) written as Parquet; its directory (a Path).

    The directory holds the five contract tables, ``truth/`` and ``ground_truth.json``.
    """
    return _write_synthetic_world(tmp_path_factory.mktemp("small_world"), n_users=5_000, seed=7)


@pytest.fixture(scope="session")
def dirty_world(tmp_path_factory):
    """Like ``small_world`` but ~2,000 users with planted dirt (counts in ground_truth["dirt"])."""
    return _write_synthetic_world(
        tmp_path_factory.mktemp("dirty_world"), n_users=2_000, seed=7, dirt=True
    )


# --- real servers: PostgreSQL and a Spark standalone cluster (crm_helpers.servers) ----------


@pytest.fixture(scope="session")
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


def run_funnel_report(out, **kw):
    """The funnel report with its default parameters; returns (result, metrics.json)."""
    import json
    from pathlib import Path

    from crm_helpers.report.run import run_notebook

    res = run_notebook(
        "funnel_dropoff",
        out_dir=out,
        parameters={"export_dir": str(out / "exports")},
        update_index=False,
        **kw,
    )
    assert res.ok, res.error
    return res, json.loads(Path(res.metrics).read_text())


@pytest.fixture(scope="session")
def duckdb_funnel_report(small_world, tmp_path_factory):
    """The funnel report on ``small_world`` with DuckDB: what the other engines must equal."""
    return run_funnel_report(tmp_path_factory.mktemp("duckdb_report"), data_dir=small_world)


def assert_same_report(metrics, expected):
    """Every figure, table and summary line equal; only the export path and provenance differ."""
    import pandas as pd

    a, b = dict(metrics["metrics"]), dict(expected["metrics"])
    assert metrics["summary"] == expected["summary"]
    assert metrics["tables"] == expected["tables"]
    ea, eb = a.pop("audience.export", None), b.pop("audience.export", None)
    assert a == b
    assert a["steps"][0]["users"] > 0 and a["steps"][-1]["users"] > 0
    assert (ea is None) == (eb is None)
    if ea:
        pd.testing.assert_frame_equal(
            pd.read_parquet(ea).sort_values("user_id").reset_index(drop=True),
            pd.read_parquet(eb).sort_values("user_id").reset_index(drop=True),
            check_dtype=False,
        )

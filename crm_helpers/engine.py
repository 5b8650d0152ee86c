"""Connect to a compute engine through Ibis: DuckDB (embedded default), Spark, or any URL.

Event-level work is written once as Ibis expressions and runs on whichever backend
:func:`connect` returns; only aggregates come back as pandas.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import ibis
from ibis.backends import BaseBackend

ENGINES = ("duckdb", "spark")


def connect(engine: str = "duckdb", **options: Any) -> BaseBackend:
    """Open an Ibis connection.

    Parameters
    ----------
    engine
        ``"duckdb"`` (in-process, default), ``"spark"`` (a local or configured
        ``SparkSession``), or any Ibis connection URL (``"postgres://..."``,
        ``"snowflake://..."``, ``"duckdb:///path/to.db"``).
    **options
        DuckDB: ``threads``, ``memory_limit``. Spark: ``master`` (default
        ``$CRM_SPARK_MASTER`` or ``local[*]``).

    Returns
    -------
    ibis.backends.BaseBackend
        A connection whose session time zone is UTC.
    """
    if engine == "duckdb":
        con = ibis.duckdb.connect(**{k: v for k, v in options.items() if v is not None})
        con.raw_sql("SET TimeZone = 'UTC'")
        return con
    if engine in ("spark", "pyspark"):
        session = spark_session(options.get("master"))
        return ibis.pyspark.connect(session)
    if "://" in engine:
        return ibis.connect(engine, **options)
    raise ValueError(
        f"Unknown engine {engine!r}: use 'duckdb', 'spark' or an Ibis connection URL "
        "such as 'postgres://user@host/db'."
    )


def engine_name(con: BaseBackend) -> str:
    """Short name of a connection's backend (``duckdb``, ``pyspark``, ...)."""
    return con.name


@lru_cache(maxsize=1)
def spark_session(master: str | None = None):
    """A process-wide local ``SparkSession`` set to UTC, quiet, and sized for tests.

    ``pyspark`` is an optional dependency (``pip install crm-helpers[spark]``).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "The Spark engine needs pyspark: pip install 'crm-helpers[spark]' "
            "(and Java 17 on PATH)."
        ) from exc
    master = master or os.environ.get("CRM_SPARK_MASTER", "local[*]")
    session = (
        SparkSession.builder.master(master)
        .appName("crm-workbench")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("CRM_SPARK_PARTITIONS", "8"))
        .config("spark.driver.memory", os.environ.get("CRM_SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session

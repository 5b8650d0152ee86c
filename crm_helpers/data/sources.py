"""Find each contract table's source and read it into the engine, as it is.

A table is ``stem.parquet``, a folder ``stem/`` of Parquet parts, or ``stem.csv``, in that
order (:func:`find_table_file`; the stem comes from the schema mapping). Reading registers
it as a view on the connection: CSV timestamp columns as text (parsed later by one rule on
every engine, :func:`crm_helpers.data.normalisation.parse_timestamp_text`), every Parquet
timestamp flavour the same way on DuckDB and Spark (:mod:`crm_helpers.data.column_types`).
Nothing is renamed, typed or checked here. The findings of this step: a table the analysis
needs but the directory lacks (``missing_table``), and a file or a check the engine cannot
read (``unreadable``; the column and its type in words when the Parquet footer says which).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import ibis
from ibis.backends import BaseBackend

from crm_helpers.data.column_types import (
    SPARK_NANOS_AS_LONG,
    duckdb_readable,
    parquet_timestamps,
    parquet_type_words,
    spark_readable,
)
from crm_helpers.data.findings import Finding
from crm_helpers.schema import CONTRACT, Schema

__all__ = ["FORMATS", "find_table_file"]

FORMATS = ("parquet", "csv")


def _missing_table(name: str, data_dir: Path, schema: Schema, present: Iterable[str]) -> Finding:
    stem = schema.file_stem(name)
    return Finding(
        table=name,
        column=None,
        check="missing_table",
        severity="error",
        count=0,
        message=f"this analysis needs the '{name}' table, but {data_dir} has no {stem}.parquet, "
        f"{stem}.csv or {stem}/ folder (tables found: {sorted(present) or 'none'})",
        fix=f"add {stem}.parquet or {stem}.csv to the data directory, or, if your file has "
        f"another name, map it in schema.yaml (tables: {{{name}: <your file name without "
        "extension>}).",
    )


def _data_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [path]


def find_table_file(data_dir: Path, stem: str) -> Path | None:
    """``stem.parquet``, a directory ``stem/`` of Parquet parts, or ``stem.csv`` (that order)."""
    for candidate in (data_dir / f"{stem}.parquet", data_dir / stem, data_dir / f"{stem}.csv"):
        if candidate.exists():
            return candidate
    return None


def _timestamp_sources(table: str, schema: Schema) -> set[str]:
    return {
        schema.source_column(table, c) for c, s in CONTRACT[table].items() if s.kind == "timestamp"
    }


def _read(
    con: BaseBackend, path: Path, view: str, text_columns: set[str]
) -> tuple[ibis.Table, frozenset[str]]:
    """Register ``path`` as view ``view``; returns the table and its tz-aware timestamp columns.

    CSV columns named in ``text_columns`` (the contract's timestamps) are read as text, so
    both engines parse them by the same rule (:func:`parse_timestamp_text`). Every Parquet
    timestamp flavour is read, the same way on both engines
    (:mod:`crm_helpers.data.column_types`): nanosecond columns as microsecond timestamps, INT96
    as zone-aware.
    """
    is_csv = path.is_file() and path.suffix.lower() == ".csv"
    stamps = {} if is_csv else parquet_timestamps(path)
    int96 = {c for c, s in stamps.items() if s.int96}
    if con.name == "pyspark":
        from pyspark.sql.types import StringType, StructField, StructType, TimestampType

        session = con._session
        if is_csv:
            inferred = session.read.csv(str(path), header=True, inferSchema=True)
            fields = [
                StructField(f.name, StringType(), True) if f.name in text_columns else f
                for f in inferred.schema.fields
            ]
            sdf = session.read.csv(str(path), header=True, schema=StructType(fields))
        else:
            if any(s.unit == "ns" and not s.int96 for s in stamps.values()):
                session.conf.set(SPARK_NANOS_AS_LONG, "true")  # else Spark refuses them
            sdf = spark_readable(session.read.parquet(str(path)), stamps)
        sdf.createOrReplaceTempView(view)
        # a naive Parquet timestamp stays a wall time even when the session reads it as a
        # TIMESTAMP (spark.sql.parquet.inferTimestampNTZ.enabled=false)
        naive = {c for c, s in stamps.items() if not s.utc}
        aware = frozenset(
            f.name
            for f in sdf.schema.fields
            if type(f.dataType) is TimestampType and f.name not in naive
        )
        return con.table(view), aware
    if is_csv:
        t = con.read_csv(str(path), table_name=view)
        text = {c: "VARCHAR" for c in t.columns if c in text_columns}
        if text:
            t = con.read_csv(str(path), table_name=view, types=text)
    elif path.is_dir():
        t = con.read_parquet(str(path / "**" / "*.parquet"), table_name=view)
    else:
        t = con.read_parquet(str(path), table_name=view)
    t = duckdb_readable(con, t, f"{view}_t")
    aware = frozenset(
        c
        for c, typ in t.schema().items()
        if typ.is_timestamp() and (typ.timezone is not None or c in int96)
    )
    return t, aware


def _engine_error(table: str, path: Path, exc: Exception, what: str) -> Finding:
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    fix = (
        "check that the file is a valid Parquet or CSV file (CSV: comma-separated, one "
        "header line) and that all parts of a folder have the same columns and types (e.g. "
        "every part's timestamps with the same precision and time zone)."
    )
    if "out of memory" in first.lower():  # the file is fine; the engine's memory is not
        return Finding(
            table=table,
            column=None,
            check="unreadable",
            severity="error",
            count=0,
            message=f"{what} {path} ran out of the engine's memory: {first[:400]}",
            fix=(
                "the data are larger than DuckDB's memory limit allows for this step: raise "
                "it (environment variable CRM_DUCKDB_MEMORY_LIMIT, e.g. 8GB; 'none' for "
                "DuckDB's own 80% of RAM) or point CRM_DUCKDB_TEMP_DIR at a disk with room "
                "to spill to."
            ),
        )
    cols = parquet_type_words(path, first) if what == "reading" else []
    if cols:  # a Parquet type the engine cannot read: which column, in words
        held = "; ".join(f"column '{c}' holds {w}" for c, w in cols)
        first = f"{held}, which this engine cannot read ({first[:200]})"
        fix = (
            "store date-times as Parquet timestamps (pandas datetime64, any precision, with or "
            "without a time zone) or as text like '2024-03-01 14:05:00'; combine a date and a "
            "time of day into one column; drop columns the analysis does not need, or write "
            "them as text."
        )
    return Finding(
        table=table,
        column=cols[0][0] if len(cols) == 1 else None,
        check="unreadable",
        severity="error",
        count=0,
        message=f"{what} {path} failed: {first[:400]}",
        fix=fix,
    )

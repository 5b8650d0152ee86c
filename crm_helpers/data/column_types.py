"""Column types as the engines see them: Parquet timestamp flavours, and types in plain words.

Parquet stores a timestamp in one of several flavours, and the engines read them
differently:

========================  =====================  ========================  ====================
flavour (writer)          Parquet                DuckDB                    Spark (4.0)
========================  =====================  ========================  ====================
pandas ``[ns, UTC]``      INT64 NANOS, UTC       ``TIMESTAMPTZ_NS``        refused
pandas ``[ns]`` (naive)   INT64 NANOS, local     ``TIMESTAMP_NS``          refused
``[us|ms|s, tz]``         INT64 MICROS/MILLIS    ``TIMESTAMPTZ``           ``TIMESTAMP``
``[us|ms|s]`` (naive)     ``isAdjustedToUTC``    ``TIMESTAMP``             ``TIMESTAMP_NTZ``
Spark, Hive, Impala       INT96                  ``TIMESTAMP`` (naive)     ``TIMESTAMP``
========================  =====================  ========================  ====================

(Parquet has no seconds unit: a pandas ``datetime64[s]`` column is written as MILLIS.)
:func:`parquet_timestamps` reads the flavour of each column from the file's footer (no
rows are read), and the loader uses it so that every flavour loads, the same way on both
engines:

* ``TIMESTAMPTZ_NS``, which Ibis cannot type, is cast to DuckDB's ``TIMESTAMPTZ``
  (:func:`duckdb_readable`); Spark reads nanosecond columns as their integer count
  (``spark.sql.legacy.parquet.nanosAsLong``), which :func:`spark_readable` turns into a
  ``TIMESTAMP`` (zone-aware) or ``TIMESTAMP_NTZ`` (naive). Both round to the nearest
  microsecond, halves away from zero (DuckDB's cast): the contract's clock has microseconds.
* INT96 holds an instant in UTC (Spark converts from its session time zone when it writes),
  so it is zone-aware on both engines: the schema's ``timezone`` is not applied to it. Both
  engines truncate its nanoseconds to microseconds (Spark writes none).
* Reading nanoseconds on Spark sets ``spark.sql.legacy.parquet.nanosAsLong`` on the session
  (it stays set: the scan needs it when a query runs); it changes only how such columns,
  which Spark otherwise refuses, are read.
* A folder of parts is typed by its first part (sorted by path): its parts should share
  their flavour (DuckDB unifies ns parts with INT96 ones; Spark does not).

:func:`type_words` says what a column holds in words a marketer understands ("timestamps with
nanosecond precision and a time zone"), for any type, including those Ibis cannot type
(:func:`type_name` gives the short technical name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ibis
import ibis.expr.datatypes as dt
from ibis.backends import BaseBackend

__all__ = [
    "SPARK_NANOS_AS_LONG",
    "ParquetTimestamp",
    "duckdb_readable",
    "parquet_timestamps",
    "parquet_type_words",
    "raw_timestamp",
    "spark_readable",
    "type_name",
    "type_words",
]

#: Spark's switch to read Parquet TIMESTAMP(NANOS) columns as their integer count of ns.
SPARK_NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"

_UNIT_WORDS = {"s": "second", "ms": "millisecond", "us": "microsecond", "ns": "nanosecond"}
_SCALE_UNIT = {0: "s", 3: "ms", 6: "us", 9: "ns"}
_JSON_UNITS = {"nanoseconds": "ns", "microseconds": "us", "milliseconds": "ms"}


@dataclass(frozen=True)
class ParquetTimestamp:
    """The flavour of one Parquet timestamp column.

    Attributes
    ----------
    unit
        ``"ns"``, ``"us"`` or ``"ms"`` (INT96: ``"ns"``).
    utc
        The values are instants (``isAdjustedToUTC``; always for INT96), not wall times.
    int96
        Stored as the legacy INT96 (Spark, Hive, Impala), not as INT64.
    """

    unit: str
    utc: bool
    int96: bool = False

    def words(self) -> str:
        """E.g. ``"timestamps with nanosecond precision and a time zone"``."""
        if self.int96:
            return "INT96 timestamps (Spark's legacy format, instants in UTC)"
        zone = "a time zone" if self.utc else "no time zone"
        return f"timestamps with {_UNIT_WORDS[self.unit]} precision and {zone}"


def _first_parquet_file(path: Path) -> Path | None:
    if path.is_file():
        return path
    parts = sorted(
        p for p in path.rglob("*.parquet") if p.is_file() and not p.name.startswith((".", "_"))
    )
    return parts[0] if parts else None


def parquet_timestamps(path: str | Path) -> dict[str, ParquetTimestamp]:
    """Top-level timestamp columns of a Parquet file (or a folder's first part), by name.

    Reads only the footer. A file that pyarrow cannot read gives ``{}`` (the engine's own
    read reports the problem).
    """
    import pyarrow.parquet as pq

    first = _first_parquet_file(Path(path))
    if first is None:
        return {}
    try:
        schema = pq.ParquetFile(first).schema
    except Exception:  # noqa: BLE001 - not Parquet, truncated: the engine says so
        return {}
    out: dict[str, ParquetTimestamp] = {}
    for i in range(len(schema)):
        col = schema.column(i)
        if "." in col.path:  # nested fields are not contract columns
            continue
        if col.physical_type == "INT96":
            out[col.name] = ParquetTimestamp("ns", utc=True, int96=True)
        elif col.logical_type.type == "TIMESTAMP":
            info = col.logical_type.to_json()
            out[col.name] = ParquetTimestamp(
                unit=next((u for k, u in _JSON_UNITS.items() if k in info), "us"),
                utc='"isAdjustedToUTC":true' in info.replace(" ", ""),
            )
    return out


_PARQUET_WORDS = {
    "TIME": "times of day without a date",
    "DATE": "dates without a time of day",
    "INTERVAL": "durations",
    "UUID": "UUIDs",
    "JSON": "JSON documents",
    "BSON": "BSON documents",
    "FLOAT16": "decimal numbers (half precision)",
    "GEOMETRY": "geometries",
    "GEOGRAPHY": "geographies",
    "VARIANT": "semi-structured values (variants)",
}


def parquet_type_words(path: str | Path, engine_message: str) -> list[tuple[str, str]]:
    """The columns an engine's "illegal Parquet type" message is about, with plain words.

    Spark names only the type (``Illegal Parquet type: INT64 (TIME(NANOS,false))``); the
    file's footer tells which top-level columns have it. Returns ``[(column, words), ...]``
    (empty when the message names no Parquet type or no column matches).
    """
    import re

    import pyarrow.parquet as pq

    m = re.search(r"Parquet type:?\s*([A-Z0-9_]+)\s*\(([A-Z0-9_]+)", engine_message)
    first = _first_parquet_file(Path(path))
    if m is None or first is None:
        return []
    physical, logical = m.group(1), m.group(2)
    try:
        schema = pq.ParquetFile(first).schema
    except Exception:  # noqa: BLE001 - the engine's message stands
        return []
    out = []
    for i in range(len(schema)):
        col = schema.column(i)
        if "." in col.path or col.physical_type != physical:
            continue
        kind = col.logical_type.type
        if kind != logical and str(col.converted_type) != logical:
            continue
        info = col.logical_type.to_json()
        unit = next((u for k, u in _JSON_UNITS.items() if k in info), None)
        if kind == "TIMESTAMP":
            words = ParquetTimestamp(unit or "us", '"isAdjustedToUTC":true' in info).words()
        else:
            words = _PARQUET_WORDS.get(kind, f"values of the Parquet type {physical} ({kind})")
            if unit:
                words += f" with {_UNIT_WORDS[unit]} precision"
        out.append((col.name, words))
    return out


# --- engines ------------------------------------------------------------------------------


def duckdb_readable(con: BaseBackend, t: ibis.Table, view: str) -> ibis.Table:
    """``t`` with every column Ibis cannot type but that holds timestamps cast to one it can.

    DuckDB's ``TIMESTAMPTZ_NS`` becomes ``TIMESTAMPTZ`` (microseconds, rounded), in a
    temporary view ``view``; ``t`` itself when there is nothing to cast.
    """
    from crm_helpers.engine import temp_view

    casts = {}
    for c, typ in t.schema().items():
        found = raw_timestamp(typ)
        if found is not None:
            casts[c] = t[c].cast(dt.Timestamp(timezone="UTC") if found[1] else dt.Timestamp())
    return temp_view(con, view, t.mutate(**casts)) if casts else t


def spark_readable(sdf, stamps: dict[str, ParquetTimestamp]):
    """A Spark DataFrame read with :data:`SPARK_NANOS_AS_LONG`, nanoseconds made timestamps.

    A zone-aware column becomes ``TIMESTAMP`` (an instant), a naive one ``TIMESTAMP_NTZ``
    (its wall time, read in the session time zone UTC); rounded to the nearest microsecond,
    halves away from zero.
    """
    from pyspark.sql import functions as F  # noqa: N812 - pyspark's convention
    from pyspark.sql.types import LongType

    longs = {f.name for f in sdf.schema.fields if isinstance(f.dataType, LongType)}
    for c, s in stamps.items():
        if s.unit != "ns" or s.int96 or c not in longs:
            continue
        q = f"`{c.replace('`', '``')}`"
        us = F.when(F.expr(f"{q} >= 0"), F.expr(f"({q} + 500) div 1000")).otherwise(
            -F.expr(f"(500 - {q}) div 1000")
        )
        ts = F.timestamp_micros(us)
        sdf = sdf.withColumn(c, ts if s.utc else ts.cast("timestamp_ntz"))
    return sdf


# --- types in words -----------------------------------------------------------------------


def _raw_name(typ: dt.DataType) -> str:
    """The engine's own name of a type Ibis could not map (``TIMESTAMPTZ_NS``, ``TIME_NS``)."""
    raw = getattr(typ, "raw_type", None)
    if raw is None:
        return str(typ)
    kind = raw.args.get("kind") if hasattr(raw, "args") else None
    if kind:
        return str(kind).upper()
    this = getattr(raw, "this", None)
    return getattr(this, "name", str(raw)).upper()


def raw_timestamp(typ: dt.DataType) -> tuple[str, bool] | None:
    """(unit, zone-aware) of a timestamp type Ibis could not map, else None.

    ``TIMESTAMPTZ_NS`` (DuckDB 2's nanosecond instants) -> ``("ns", True)``.
    """
    if not isinstance(typ, dt.Unknown):
        return None
    name = _raw_name(typ).replace(" ", "_")
    if not name.startswith("TIMESTAMP"):
        return None
    aware = "TZ" in name or "TIME_ZONE" in name
    unit = next((u for u in ("ns", "ms", "us", "s") if name.endswith(f"_{u.upper()}")), "us")
    return unit, aware


def type_name(typ: dt.DataType) -> str:
    """A short technical name: ``timestamp('UTC', 6)``, ``int64``; ``TIME_NS`` if unknown."""
    return _raw_name(typ) if isinstance(typ, dt.Unknown) else str(typ)


def _timestamp_words(unit: str | None, zone: str | None, aware: bool) -> str:
    precision = f" with {_UNIT_WORDS[unit]} precision" if unit else ""
    if not aware:
        return (
            f"timestamps{precision} and no time zone"
            if precision
            else ("timestamps without a time zone")
        )
    named = f" ({zone})" if zone and zone != "UTC" else ""
    return (
        f"timestamps{precision} and a time zone{named}"
        if precision
        else (f"timestamps with a time zone{named}")
    )


_UNKNOWN_WORDS = {
    "TIME_NS": "times of day without a date",
    "TIMETZ": "times of day without a date",
    "BIT": "bit strings",
    "BIGNUM": "whole numbers",
    "VARINT": "whole numbers",
    "UINT128": "whole numbers",
    "UHUGEINT": "whole numbers",
    "UNION": "values of several types (a union)",
}


def type_words(typ: dt.DataType) -> str:
    """What a column of type ``typ`` holds, in plain words.

    >>> type_words(dt.Timestamp(timezone="UTC", scale=9))
    'timestamps with nanosecond precision and a time zone'
    >>> type_words(dt.int64)
    'whole numbers'
    """
    if isinstance(typ, dt.Unknown):
        found = raw_timestamp(typ)
        if found is not None:
            return _timestamp_words(found[0], None, found[1])
        name = _raw_name(typ)
        words = _UNKNOWN_WORDS.get(name)
        return words or f"values of a type the engine cannot use here ({name})"
    if typ.is_timestamp():
        unit = _SCALE_UNIT.get(typ.scale) if typ.scale is not None else None
        return _timestamp_words(unit, typ.timezone, typ.timezone is not None)
    if typ.is_string():
        return "text"
    if typ.is_integer():
        return "whole numbers"
    if typ.is_floating() or typ.is_decimal():
        return "decimal numbers"
    if typ.is_boolean():
        return "true/false values"
    if typ.is_date():
        return "dates without a time of day"
    if typ.is_time():
        return "times of day without a date"
    if typ.is_interval():
        return "durations"
    if typ.is_binary():
        return "binary data (bytes)"
    if typ.is_uuid():
        return "UUIDs"
    if typ.is_json():
        return "JSON documents"
    if typ.is_struct():
        return "nested records (structs)"
    if typ.is_array():
        return "lists of values"
    if typ.is_map():
        return "key-value maps"
    if typ.is_null():
        return "only empty values"
    return f"values of type {typ}"

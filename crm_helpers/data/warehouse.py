"""Tables where they live: the data contract read from a warehouse through an Ibis connection.

>>> data = load(engine="postgres://analyst@db.internal/crm")    # doctest: +SKIP
>>> data.events.group_by("event").count().to_pandas()         # runs in PostgreSQL

Where the tables come from (:func:`source_of`):

* ``engine`` ``"duckdb"`` / ``"spark"`` (names): files of the data directory (``--data``,
  ``$CRM_DATA_DIR`` or the built-in synthetic set), read through that engine.
* ``engine`` a connection URL (``postgres://...``, ``duckdb:///warehouse.db``, ...) or an
  open Ibis connection, and no data directory given: the warehouse's own tables.
* both a data directory and a URL/connection: the files, read *through* that engine, when the
  engine can read files (DuckDB, Spark); otherwise an error (:class:`SourceConflict`) that
  says the warehouse's tables are used when ``--data`` is left out.

In the warehouse, each contract table is looked up by the name ``schema.yaml`` maps it to
(``tables: {events: analytics.web_events}``; ``schema.table`` or ``catalog.schema.table``),
else by its contract name. The schema mapping comes from ``load(schema=...)`` or the file
named by ``$CRM_SCHEMA`` (``crm run --schema FILE``). The tables are then renamed, typed,
converted to naive UTC and validated exactly as files are: every check is an Ibis
expression, so it runs as SQL in the warehouse and only one-row aggregates (and at most a
few example rows of failed checks) come back. Nothing in the warehouse is written; the
normalised tables become temporary views where the backend has them (DuckDB, Spark,
PostgreSQL: session-scoped, dropped when the connection closes).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import ibis
from ibis.backends import BaseBackend

from crm_helpers.data.assemble import finish_load
from crm_helpers.data.crmdata import CRMData
from crm_helpers.data.findings import DataContractError, Finding
from crm_helpers.data.mapping import rename_columns
from crm_helpers.engine import connect, postgres_compat
from crm_helpers.schema import DEFAULT_SCHEMA, TABLES, Schema

#: Engines that can read a data directory's Parquet/CSV files themselves.
FILE_READING_BACKENDS = frozenset({"duckdb", "pyspark"})


class SourceConflict(ValueError):
    """A data directory and a warehouse engine that cannot read files were both given."""


def redact(url: str) -> str:
    """A connection URL without its password (``postgres://u:***@h/db``), for reports and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _url_scheme(engine: str) -> str:
    return engine.split("://", 1)[0].lower()


def source_of(
    data_dir: str | Path | None, engine: str | BaseBackend
) -> Literal["files", "warehouse"]:
    """Where :func:`crm_helpers.load` takes the tables from (see the module docstring).

    Raises
    ------
    SourceConflict
        ``data_dir`` and an engine that cannot read files (a warehouse URL or connection other
        than DuckDB or Spark) were both given.
    """
    explicit_dir = data_dir is not None and str(data_dir) != ""
    if isinstance(engine, str):
        if "://" not in engine:
            return "files"
        name, reads_files = _url_scheme(engine), _url_scheme(engine) == "duckdb"
        shown = redact(engine)
    else:
        name, reads_files = engine.name, engine.name in FILE_READING_BACKENDS
        shown = f"an open {engine.name} connection"
    if not explicit_dir:
        return "warehouse"
    if reads_files:
        return "files"
    raise SourceConflict(
        f"both a data directory ({data_dir}) and a warehouse engine ({shown}) were given, "
        f"and a {name} engine cannot read files. The warehouse's tables are used when the data "
        "directory is left out: drop --data (and data_dir) to analyse the tables in the "
        "warehouse, or drop --engine (DuckDB) or use --engine spark to analyse the files."
    )


def schema_from_env(schema: Schema | str | Path | None) -> Schema:
    """``schema`` as a :class:`Schema`; None -> the file named by ``$CRM_SCHEMA``, or none."""
    if isinstance(schema, Schema):
        return schema
    path = schema if schema is not None else os.environ.get("CRM_SCHEMA") or None
    return DEFAULT_SCHEMA if path is None else Schema.from_yaml(Path(path))


def split_name(ref: str) -> tuple[str | tuple[str, str] | None, str]:
    """``"analytics.web_events"`` -> ``("analytics", "web_events")`` (Ibis ``database``, name).

    ``"catalog.schema.table"`` gives ``(("catalog", "schema"), "table")``; a plain name
    ``(None, name)``. Double-quoted parts may hold dots (``"my.schema".events``).
    """
    parts: list[str] = []
    cur, quoted = "", False
    for ch in ref.strip():
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 3:
        return (parts[0], parts[1]), parts[2]
    raise ValueError(
        f"{ref!r} is not a table name: use table, schema.table or catalog.schema.table"
    )


def find_table(con: BaseBackend, ref: str) -> tuple[ibis.Table, str] | None:
    """The warehouse table ``ref`` (exact name, else the one case-insensitive match), or None.

    Returns the table and its name as found (``schema.table``).
    """
    database, name = split_name(ref)
    kw = {} if database is None else {"database": database}
    try:
        names = _list_tables(con, database)
    except Exception:  # noqa: BLE001 - a schema that does not exist, no permission
        return None
    if name not in names:  # the one case-insensitive match (SQL folds unquoted names)
        folded = [n for n in names if n.lower() == name.lower()]
        if len(folded) != 1:
            return None
        name = folded[0]
    t = con.table(name, **kw)
    prefix = (
        ""
        if database is None
        else ".".join([database] if isinstance(database, str) else list(database)) + "."
    )
    return t, prefix + name


def _list_tables(con: BaseBackend, database: str | tuple[str, str] | None) -> list[str]:
    """Tables and views of ``database`` (the connection's current schema when None).

    On DuckDB from ``information_schema`` directly: Ibis 12's ``list_tables`` fails on
    DuckDB 2 (and leaves the connection with an unfinished result).
    """
    if con.name != "duckdb":
        return list(con.list_tables(**({} if database is None else {"database": database})))
    if database is None:
        where, args = "table_schema = current_schema() AND table_catalog = current_database()", []
    elif isinstance(database, str):
        where, args = "table_schema = ?", [database]
    else:
        where, args = "table_catalog = ? AND table_schema = ?", list(database)
    sql = f"SELECT table_name FROM information_schema.tables WHERE {where}"
    return [r[0] for r in con.con.execute(sql, args).fetchall()]


@dataclass
class WarehouseData(CRMData):
    """:class:`~crm_helpers.data.CRMData` whose tables live in a warehouse, not in files.

    Attributes
    ----------
    location
        Where the tables are: the connection URL without password, or the backend's name.
    sources
        Canonical table name -> the warehouse table it was read from (``analytics.web_events``).
    """

    location: str = ""
    sources: dict[str, str] = field(default_factory=dict)

    def table(self, name: str) -> ibis.Table:
        if name not in self.tables:
            raise DataContractError(_missing(name, self.location, self.schema, self.tables))
        return self.tables[name]

    def fingerprint(self) -> dict:
        """Identity of the warehouse tables: their names, column types and row counts.

        A content hash would read every row of the warehouse; names, types and counts (one
        aggregate query) change whenever rows are added or removed or a table is swapped.
        """
        digest = hashlib.sha256()
        rows = self.row_counts()
        for name in sorted(self.sources):
            cols = ",".join(f"{c}:{t}" for c, t in self.raw[name].schema().items())
            digest.update(f"{name}={self.sources[name]}[{cols}]#{rows.get(name)};".encode())
        return {"sha256": digest.hexdigest()[:16], "rows": rows}


def _missing(name: str, location: str, schema: Schema, present: Iterable[str]) -> Finding:
    looked = schema.file_stem(name)
    return Finding(
        table=name,
        column=None,
        check="missing_table",
        severity="error",
        count=0,
        message=f"this analysis needs the '{name}' table, but the warehouse ({location}) has no "
        f"table '{looked}' (contract tables found: {sorted(present) or 'none'})",
        fix=f"create or grant access to a table '{name}', or, if it has another name, map it "
        f"in schema.yaml (tables: {{{name}: <schema>.<table>}}) and pass it with --schema "
        "(or $CRM_SCHEMA).",
    )


def load_warehouse(
    engine: str | BaseBackend,
    *,
    schema: Schema | str | Path | None = None,
    require: Iterable[str] = (),
    validate: bool = True,
) -> WarehouseData:
    """Find the contract's tables in a warehouse, validate them there, and return them.

    Parameters
    ----------
    engine
        An Ibis connection URL or an open Ibis connection.
    schema, require, validate
        As in :func:`crm_helpers.load`; ``schema`` None reads ``$CRM_SCHEMA`` if set.

    Returns
    -------
    WarehouseData
        Lazy Ibis tables over the warehouse's tables (canonical names, contract types, naive
        UTC, cleaning as filters); nothing in the warehouse is written.
    """
    try:
        schema = schema_from_env(schema)
    except (ValueError, OSError) as exc:
        raise DataContractError(
            Finding("*", None, "bad_schema", "error", 0,
                    f"the schema mapping could not be used: {exc}",
                    "correct schema.yaml; see data/schema.example.yaml and data/README.md.")
        ) from None  # fmt: skip
    con = connect(engine) if isinstance(engine, str) else engine
    if con.name == "postgres":
        postgres_compat()
    location = redact(engine) if isinstance(engine, str) else con.name
    errors: list[Finding] = []
    raw: dict[str, ibis.Table] = {}
    aware: dict[str, frozenset[str]] = {}
    sources: dict[str, str] = {}
    for name in TABLES:
        ref = schema.file_stem(name)
        try:
            found = find_table(con, ref)
        except ValueError as exc:
            errors.append(Finding(name, None, "bad_schema", "error", 0, str(exc),
                                  "correct tables: in schema.yaml."))  # fmt: skip
            continue
        if found is None:
            continue
        t, where = found
        renamed, missing = rename_columns(name, t, schema, f"table {where}")
        errors += missing
        raw[name] = renamed
        aware[name] = _aware_columns(con, renamed)
        sources[name] = where
    data = WarehouseData(
        con=con,
        data_dir=None,  # type: ignore[arg-type]  # no files
        schema=schema,
        tables={},
        raw=raw,
        tz_aware=aware,
        location=location,
        sources=sources,
    )
    return finish_load(
        data,
        errors,
        require,
        validate,
        missing=lambda n: _missing(n, location, schema, raw),
    )


def _aware_columns(con: BaseBackend, t: ibis.Table) -> frozenset[str]:
    """Timestamp columns that denote instants (``timestamptz``; Spark's ``TIMESTAMP``).

    Ibis shows Spark's ``TIMESTAMP`` (an instant) and ``TIMESTAMP_NTZ`` (a wall time) alike,
    so on Spark the table's own schema decides (an analysis of the query, no job).
    """
    if con.name == "pyspark":
        from pyspark.sql.types import TimestampType

        fields = con._session.sql(str(con.compile(t))).schema.fields
        return frozenset(f.name for f in fields if type(f.dataType) is TimestampType)
    return frozenset(c for c, typ in t.schema().items() if typ.is_timestamp() and typ.timezone)

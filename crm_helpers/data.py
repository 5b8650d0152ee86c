"""Load the data contract through the engine: find files, map names, normalise, validate.

>>> data = load("data/synthetic")                 # DuckDB over Parquet, validated
>>> data.events                                    # an Ibis table, canonical names
>>> data.events.group_by("event").count().to_pandas()   # only the aggregate comes back

Loading is lazy: each table is a view over its file(s) in the engine, with canonical
column names, contract types and naive-UTC timestamps; validation runs a few aggregate
queries per table and cleaning is a lazy Ibis filter. Nothing under the data directory is
ever written.

Modules: this one finds and reads the files and assembles :class:`CRMData`;
:mod:`crm_helpers.normalise` brings columns to contract types and naive UTC;
:mod:`crm_helpers.order_lines` turns order lines into orders. Their public names are
importable from here too.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import ibis
from ibis.backends import BaseBackend

from crm_helpers import config
from crm_helpers.column_types import (
    SPARK_NANOS_AS_LONG,
    duckdb_readable,
    parquet_timestamps,
    parquet_type_words,
    spark_readable,
)
from crm_helpers.engine import connect, temp_view
from crm_helpers.normalise import (  # re-exported: data.py held them before the split
    OFFSET_PATTERN,
    ColumnPlan,
    apply_cleaning,
    aware_to_naive_utc,
    normalise,
    parse_timestamp_text,
    plan_columns,
)
from crm_helpers.order_lines import _order_lines_finding, aggregate_order_lines
from crm_helpers.schema import CONTRACT, DEFAULT_SCHEMA, TABLES, Schema
from crm_helpers.validate import DataContractError, DataQualityReport, Finding

__all__ = [
    "FORMATS",
    "OFFSET_PATTERN",
    "CRMData",
    "ColumnPlan",
    "aggregate_order_lines",
    "apply_cleaning",
    "aware_to_naive_utc",
    "find_table_file",
    "finish_load",
    "load",
    "normalise",
    "parse_timestamp_text",
    "plan_columns",
    "rename_columns",
]

FORMATS = ("parquet", "csv")


@dataclass
class CRMData:
    """The contract's tables as Ibis expressions on one connection.

    Attributes
    ----------
    con
        The Ibis backend the tables live on.
    data_dir
        The directory the tables were read from (never written).
    schema
        The :class:`~crm_helpers.schema.Schema` that mapped the files onto the contract.
    tables
        Canonical table name -> Ibis table with canonical column names, contract types,
        naive-UTC timestamps and the cleaning of :attr:`quality` applied (lazy filters).
    files
        Canonical table name -> the file or directory it was read from.
    quality
        Findings of validation (errors were raised; warnings are kept for the report).
    raw
        Canonical table name -> the table as read, only renamed (what validation checks).
    tz_aware
        Canonical table name -> source columns whose timestamps carry a time zone.
    required
        The tables the caller required (``load(require=...)``): the report's core, which
        :mod:`crm_helpers.report.guard` refuses to publish when one of them is empty.
    """

    con: BaseBackend
    data_dir: Path
    schema: Schema
    tables: dict[str, ibis.Table]
    files: dict[str, Path] = field(default_factory=dict)
    quality: DataQualityReport = field(default_factory=DataQualityReport)
    raw: dict[str, ibis.Table] = field(default_factory=dict)
    tz_aware: dict[str, frozenset[str]] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    def table(self, name: str) -> ibis.Table:
        """The table ``name``; a clear error if the data set lacks it."""
        if name not in self.tables:
            raise DataContractError(_missing_table(name, self.data_dir, self.schema, self.tables))
        return self.tables[name]

    def has(self, table: str, *columns: str) -> bool:
        """Whether the data set has ``table`` and each of ``columns`` in it (canonical names).

        Sections of a report that need more than the report's core ask this first and,
        when it is False, show :func:`crm_helpers.report.text.skipped` instead of failing.
        """
        t = self.tables.get(table)
        return t is not None and all(c in t.columns for c in columns)

    @property
    def users(self) -> ibis.Table:
        return self.table("users")

    @property
    def events(self) -> ibis.Table:
        return self.table("events")

    @property
    def orders(self) -> ibis.Table:
        return self.table("orders")

    @property
    def messages(self) -> ibis.Table:
        return self.table("messages")

    @property
    def assignments(self) -> ibis.Table:
        return self.table("assignments")

    @property
    def engine(self) -> str:
        return self.con.name

    def row_counts(self) -> dict[str, int]:
        """Rows per table after cleaning (one query for all tables, run in the engine)."""
        if not self.tables:
            return {}
        parts = [t.count().name(name).as_table() for name, t in self.tables.items()]
        joined = parts[0]
        for p in parts[1:]:
            joined = joined.cross_join(p)
        row = joined.to_pyarrow().to_pylist()[0]
        return {name: int(row[name]) for name in self.tables}

    def fingerprint(self) -> dict:
        """A reproducible identity of the input data: content hash of the files and row counts.

        The hash covers each file's name, size and bytes (read in chunks), so two runs on the
        same data give the same fingerprint and any change to a file changes it.
        """
        digest = hashlib.sha256()
        for name in sorted(self.files):
            for path in _data_files(self.files[name]):
                digest.update(f"{name}:{path.name}:{path.stat().st_size}".encode())
                with path.open("rb") as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        digest.update(chunk)
        return {"sha256": digest.hexdigest()[:16], "rows": self.row_counts()}


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


# --- reading ----------------------------------------------------------------------------


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
    (:mod:`crm_helpers.column_types`): nanosecond columns as microsecond timestamps, INT96
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


# --- load -------------------------------------------------------------------------------


def _engine_error(table: str, path: Path, exc: Exception, what: str) -> Finding:
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    fix = (
        "check that the file is a valid Parquet or CSV file (CSV: comma-separated, one "
        "header line) and that all parts of a folder have the same columns and types (e.g. "
        "every part's timestamps with the same precision and time zone)."
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


def _resolve_schema(data_dir: Path, schema: Schema | str | Path | None) -> Schema:
    if isinstance(schema, Schema):
        return schema
    path = Path(schema) if schema is not None else data_dir / "schema.yaml"
    if schema is None and not path.exists():
        return DEFAULT_SCHEMA
    return Schema.from_yaml(path)


def load(
    data_dir: str | Path | None = None,
    *,
    engine: str | BaseBackend = "duckdb",
    schema: Schema | str | Path | None = None,
    require: Iterable[str] = (),
    validate: bool = True,
) -> CRMData:
    """Load the contract's tables from ``data_dir`` into an Ibis engine and validate them.

    Parameters
    ----------
    data_dir
        Directory with ``users``, ``events``, ``orders``, ``messages``, ``assignments`` as
        Parquet (file or directory of parts) or CSV. Default: :func:`crm_helpers.config.data_dir`.
    engine
        ``"duckdb"``, ``"spark"``, an Ibis URL, or an open Ibis connection. A URL or an open
        connection without ``data_dir`` reads the tables that live in that warehouse
        (:mod:`crm_helpers.warehouse`); with ``data_dir``, the files through that engine
        (DuckDB, Spark), or :class:`~crm_helpers.warehouse.SourceConflict` for an engine
        that cannot read files.
    schema
        A :class:`Schema`, or the path of its YAML file; ``data_dir/schema.yaml`` is used if present.
    require
        Tables this analysis needs; a missing one is an error naming the fix. Other tables
        are loaded when present.
    validate
        Run the contract checks (errors raise :class:`DataContractError`; warnings are kept
        in ``quality`` and their cleaning applied). ``False`` skips checks and cleaning:
        tables are only renamed, typed and converted to UTC.

    Returns
    -------
    CRMData
        Tables as lazy Ibis expressions; nothing is pulled into memory and nothing in
        ``data_dir`` is written.

    Raises
    ------
    DataContractError
        A required table is missing, a file cannot be read, or the data breaks the contract
        (the message names table, column, row count, examples and the fix).
    """
    from crm_helpers import warehouse

    if warehouse.source_of(data_dir, engine) == "warehouse":
        try:
            return warehouse.load_warehouse(
                engine, schema=schema, require=require, validate=validate
            )
        except DataContractError as exc:  # the traceback ends in load(), not in the engine
            raise exc.with_traceback(None) from None
    data_dir = Path(data_dir) if data_dir is not None else config.data_dir()
    if not data_dir.is_dir():
        raise DataContractError(
            Finding(
                table="*",
                column=None,
                check="missing_directory",
                severity="error",
                count=0,
                message=f"data directory {data_dir} does not exist",
                fix="run `crm generate` for the synthetic default data, or pass --data DIR "
                "(or set CRM_DATA_DIR) to your own data directory.",
            )
        )
    try:
        schema = _resolve_schema(data_dir, schema)
    except (ValueError, OSError) as exc:
        raise DataContractError(
            Finding(
                table="*",
                column=None,
                check="bad_schema",
                severity="error",
                count=0,
                message=f"the schema mapping could not be used: {exc}",
                fix="correct schema.yaml; see data/schema.example.yaml and data/README.md.",
            )
        ) from None
    con = connect(engine) if isinstance(engine, str) else engine

    errors: list[Finding] = []
    set_aside = None  # order lines without a customer (an unexecuted count)
    raw: dict[str, ibis.Table] = {}
    files: dict[str, Path] = {}
    aware: dict[str, frozenset[str]] = {}
    unreadable: set[str] = set()
    for name in TABLES:
        path = find_table_file(data_dir, schema.file_stem(name))
        if path is None:
            continue
        view = f"crm_{name}_{uuid.uuid4().hex[:8]}"
        try:
            t, aware_src = _read(con, path, view, _timestamp_sources(name, schema))
        except Exception as exc:  # engine errors on bad files -> a readable contract error
            errors.append(_engine_error(name, path, exc, "reading"))
            unreadable.add(name)  # the file exists: not "missing"
            continue
        raw[name], missing = rename_columns(name, t, schema, path.name)
        errors += missing
        rename = {canon: src for src, canon in schema.rename_map(name).items() if src in t.columns}
        if name == "orders" and schema.order_lines:
            try:
                raw[name], aside = aggregate_order_lines(raw[name], schema.order_lines)
            except KeyError as exc:
                errors.append(_order_lines_finding(path, exc, schema.order_lines))
                continue
            set_aside = aside if validate else None
        inverse = {src: canon for canon, src in rename.items()}
        aware[name] = frozenset(inverse.get(c, c) for c in aware_src)
        files[name] = path

    data = CRMData(
        con=con, data_dir=data_dir, schema=schema, tables={}, files=files, raw=raw, tz_aware=aware
    )
    try:
        return finish_load(
            data,
            errors,
            require,
            validate,
            missing=lambda n: _missing_table(n, data_dir, schema, raw),
            skip=unreadable,
            set_aside=set_aside,
        )
    except DataContractError as exc:  # the traceback ends in load(), not in the engine
        raise exc.with_traceback(None) from None


def rename_columns(
    name: str, t: ibis.Table, schema: Schema, where: str
) -> tuple[ibis.Table, list[Finding]]:
    """``t`` with the schema mapping's source columns renamed to contract names.

    ``where`` names the source in messages (a file name, ``table analytics.web_events``).
    Returns the renamed table and a ``missing_column`` error per mapped column it lacks.
    """
    errors = []
    rename = {canon: src for src, canon in schema.rename_map(name).items() if src in t.columns}
    for src, canon in schema.rename_map(name).items():
        if src not in t.columns:
            errors.append(
                Finding(
                    table=name,
                    column=canon,
                    check="missing_column",
                    severity="error",
                    count=0,
                    message=f"the schema mapping says column '{canon}' is called '{src}' "
                    f"in {where}, but it has no '{src}' (columns: {list(t.columns)})",
                    fix=f"correct columns: {{{name}: {{{canon}: ...}}}} in schema.yaml, "
                    "or remove the line if the source already uses the contract name.",
                )
            )
    return (t.rename(rename) if rename else t), errors


def finish_load(
    data: CRMData,
    errors: list[Finding],
    require: Iterable[str],
    validate: bool,
    *,
    missing: Callable[[str], Finding],
    skip: Iterable[str] = (),
    set_aside: ibis.Scalar | None = None,
) -> CRMData:
    """Check required tables, validate ``data.raw``, then normalise and clean into ``data.tables``.

    Shared by files (:func:`load`) and warehouse tables (:mod:`crm_helpers.warehouse`).
    ``missing(name)`` is the error for a required table that was not found; tables in
    ``skip`` already have an error (found but unreadable) and get no second one.
    ``set_aside`` counts order lines without a customer (:func:`aggregate_order_lines`),
    reported as a warning when validation finds no error.
    """
    con, schema, raw, aware = data.con, data.schema, data.raw, data.tz_aware
    backend = con.name
    required = list(dict.fromkeys(require))
    unknown = [n for n in required if n not in TABLES]
    if unknown:
        raise ValueError(f"require names unknown table(s) {unknown}; tables are {list(TABLES)}.")
    errors = errors + [missing(n) for n in required if n not in raw and n not in set(skip)]
    data.required = tuple(required)
    if validate:
        from crm_helpers.validate import validate as run_checks

        try:
            data.quality = run_checks(data)
        except DataContractError:
            raise
        except Exception as exc:  # an engine error while scanning a file
            if data.data_dir is not None:
                errors.append(_engine_error("*", data.data_dir, exc, "checking the data in"))
            else:  # warehouse tables: the engine's own message says what it could not do
                f = _engine_error("*", "the warehouse tables", exc, "checking the data in")
                errors.append(
                    replace(
                        f,
                        fix="check the tables' column types against the "
                        "contract (data/README.md) and the engine's message.",
                    )
                )
        errors += data.quality.errors
        if set_aside is not None and not errors:
            n_aside = int(set_aside.to_pyarrow().as_py() or 0)
            if n_aside:
                data.quality.findings.append(
                    Finding(
                        table="orders",
                        column="user_id",
                        check="order_lines_without_customer",
                        severity="warning",
                        count=n_aside,
                        message="order lines without a customer (guest or unattributed "
                        "sales) are set aside: they belong to no user's orders",
                        fix="nothing to do if these are guest sales; otherwise fill the "
                        "customer column in the export.",
                    )
                )
    if errors:
        raise DataContractError(errors) from None

    tables = {}
    for name, t in raw.items():
        plan = plan_columns(t, name, schema, aware[name], backend)
        clean = apply_cleaning(normalise(t, plan), data.quality.cleaning.get(name, {}))
        # a view, not a shared sub-query: see engine.temp_view
        tables[name] = (
            clean if clean is t else temp_view(con, f"crm_{name}_{uuid.uuid4().hex[:8]}_n", clean)
        )
    data.tables = tables
    return data

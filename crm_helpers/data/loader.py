"""Load the data contract through the engine: find files, map names, normalise, validate.

>>> data = load("data/synthetic")                 # DuckDB over Parquet, validated
>>> data.events                                    # an Ibis table, canonical names
>>> data.events.group_by("event").count().to_pandas()   # only the aggregate comes back

Loading is lazy: each table is a view over its file(s) in the engine, with canonical
column names, contract types and naive-UTC timestamps; validation runs a few aggregate
queries per table and cleaning is a lazy Ibis filter. Nothing under the data directory is
ever written.

:func:`load` is the top of :mod:`crm_helpers.data`; it calls the steps below it in order:
find and read the sources (:mod:`~crm_helpers.data.sources`), map the schema
(:mod:`~crm_helpers.data.mapping`), aggregate order lines (:mod:`~crm_helpers.data.order_lines`),
then validate, normalise and clean (:func:`~crm_helpers.data.assemble.finish_load`). Without a
data directory and with a warehouse engine it reads the warehouse's tables instead
(:mod:`crm_helpers.data.warehouse`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path

import ibis
from ibis.backends import BaseBackend

from crm_helpers import config
from crm_helpers.data.assemble import finish_load
from crm_helpers.data.crmdata import CRMData
from crm_helpers.data.findings import DataContractError, Finding
from crm_helpers.data.mapping import _resolve_schema, rename_columns
from crm_helpers.data.order_lines import _order_lines_finding, aggregate_order_lines
from crm_helpers.data.sources import (
    _engine_error,
    _missing_table,
    _read,
    _timestamp_sources,
    find_table_file,
)
from crm_helpers.engine import connect
from crm_helpers.schema import TABLES, Schema

__all__ = ["load"]


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
        (:mod:`crm_helpers.data.warehouse`); with ``data_dir``, the files through that engine
        (DuckDB, Spark), or :class:`~crm_helpers.data.warehouse.SourceConflict` for an engine
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
    from crm_helpers.data import warehouse

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

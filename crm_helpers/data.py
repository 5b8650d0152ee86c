"""Load the data contract through the engine: find files, map names, normalise, validate.

>>> data = load("data/synthetic")                 # DuckDB over Parquet, validated
>>> data.events                                    # an Ibis table, canonical names
>>> data.events.group_by("event").count().to_pandas()   # only the aggregate comes back

Nothing under the data directory is ever written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.datatypes as dt
from ibis.backends import BaseBackend

from crm_helpers import config
from crm_helpers.engine import connect
from crm_helpers.schema import CONTRACT, DEFAULT_SCHEMA, TABLES, Schema
from crm_helpers.validate import DataContractError, DataQualityReport, Finding

FORMATS = ("parquet", "csv")


@dataclass
class CRMData:
    """The contract's tables as Ibis expressions on one connection.

    Attributes
    ----------
    con
        The Ibis backend the tables live on.
    tables
        Canonical table name -> Ibis table with canonical column names, UTC timestamps.
    files
        Canonical table name -> the file or directory it was read from.
    quality
        Findings of validation (errors were raised; warnings are kept for the report).
    """

    con: BaseBackend
    data_dir: Path
    schema: Schema
    tables: dict[str, ibis.Table]
    files: dict[str, Path] = field(default_factory=dict)
    quality: DataQualityReport = field(default_factory=DataQualityReport)

    def table(self, name: str) -> ibis.Table:
        """The table ``name``; a clear error if the data set lacks it."""
        if name not in self.tables:
            raise DataContractError(
                Finding(
                    table=name,
                    column=None,
                    check="missing_table",
                    severity="error",
                    count=0,
                    message=f"this analysis needs the '{name}' table but {self.data_dir} has none "
                    f"(found: {sorted(self.tables) or 'no tables'})",
                    fix=f"add {name}.parquet or {name}.csv to the data directory, or map your file "
                    f"with Schema(tables={{'{name}': '<your file stem>'}}).",
                )
            )
        return self.tables[name]

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
        """Rows per table (one count query each, run in the engine)."""
        return {name: int(t.count().to_pyarrow().as_py()) for name, t in self.tables.items()}

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


def _read(con: BaseBackend, path: Path, name: str) -> ibis.Table:
    if path.is_dir():
        return con.read_parquet(str(path / "**" / "*.parquet"), table_name=name)
    if path.suffix == ".parquet":
        return con.read_parquet(str(path), table_name=name)
    return con.read_csv(str(path), table_name=name)


def _normalise_timestamps(t: ibis.Table, table: str) -> ibis.Table:
    """Cast contract timestamp columns to naive UTC ``timestamp`` (session time zone is UTC)."""
    casts = {}
    for col, spec in CONTRACT[table].items():
        if spec.kind != "timestamp" or col not in t.columns:
            continue
        typ = t[col].type()
        if typ.is_timestamp() and typ.timezone is None:
            continue
        if typ.is_timestamp() or typ.is_date():
            casts[col] = t[col].cast(dt.Timestamp())
        elif typ.is_string():
            casts[col] = t[col].try_cast(dt.Timestamp())
    return t.mutate(**casts) if casts else t


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
        ``"duckdb"``, ``"spark"``, an Ibis URL, or an open Ibis connection.
    schema
        A :class:`Schema`, or the path of its YAML file; ``data_dir/schema.yaml`` is used if present.
    require
        Tables this analysis needs; a missing one is an error naming the fix. Other tables
        are loaded when present.
    validate
        Run the contract checks (errors raise :class:`DataContractError`).

    Returns
    -------
    CRMData
        Tables as lazy Ibis expressions; nothing is pulled into memory.
    """
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
    if schema is None:
        schema = (
            Schema.from_yaml(data_dir / "schema.yaml")
            if (data_dir / "schema.yaml").exists()
            else DEFAULT_SCHEMA
        )
    elif not isinstance(schema, Schema):
        schema = Schema.from_yaml(schema)
    con = connect(engine) if isinstance(engine, str) else engine

    tables: dict[str, ibis.Table] = {}
    files: dict[str, Path] = {}
    for name in TABLES:
        path = find_table_file(data_dir, schema.file_stem(name))
        if path is None:
            continue
        raw = _read(con, path, f"crm_{name}")
        rename = {canon: src for src, canon in schema.rename_map(name).items() if src in raw.columns}
        t = raw.rename(rename) if rename else raw
        files[name] = path
        tables[name] = t

    data = CRMData(con=con, data_dir=data_dir, schema=schema, tables=tables, files=files)
    missing = [n for n in require if n not in tables]
    if missing:
        data.table(missing[0])  # raises the clear error
    if validate:
        from crm_helpers.validate import validate as run_checks

        data.quality = run_checks(data)
        data.quality.raise_for_errors()
    data.tables = {n: _normalise_timestamps(t, n) for n, t in data.tables.items()}
    return data

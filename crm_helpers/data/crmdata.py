"""The loaded data set: :class:`CRMData`, the contract's tables on one Ibis connection.

A container, filled by :func:`crm_helpers.data.load` (files) or
:func:`crm_helpers.data.warehouse.load_warehouse` (warehouse tables) and read by every
analysis. It sits below the checks: :func:`crm_helpers.data.validate.validate` takes a
:class:`CRMData` and :func:`crm_helpers.data.assemble.finish_load` fills its ``quality``
and ``tables``.

The events as sorted integer-coded arrays (the embedded kernels' layout, from the prepared
event store) are ``crm_helpers.store.event_arrays(data, columns=())``, a function of the
store package rather than a method here: the store sits above this package in the import
contract (``pyproject.toml``), and the data package never imports it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import ibis
from ibis.backends import BaseBackend

from crm_helpers.data.findings import DataContractError, DataQualityReport
from crm_helpers.data.sources import _data_files, _missing_table
from crm_helpers.schema import Schema

__all__ = ["CRMData"]


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

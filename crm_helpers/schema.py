"""The data contract: canonical table and column names, and the one object that maps yours.

Every helper speaks the canonical names below. A data set with other names is mapped
once, by a :class:`Schema` (in code or a YAML file), never by column keyword arguments
repeated across functions (the retentioneering ``schema`` idea).

Canonical contract (``data/README.md`` documents it for people)::

    users        user_id, [signup_at], <attributes...>
    events       user_id, event, ts, [session_id], <properties...>
    orders       order_id, user_id, ts, revenue, [category], [coupon], [quantity]
    messages     message_id, user_id, campaign_id, channel, sent_at, [opened_at], [clicked_at]
    assignments  experiment_id, user_id, variant, assigned_at

All timestamps are normalised to naive UTC on load.
"""

from __future__ import annotations

import difflib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

Kind = Literal["id", "string", "timestamp", "number", "integer"]


@dataclass(frozen=True)
class ColumnSpec:
    """One contract column: its kind and whether the table must have it."""

    kind: Kind
    required: bool = True
    nullable: bool = False


#: table -> canonical column -> spec. Columns not listed are free attributes/properties.
CONTRACT: dict[str, dict[str, ColumnSpec]] = {
    "users": {
        "user_id": ColumnSpec("id"),
        "signup_at": ColumnSpec("timestamp", required=False, nullable=True),
    },
    "events": {
        "user_id": ColumnSpec("id"),
        "event": ColumnSpec("string"),
        "ts": ColumnSpec("timestamp"),
        "session_id": ColumnSpec("id", required=False, nullable=True),
    },
    "orders": {
        "order_id": ColumnSpec("id"),
        "user_id": ColumnSpec("id"),
        "ts": ColumnSpec("timestamp"),
        "revenue": ColumnSpec("number"),
        "category": ColumnSpec("string", required=False, nullable=True),
        "coupon": ColumnSpec("string", required=False, nullable=True),
        "quantity": ColumnSpec("integer", required=False, nullable=True),
    },
    "messages": {
        "message_id": ColumnSpec("id"),
        "user_id": ColumnSpec("id"),
        "campaign_id": ColumnSpec("id"),
        "channel": ColumnSpec("string"),
        "sent_at": ColumnSpec("timestamp"),
        "opened_at": ColumnSpec("timestamp", required=False, nullable=True),
        "clicked_at": ColumnSpec("timestamp", required=False, nullable=True),
    },
    "assignments": {
        "experiment_id": ColumnSpec("id"),
        "user_id": ColumnSpec("id"),
        "variant": ColumnSpec("string"),
        "assigned_at": ColumnSpec("timestamp"),
    },
}

#: Primary keys: must be non-null and unique.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "orders": ("order_id",),
    "messages": ("message_id",),
    "assignments": ("experiment_id", "user_id"),
}

TABLES: tuple[str, ...] = tuple(CONTRACT)
#: Keys of ``Schema.order_lines``: the line columns of an orders file that holds lines.
ORDER_LINE_KEYS: frozenset[str] = frozenset({"order_id", "quantity", "unit_price"})
MESSAGE_CHANNELS: tuple[str, ...] = ("push", "email", "sms", "in-app")


@dataclass(frozen=True)
class Schema:
    """How a data set's files and columns map onto the canonical contract.

    Parameters
    ----------
    tables
        Canonical table name -> file stem in the data directory (``events`` ->
        ``events.parquet``, ``events.csv`` or a directory ``events/`` of Parquet parts).
        Tables not listed use their canonical name.
    columns
        Canonical table name -> {canonical column: column name in your file}. Only the
        columns that differ need listing.
    timezone
        Time zone of naive timestamps in the source files; converted to UTC on load.
        Time-zone-aware timestamps are converted from their own zone.
    order_lines
        Set when the orders file holds one row per order *line* (a shop's invoice export):
        ``{quantity: <column>, unit_price: <column>}`` and optionally ``order_id: <column>``
        (else the ``columns.orders`` mapping or ``order_id``). The lines are aggregated to
        one order per order id in the engine (:func:`crm_helpers.data.aggregate_order_lines`:
        revenue = sum of quantity x unit price; cancellations, with negative quantities,
        become negative-revenue orders; lines without a customer are set aside).

    Examples
    --------
    >>> s = Schema(columns={"events": {"event": "event_name", "ts": "timestamp"}})
    >>> s.source_column("events", "event")
    'event_name'
    """

    tables: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    timezone: str = "UTC"
    order_lines: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.tables) | set(self.columns)
        unknown -= set(TABLES)
        if unknown:
            raise ValueError(
                f"Schema names unknown table(s) {sorted(unknown)}; the contract's tables are "
                f"{list(TABLES)}."
            )
        for table, stem in self.tables.items():
            if not isinstance(stem, str) or not stem:
                raise ValueError(
                    f"Schema tables: '{table}' must map to a file name without extension "
                    f"(e.g. {table}: my_{table}), not {stem!r}."
                )
        for table, mapping in self.columns.items():
            if not isinstance(mapping, Mapping):
                raise ValueError(
                    f"Schema columns: '{table}' must map contract columns to your column names "
                    f"(e.g. {table}: {{user_id: customer_id}}), not {mapping!r}."
                )
            for canon, src in mapping.items():
                if canon not in CONTRACT[table]:
                    close = difflib.get_close_matches(str(canon), CONTRACT[table], n=1)
                    hint = f" Did you mean '{close[0]}'?" if close else ""
                    raise ValueError(
                        f"Schema columns: '{table}' has no contract column '{canon}'.{hint} "
                        f"Its columns are {list(CONTRACT[table])}; the mapping is written "
                        "<contract column>: <your column>."
                    )
                if not isinstance(src, str) or not src:
                    raise ValueError(
                        f"Schema columns: {table}.{canon} must map to a column name, not {src!r}."
                    )
        if self.order_lines:
            if not isinstance(self.order_lines, Mapping):
                raise ValueError(
                    "Schema order_lines must map quantity, unit_price (and optionally "
                    f"order_id) to your column names, not {self.order_lines!r}."
                )
            keys = set(self.order_lines)
            if not keys <= ORDER_LINE_KEYS or not {"quantity", "unit_price"} <= keys:
                raise ValueError(
                    f"Schema order_lines has keys {sorted(keys)}; it needs quantity and "
                    "unit_price (and may name order_id), e.g. {order_id: Invoice, "
                    "quantity: Quantity, unit_price: Price}."
                )
            for k, src in self.order_lines.items():
                if not isinstance(src, str) or not src:
                    raise ValueError(f"Schema order_lines: {k} must map to a column name.")
        try:
            zoneinfo.ZoneInfo(str(self.timezone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"Schema timezone {self.timezone!r} is not a time zone name; use an IANA name "
                "such as 'UTC', 'Europe/Berlin' or 'America/New_York'."
            ) from None

    def file_stem(self, table: str) -> str:
        """File stem of ``table`` in the data directory."""
        return self.tables.get(table, table)

    def source_column(self, table: str, column: str) -> str:
        """The name ``column`` has in the source file of ``table``."""
        return self.columns.get(table, {}).get(column, column)

    def rename_map(self, table: str) -> dict[str, str]:
        """{source name: canonical name} for the columns of ``table`` that differ."""
        return {src: canon for canon, src in self.columns.get(table, {}).items() if src != canon}

    @classmethod
    def from_yaml(cls, path: str | Path) -> Schema:
        """Read a schema from YAML (keys ``tables``, ``columns``, ``timezone``).

        Raises
        ------
        ValueError
            The file is missing, not YAML, or has unknown keys, tables or columns.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"schema file {path} does not exist.")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(
                f"{path}: a schema file is a mapping with 'tables', 'columns', 'timezone'."
            )
        extra = set(raw) - {"tables", "columns", "timezone", "order_lines"}
        if extra:
            raise ValueError(
                f"{path}: unknown key(s) {sorted(extra)}; a schema file has 'tables', "
                "'columns', 'timezone' and 'order_lines'."
            )
        return cls(
            tables=raw.get("tables") or {},
            columns=raw.get("columns") or {},
            timezone=raw.get("timezone", "UTC"),
            order_lines=raw.get("order_lines") or {},
        )

    def to_dict(self) -> dict:
        """Plain-dict form (for provenance records and YAML)."""
        return {
            "tables": dict(self.tables),
            "columns": {t: dict(c) for t, c in self.columns.items()},
            "timezone": self.timezone,
            **({"order_lines": dict(self.order_lines)} if self.order_lines else {}),
        }


DEFAULT_SCHEMA = Schema()

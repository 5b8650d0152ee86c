"""Contract types and naive-UTC timestamps of a loaded table, and validation's cleaning.

Decided from the schema alone (:func:`plan_columns`, no query) and applied lazily
(:func:`normalise`): identifiers as integers or text, numbers as floats, timestamps as
naive UTC — text parsed by one rule on every engine (:func:`parse_timestamp_text`: with an
offset, that instant; without, wall time in the schema's time zone), zone-aware columns
converted (:func:`aware_to_naive_utc`), naive ones read as wall time in the schema's time
zone (:func:`crm_helpers.engine.local_to_utc`); a timestamp type Ibis cannot map (DuckDB's
``TIMESTAMPTZ_NS`` in a warehouse table) is cast first. A column whose type cannot hold its
kind is a ``wrong_type`` finding that says what it holds in words
(:func:`crm_helpers.data.column_types.type_words`). :func:`apply_cleaning` applies validation's
cleaning rules as lazy filters. :mod:`crm_helpers.data` re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from crm_helpers.data.column_types import raw_timestamp, type_name, type_words
from crm_helpers.data.findings import Finding
from crm_helpers.engine import epoch_us, from_epoch_us, local_to_utc
from crm_helpers.schema import CONTRACT, Schema

__all__ = [
    "OFFSET_PATTERN",
    "ColumnPlan",
    "apply_cleaning",
    "aware_to_naive_utc",
    "normalise",
    "parse_timestamp_text",
    "plan_columns",
]

#: Regular expression for a text timestamp that carries its own UTC offset ("...Z", "+02:00").
OFFSET_PATTERN = r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"


def parse_timestamp_text(s: ir.StringValue, tz: str, backend: str) -> ir.TimestampValue:
    """Parse text timestamps to naive UTC; text that does not parse becomes NULL.

    Text with an offset (``2024-03-01T10:00:00+01:00``, ``...Z``) is read as that instant;
    text without one (``2024-03-01 10:00:00``, ``2024-03-01``) as wall time in ``tz``.
    """
    s = s.strip()
    with_offset = s.try_cast(dt.Timestamp(timezone="UTC")).cast(dt.Timestamp())
    local = local_to_utc(s.try_cast(dt.Timestamp()), tz, backend)
    return ibis.ifelse(s.re_search(OFFSET_PATTERN), with_offset, local)


@dataclass
class ColumnPlan:
    """How one table's contract columns are brought to contract types.

    Attributes
    ----------
    exprs
        Canonical column -> Ibis expression over the raw table giving the contract type.
    findings
        Type errors (a column whose type cannot hold its kind).
    checkable
        Contract columns present with a usable type (value checks run on these).
    text_timestamps
        Timestamp columns stored as text (unparseable values are counted).
    float_ids
        Id/integer columns stored as floats (fractional values are counted).
    """

    exprs: dict[str, ir.Value]
    findings: list[Finding]
    checkable: set[str]
    text_timestamps: set[str]
    float_ids: set[str]


_KIND_WORDS = {
    "id": "an identifier (whole numbers or text)",
    "string": "text",
    "number": "numbers",
    "integer": "whole numbers",
    "timestamp": "date-times",
}


def plan_columns(
    raw: ibis.Table,
    table: str,
    schema: Schema,
    aware: frozenset[str],
    backend: str,
) -> ColumnPlan:
    """Decide, from the schema alone (no query), how to cast each contract column.

    Parameters
    ----------
    raw
        The table as read, already renamed to canonical column names.
    table
        Canonical table name (a key of :data:`~crm_helpers.schema.CONTRACT`).
    schema
        Gives the time zone of naive timestamps and the source names (for messages).
    aware
        Canonical names of timestamp columns that carry a time zone in the source.
    backend
        ``con.name``.
    """
    plan = ColumnPlan({}, [], set(), set(), set())
    types = raw.schema()
    for col, spec in CONTRACT[table].items():
        if col not in types:
            continue
        typ, c = types[col], raw[col]
        ok = True
        if typ.is_null():
            plan.exprs[col] = c.cast(
                {
                    "id": dt.string,
                    "string": dt.string,
                    "number": dt.float64,
                    "integer": dt.int64,
                    "timestamp": dt.timestamp,
                }[spec.kind]
            )
        elif spec.kind == "id":
            if typ.is_floating() or (typ.is_decimal() and (typ.scale or 0) > 0):
                plan.float_ids.add(col)
                plan.exprs[col] = c.cast(dt.int64)
            elif typ.is_decimal():
                plan.exprs[col] = c.cast(dt.int64)
            elif not (typ.is_integer() or typ.is_string()):
                ok = False
        elif spec.kind == "integer":
            if typ.is_floating() or typ.is_decimal():
                plan.float_ids.add(col)
                plan.exprs[col] = c.cast(dt.int64)
            elif not typ.is_integer():
                ok = False
        elif spec.kind == "number":
            if typ.is_decimal():
                plan.exprs[col] = c.cast(dt.float64)
            elif not (typ.is_integer() or typ.is_floating()):
                ok = False
        elif spec.kind == "string":
            if not typ.is_string():
                ok = False
        elif spec.kind == "timestamp":
            if typ.is_string():
                plan.text_timestamps.add(col)
                plan.exprs[col] = parse_timestamp_text(c, schema.timezone, backend)
            elif raw_timestamp(typ) is not None:  # a type Ibis cannot map (TIMESTAMPTZ_NS)
                if raw_timestamp(typ)[1] or col in aware:
                    utc = c.cast(dt.Timestamp(timezone="UTC"))
                    plan.exprs[col] = aware_to_naive_utc(utc, backend)
                else:
                    plan.exprs[col] = local_to_utc(c.cast(dt.Timestamp()), schema.timezone, backend)
            elif typ.is_timestamp() and (typ.timezone is not None or col in aware):
                plan.exprs[col] = aware_to_naive_utc(c, backend)
            elif typ.is_timestamp() or typ.is_date():
                plan.exprs[col] = local_to_utc(c.cast(dt.Timestamp()), schema.timezone, backend)
            else:
                ok = False
        if ok:
            plan.checkable.add(col)
            continue
        src = schema.source_column(table, col)
        named = f" (your column '{src}')" if src != col else ""
        plan.findings.append(
            Finding(
                table=table,
                column=col,
                check="wrong_type",
                severity="error",
                count=0,
                message=f"the column{named} should hold {_KIND_WORDS[spec.kind]} but holds "
                f"{type_words(typ)} (type {type_name(typ)})",
                fix=_type_fix(table, col, spec.kind, typ, src),
            )
        )
    return plan


def _type_fix(table: str, col: str, kind: str, typ: dt.DataType, src: str) -> str:
    if kind == "timestamp":
        store = (
            f"store {table}.{col} as a timestamp column (any Parquet timestamp: pandas "
            "datetime64 with or without a time zone, any precision) or as text like "
            "'2024-03-01 14:05:00' (add '+01:00' or 'Z' if it is not in the schema's time zone)"
        )
        if typ.is_integer() or typ.is_floating() or typ.is_decimal():
            return (
                f"{store}. If the numbers are Unix times, convert them before loading, e.g. in "
                f"pandas df['{src}'] = pd.to_datetime(df['{src}'], unit='s', utc=True) "
                "(unit='ms' for milliseconds since 1970)."
            )
        if typ.is_time() or (isinstance(typ, dt.Unknown) and "TIME" in type_name(typ)):
            return f"{store}: combine the date and the time of day into one column."
        return f"{store}."
    if kind == "number":
        return (
            f"store {table}.{col} as plain numbers: remove currency signs, thousands separators "
            "and text such as 'EUR' from the values, and use '.' as the decimal point."
        )
    if kind == "string":
        return f"store {table}.{col} as text (e.g. 'purchase'), not {type_words(typ)}."
    if kind == "integer":
        return f"store {table}.{col} as whole numbers."
    return f"store {table}.{col} as whole numbers or text, one value per row."


def aware_to_naive_utc(ts: ibis.Value, backend: str) -> ibis.Value:
    """A time-zone-aware timestamp as naive UTC (the session time zone is UTC).

    On DuckDB through the epoch (``make_timestamp(epoch_us(ts))``: two integer builtins)
    rather than ``CAST(ts AS TIMESTAMP)``, a calendar conversion per row that cost ~15% of
    a funnel query; elsewhere the cast.
    """
    if backend == "duckdb":
        return from_epoch_us(epoch_us(ts, backend), backend)
    return ts.cast(dt.Timestamp())


def normalise(raw: ibis.Table, plan: ColumnPlan) -> ibis.Table:
    """Apply a :class:`ColumnPlan`: contract types and naive-UTC timestamps (lazy)."""
    return raw.mutate(**plan.exprs) if plan.exprs else raw


def apply_cleaning(t: ibis.Table, rules: dict) -> ibis.Table:
    """Apply validation's cleaning rules to a normalised table, as lazy Ibis filters.

    ``rules`` keys: ``drop_null``: columns whose NULL rows are dropped; ``ts_range``:
    ``{column: {"lo": datetime | None, "hi": datetime | None, "action": "drop" | "null"}}``,
    values before ``lo`` or after ``hi`` are implausible (:mod:`crm_helpers.data.validate`):
    ``"drop"`` excludes their rows, ``"null"`` treats the value as missing and keeps the
    row; ``distinct``: drop exact duplicate rows.
    """
    for col in rules.get("drop_null", ()):
        t = t.filter(t[col].notnull())
    for col, rule in rules.get("ts_range", {}).items():
        v = t[col]
        bad = ibis.literal(False)
        if rule.get("lo") is not None:
            bad = bad | (v < ibis.literal(rule["lo"], type=dt.timestamp))
        if rule.get("hi") is not None:
            bad = bad | (v > ibis.literal(rule["hi"], type=dt.timestamp))
        bad = bad.fill_null(False)
        if rule.get("action") == "null":
            t = t.mutate(**{col: ibis.ifelse(bad, ibis.null(v.type()), v)})
        else:
            t = t.filter(~bad)
    if rules.get("distinct"):
        t = t.distinct()
    return t

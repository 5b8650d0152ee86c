"""Findings of the data-contract checks: what they are, how they read, how they are raised.

:class:`Finding` (one problem: table, column, check, severity, count, message, fix, example
rows), :class:`DataContractError` (raised on errors), :class:`DataQualityReport` (all
findings of one load and its cleaning rules), and the small pieces the checks of
:mod:`crm_helpers.data.validate` and :mod:`crm_helpers.data.validate_dates` share (a
row-level check, a table's context, example rows). :mod:`crm_helpers.data.validate`
re-exports the public names. The lowest layer of :mod:`crm_helpers.data`: imports none of it.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import pandas as pd

__all__ = ["N_EXAMPLES", "DataContractError", "DataQualityReport", "Finding", "Severity"]

Severity = Literal["error", "warning"]

#: Example rows kept per finding.
N_EXAMPLES = 5


@dataclass(frozen=True)
class Finding:
    """One data-quality finding.

    ``examples`` holds at most a handful of offending rows as dicts.
    """

    table: str
    column: str | None
    check: str
    severity: Severity
    count: int
    message: str
    fix: str
    examples: tuple[dict, ...] = ()

    def describe(self) -> str:
        """Plain-language text: where, what, how many rows, up to 3 examples, the fix."""
        where = (
            f"table '{self.table}', column '{self.column}'"
            if self.column
            else (f"table '{self.table}'" if self.table != "*" else "data")
        )
        text = f"[{self.severity}] {where}: {self.message}"
        if self.count:
            text += f" ({self.count:,} row(s))"
        text += "."
        if self.examples:
            rows = "; ".join(
                "{" + ", ".join(f"{k}={v!r}" for k, v in ex.items()) + "}"
                for ex in self.examples[:3]
            )
            text += f"\n  Examples: {rows}"
        return text + f"\n  Fix: {self.fix}"


class DataContractError(ValueError):
    """The data does not meet the contract; the message names table, column and fix."""

    def __init__(self, findings: list[Finding] | Finding):
        self.findings = [findings] if isinstance(findings, Finding) else list(findings)
        lines = [f.describe() for f in self.findings]
        n = len(self.findings)
        super().__init__(
            f"The data does not meet the CRM data contract ({n} problem(s); the contract is "
            "described in data/README.md):\n" + "\n".join(lines)
        )


@dataclass
class DataQualityReport:
    """All findings of one load: errors (fatal) and warnings (counted, reported).

    ``cleaning`` maps table -> the cleaning rules applied to the loaded table
    (see :func:`crm_helpers.data.apply_cleaning`).
    """

    findings: list[Finding] = field(default_factory=list)
    cleaning: dict[str, dict] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def raise_for_errors(self) -> None:
        if self.errors:
            raise DataContractError(self.errors)

    def to_frame(self) -> pd.DataFrame:
        """One row per finding: table, column, check, severity, count, message, fix."""
        cols = ["table", "column", "check", "severity", "count", "message", "fix"]
        rows = [{k: v for k, v in asdict(f).items() if k in cols} for f in self.findings]
        return pd.DataFrame(rows, columns=cols)


@dataclass
class _RowCheck:
    """A row-level check: rows where ``cond`` holds are counted in the table's aggregate."""

    key: str
    column: str | None
    check: str
    severity: Severity
    cond: ir.BooleanValue
    message: str
    fix: str
    show: list[str]


def _plain(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, pd.Timestamp | _dt.datetime):
        return None if pd.isna(v) else pd.Timestamp(v).isoformat(sep=" ")
    if hasattr(v, "item"):
        return v.item()
    return v


def _examples(t: ibis.Table) -> tuple[dict, ...]:
    """At most :data:`N_EXAMPLES` rows of ``t`` as dicts; timestamps as text.

    Timestamps are cast to text in the engine: dates such as 0001-01-01 or 9999-12-31 (the
    implausible dates the checks report) do not fit pandas' nanosecond timestamps.
    """
    stamps = [c for c, typ in t.schema().items() if typ.is_timestamp()]
    if stamps:
        t = t.mutate(**{c: t[c].cast("string") for c in stamps})
    df = t.limit(N_EXAMPLES).to_pandas()
    return tuple({k: _plain(v) for k, v in row.items()} for row in df.to_dict("records"))


def _n(v: Any) -> int:
    return 0 if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


def _show(stage: ibis.Table, cols: list[str]) -> ibis.Table:
    """Columns for example rows; text timestamps / float ids are shown as in the file."""
    sel = {}
    for c in dict.fromkeys(cols):
        raw = f"_crm_raw_{c}"
        if raw in stage.columns:
            sel[c] = stage[raw]
        elif c in stage.columns:
            sel[c] = stage[c]
    return stage.select(**sel)


@dataclass
class _TableContext:
    name: str
    stage: ibis.Table
    plan: Any
    schema: Any
    users_ids: ibis.Table | None
    now: _dt.datetime
    keys: tuple[str, ...]
    channels: tuple[str, ...]
    contract: dict

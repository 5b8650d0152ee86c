"""Extract guards: a report is not published on an empty or suddenly collapsed extract.

A scheduled ``crm run`` on a broken extract must fail loudly rather than publish "no
problems found" over last week's good report. :func:`check` runs inside every report, from
:func:`crm_helpers.report.provenance.header` (right after loading, before any analysis), on
the row counts the header's data fingerprint has just counted. It raises, which fails the
run: ``crm run`` exits 1, keeps the last good report and writes the reason to ``run.json``
and the index page.

Semantics
---------
- **Empty table**: a table the report requires (``load(..., require=[...])``, kept as
  ``CRMData.required``) with no rows -> :class:`EmptyExtractError`. A report that requires
  no particular table (the data overview describes whatever tables it is given) needs
  every table it was given: any of them with no rows fails it.
- **Empty date range**: when the parameters set ``start_date`` and/or ``end_date`` (ISO,
  ``[start, end)``), the required activity tables (events, orders, messages, assignments;
  dated by :data:`crm_helpers.overview.TIME_COLUMNS`) are counted in that range; when *none*
  of them has a row in it -> :class:`EmptyExtractError` naming the range and the span the
  data do cover.
- **Shrink**: ``crm run`` passes the row counts of the previous good run of the same report
  (its ``metrics.json`` provenance) in ``$CRM_SHRINK_GUARD`` as JSON ``{"rows": {table: n},
  "share": 0.1, "since": "<finished_at>"}``. A table that now has fewer than ``share * n``
  rows -> :class:`ShrunkExtractError` naming both counts. ``crm run --allow-shrink`` does
  not set the variable (the guard is off); ``--shrink-share`` sets ``share``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_VAR",
    "DEFAULT_SHARE",
    "EmptyExtractError",
    "ShrunkExtractError",
    "check",
    "empty_tables",
    "guard_env",
    "previous_rows_env",
    "shrink_share",
    "shrunk_tables",
]

ENV_VAR = "CRM_SHRINK_GUARD"
#: A table under this share of the previous good run's rows fails the run.
DEFAULT_SHARE = 0.10
#: Tables whose rows are activity dated in the analysed range (users are not: they signed
#: up before it).
ACTIVITY_TABLES = ("events", "orders", "messages", "assignments")


class EmptyExtractError(RuntimeError):
    """A table the report needs has no rows (at all, or in the requested date range)."""


class ShrunkExtractError(RuntimeError):
    """A table has far fewer rows than in the previous good run of the same report."""


def empty_tables(rows: Mapping[str, int], required: Iterable[str]) -> list[str]:
    """The required tables with no rows (in the order of ``required``)."""
    return [t for t in required if t in rows and int(rows[t]) == 0]


def shrunk_tables(
    rows: Mapping[str, int], previous: Mapping[str, int], share: float = DEFAULT_SHARE
) -> list[tuple[str, int, int]]:
    """``(table, rows now, rows before)`` for tables now under ``share`` of their rows before.

    Tables missing on either side, or with no rows before, are not compared.
    """
    out = []
    for t, before in previous.items():
        if t in rows and before and int(rows[t]) < share * int(before):
            out.append((t, int(rows[t]), int(before)))
    return out


def guard_env(previous_rows: Mapping[str, int] | None, share: float, since: str | None) -> str:
    """The ``$CRM_SHRINK_GUARD`` value ``crm run`` sets for the kernel."""
    return json.dumps({"rows": dict(previous_rows or {}), "share": share, "since": since})


def shrink_share(share: float | None = None) -> float:
    """``share``, else ``$CRM_SHRINK_SHARE``, else :data:`DEFAULT_SHARE`; within [0, 1]."""
    if share is None:
        raw = os.environ.get("CRM_SHRINK_SHARE")
        try:
            share = float(raw) if raw else DEFAULT_SHARE
        except ValueError:
            raise ValueError(f"$CRM_SHRINK_SHARE must be a number, got {raw!r}") from None
    if not 0 <= share <= 1:
        raise ValueError(f"the shrink share must be between 0 and 1, got {share}")
    return float(share)


def previous_rows_env(metrics_path: Path, share: float, since: str | None) -> str | None:
    """``$CRM_SHRINK_GUARD`` from the previous good run's ``metrics.json`` (None: none)."""
    try:
        prev = json.loads(metrics_path.read_text())
        prov = prev.get("provenance") or {}
        rows = prov["data"]["fingerprint"]["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return guard_env(rows, share, since)


def _rows_in_range(data: Any, tables: list[str], start: str, end: str) -> dict[str, int]:
    from crm_helpers.overview import TIME_COLUMNS

    out = {}
    for name in tables:
        t = data.table(name)
        col = TIME_COLUMNS.get(name)
        if col is None or col not in t.columns:
            continue
        cond = t[col].notnull()
        if start:
            cond &= t[col] >= _ts(start)
        if end:
            cond &= t[col] < _ts(end)
        out[name] = int(t.filter(cond).count().to_pyarrow().as_py())
    return out


def _span(data: Any, name: str) -> str:
    from crm_helpers.overview import TIME_COLUMNS

    t = data.table(name)
    col = t[TIME_COLUMNS[name]]
    row = t.aggregate(lo=col.min(), hi=col.max()).to_pyarrow().to_pylist()[0]
    if row["lo"] is None:
        return ""
    return f"; the {name} run from {row['lo']:%Y-%m-%d} to {row['hi']:%Y-%m-%d}"


def _ts(value: str):
    import datetime as _dt

    ts = _dt.datetime.fromisoformat(value)
    if ts.tzinfo is not None:  # the contract's timestamps are naive UTC
        ts = ts.astimezone(_dt.UTC).replace(tzinfo=None)
    return ts


def check(data: Any, rows: Mapping[str, int], params: Mapping[str, Any]) -> None:
    """Fail the report on an empty or collapsed extract (see the module docstring).

    Parameters
    ----------
    data
        The loaded :class:`~crm_helpers.data.CRMData` (``required`` names the tables the
        report needs).
    rows
        Rows per table, as in the data fingerprint.
    params
        The report's parameters (``start_date``/``end_date`` when it has them).

    Raises
    ------
    EmptyExtractError, ShrunkExtractError
    """
    required = list(getattr(data, "required", ()) or ()) or list(rows)
    empty = empty_tables(rows, required)
    if empty:
        names = ", ".join(empty)
        raise EmptyExtractError(
            f"the {names} table{'s' if len(empty) > 1 else ''} {'have' if len(empty) > 1 else 'has'}"
            f" no rows in {data.data_dir}: an empty extract is not published (the last good "
            "report is kept); check the export that writes this data"
        )
    start, end = str(params.get("start_date") or ""), str(params.get("end_date") or "")
    dated = [t for t in required if t in ACTIVITY_TABLES and t in rows]
    if (start or end) and dated:
        in_range = _rows_in_range(data, dated, start, end)
        if in_range and not any(in_range.values()):
            what = f"from {start or 'the start'} to before {end or 'the end'}"
            raise EmptyExtractError(
                f"no {' or '.join(in_range)} rows {what}{_span(data, dated[0])}: "
                "change start_date/end_date or check the extract"
            )
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return
    try:
        guard = json.loads(raw)
    except ValueError:
        return
    shrunk = shrunk_tables(rows, guard.get("rows") or {}, float(guard.get("share", DEFAULT_SHARE)))
    if shrunk:
        share = float(guard.get("share", DEFAULT_SHARE))
        since = f" ({guard['since']})" if guard.get("since") else ""
        parts = "; ".join(
            f"{t} has {now:,} rows, the previous good run{since} had {before:,}"
            for t, now, before in shrunk
        )
        raise ShrunkExtractError(
            f"{parts}: under {share:.0%} of before, so the extract looks truncated. If the "
            "drop is real, run again with --allow-shrink"
        )

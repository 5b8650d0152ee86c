"""The checks of time: implausible dates in every timestamp column, and lost time order.

Implausible dates (every contract timestamp: ``users.signup_at``, ``events.ts``,
``orders.ts``, ``messages.sent_at`` / ``opened_at`` / ``clicked_at``,
``assignments.assigned_at``) are, exactly:

- *ancient*: before :data:`EARLIEST_PLAUSIBLE` (1990-01-01 00:00 UTC; placeholders such as
  0001-01-01 or 1970-01-01, or epoch values in the wrong unit), check ``ancient_dates``;
- *future*: after the column's cutoff, check ``future_events`` for ``events.ts`` and
  ``future_dates`` elsewhere. The cutoff is the column's 99.9th percentile + 30 days
  (:data:`FUTURE_TOLERANCE`), and at most the load time + 1 day (:data:`FUTURE_SLACK`) when
  the column's median is not after the load time (a future-dated synthetic data set only
  gets the data-end rule).

Both are counted warnings. A row's own time (:data:`ROW_TIME`: ``events.ts``, ``orders.ts``,
``messages.sent_at``, ``assignments.assigned_at``) that is implausible excludes the row from
the loaded table; an implausible optional time (``signup_at``, ``opened_at``,
``clicked_at``) is treated as missing and the row kept (cleaning rule ``ts_range``, applied
by :func:`crm_helpers.data.normalisation.apply_cleaning`).

Lost time order (``tied_timestamps``, a warning, rows kept): more than
:data:`MAX_TIED_EVENT_SHARE` of the events with a user_id share their exact timestamp with a
*different* event name of the same user, so which came first is unknown.

:mod:`crm_helpers.data.validate` runs these checks with the others and re-exports the constants.
"""

from __future__ import annotations

import datetime as _dt

import ibis
import ibis.expr.datatypes as dt

from crm_helpers.data.findings import (
    DataQualityReport,
    Finding,
    _examples,
    _n,
    _RowCheck,
    _show,
    _TableContext,
)

__all__ = [
    "EARLIEST_PLAUSIBLE",
    "FUTURE_SLACK",
    "FUTURE_TOLERANCE",
    "MAX_TIED_EVENT_SHARE",
    "ROW_TIME",
    "ancient_checks",
    "future_dates",
    "tied_finding",
    "tied_groups",
    "timestamp_columns",
    "ts_rule",
]

#: Dates later than the load time + this are "in the future" (see the module docstring).
FUTURE_SLACK = _dt.timedelta(days=1)
#: Dates later than the column's own end (its 99.9th percentile) + this are outliers.
#: (The load-time rule applies when the column's median is in the past.)
FUTURE_TOLERANCE = _dt.timedelta(days=30)
#: Dates before this (naive UTC) are implausible ("ancient") in every timestamp column.
EARLIEST_PLAUSIBLE = _dt.datetime(1990, 1, 1)
#: Share of events (with a user_id) sharing their exact timestamp with a *different* event
#: name of the same user from which the ``tied_timestamps`` warning is given.
MAX_TIED_EVENT_SHARE = 0.5
#: Timestamp columns that are a row's own time: an implausible value excludes the row (in
#: the other, optional timestamp columns it is treated as missing).
ROW_TIME = {"events": "ts", "orders": "ts", "messages": "sent_at", "assignments": "assigned_at"}


def timestamp_columns(ctx: _TableContext) -> list[str]:
    """The table's contract timestamp columns with a usable type."""
    ok = ctx.plan.checkable
    return [c for c, spec in ctx.contract.items() if spec.kind == "timestamp" and c in ok]


def excluded_words(table: str, col: str) -> str:
    """What happens to a row with an implausible date in ``table.col``."""
    if ROW_TIME.get(table) == col:
        return f"the rows are excluded from the loaded {table}"
    return "the dates are treated as missing (the rows are kept)"


def ancient_checks(ctx: _TableContext, key_cols: list[str]) -> list[_RowCheck]:
    """One ``ancient_dates`` row check per timestamp column of the table."""
    t, name = ctx.stage, ctx.name
    checks: list[_RowCheck] = []
    for col in timestamp_columns(ctx):
        checks.append(
            _RowCheck(
                f"ancient_{col}",
                col,
                "ancient_dates",
                "warning",
                t[col] < ibis.literal(EARLIEST_PLAUSIBLE, type=dt.timestamp),
                f"dates before {EARLIEST_PLAUSIBLE:%Y-%m-%d} (placeholders such as 0001-01-01 or "
                "1970-01-01, or numbers read in the wrong unit?); " + excluded_words(name, col),
                f"correct {name}.{col} at the source (or leave it empty when unknown); the "
                "analysis ignores these dates.",
                [c for c in dict.fromkeys([*key_cols, col]) if c in t.columns],
            )
        )
    return checks


def tied_finding(report: DataQualityReport, ctx: _TableContext, extra: dict) -> None:
    """The ``tied_timestamps`` warning of the events table, when its share is exceeded."""
    t, name = ctx.stage, ctx.name
    if name == "events" and _n(extra.get("tied")) > MAX_TIED_EVENT_SHARE * _n(
        extra.get("with_user")
    ):
        tied, total = _n(extra["tied"]), _n(extra["with_user"])
        g = tied_groups(t)
        report.findings.append(
            Finding(
                table=name,
                column="ts",
                check="tied_timestamps",
                severity="warning",
                count=tied,
                message=f"time order is lost: {tied / total:.0%} of events share their exact "
                "timestamp with a different event of the same user, so which came first is "
                "unknown (funnels and journeys, which need one step after another, undercount; "
                "dates without a time of day, or one load time stamped on every event?); the "
                "rows are kept",
                fix="export each event's own time (to the second or finer) from the source; "
                "results that depend on the order of events are unreliable until then.",
                examples=_examples(g.filter(g.names > 1).select("user_id", "ts", "rows", "names")),
            )
        )


def tied_groups(t: ibis.Table) -> ibis.Table:
    """Events (with a user_id) grouped by user and exact timestamp: rows and event names."""
    e = t.filter(t.user_id.notnull() & t.ts.notnull())
    return e.group_by(["user_id", "ts"]).aggregate(rows=e.count(), names=e.event.nunique())


def ts_rule(
    cleaning: dict,
    table: str,
    col: str,
    *,
    lo: _dt.datetime | None = None,
    hi: _dt.datetime | None = None,
) -> None:
    """Record a plausible-date bound of ``table.col`` in the cleaning rules (``ts_range``)."""
    rule = cleaning.setdefault("ts_range", {}).setdefault(
        col, {"lo": None, "hi": None, "action": "drop" if ROW_TIME.get(table) == col else "null"}
    )
    if lo is not None:
        rule["lo"] = lo
    if hi is not None:
        rule["hi"] = hi


def future_dates(
    report: DataQualityReport, ctx: _TableContext, col: str, row: dict, cleaning: dict
) -> None:
    """The future-dates finding of one timestamp column (see the module docstring).

    The cutoff depends on the column's own end, so counting the rows beyond it is a second
    query, run only when the column's latest value is beyond the cutoff.
    """
    t, name = ctx.stage, ctx.name
    if row.get(f"{col}_max") is None or row.get(f"{col}_q") is None:
        return
    epoch = _dt.datetime(1970, 1, 1)
    try:
        cutoff = epoch + _dt.timedelta(seconds=float(row[f"{col}_q"])) + FUTURE_TOLERANCE
    except OverflowError:  # the data's own end is near year 9999
        cutoff = _dt.datetime.max
    # data that is mostly in the past must not reach beyond now (a future-dated
    # synthetic data set only gets the data-end rule)
    if epoch + _dt.timedelta(seconds=float(row[f"{col}_median"])) <= ctx.now:
        cutoff = min(cutoff, ctx.now + FUTURE_SLACK)
    if not float(row[f"{col}_max"]) > (cutoff - epoch).total_seconds():
        return
    future = t[col] > ibis.literal(cutoff, type=dt.timestamp)
    count = _n(t.aggregate(f=future.cast("int64").sum()).to_pyarrow()["f"][0].as_py())
    if not count:
        return
    ts_rule(cleaning, name, col, hi=cutoff)
    if name == "events" and col == "ts":
        check = "future_events"
        message = (
            f"events dated after {cutoff:%Y-%m-%d %H:%M} UTC (in the future, or far beyond the "
            "rest of the data: wrong clock or time zone?); they are excluded from the loaded "
            "events"
        )
        fix = (
            "check the device clocks / time zone of these events at the source; the analysis "
            "ignores them."
        )
        show = ["user_id", "event", "ts"]
    else:
        check = "future_dates"
        message = (
            f"dates after {cutoff:%Y-%m-%d %H:%M} UTC (in the future, or far beyond the rest "
            "of the column: a placeholder such as 9999-12-31, a wrong clock or time zone?); "
            + excluded_words(name, col)
        )
        fix = f"correct {name}.{col} at the source (or leave it empty when unknown); the " + (
            "analysis ignores these dates."
        )
        show = [*(ctx.keys or ("user_id",)), col]
    report.findings.append(
        Finding(
            table=name,
            column=col,
            check=check,
            severity="warning",
            count=count,
            message=message,
            fix=fix,
            examples=_examples(_show(t.filter(future), [c for c in show if c in t.columns])),
        )
    )

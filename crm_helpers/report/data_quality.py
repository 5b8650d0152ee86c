"""Data-quality lines for every report's summary: what the load left out or cannot vouch for.

A load's warnings (:mod:`crm_helpers.data.validate`) are listed in full in the data overview; the
few that change what a report's numbers mean are repeated in the summary of *every* report
(:func:`summary_lines`), where the conclusions are read:

- implausible dates (checks ``ancient_dates``, ``future_dates``, ``future_events``): how many
  rows each table lost, or how many optional dates were treated as missing;
- lost time order (``tied_timestamps``): most events share their exact timestamp with a
  different event of the same user, so results that need one step after another undercount.

The lines are safe Markdown (:mod:`crm_helpers.report.text`); counts are the findings' own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from crm_helpers.report.text import Safe, join, md

__all__ = ["DATE_CHECKS", "summary_lines"]

#: Checks whose rows are excluded from the loaded tables (or whose dates are set missing).
DATE_CHECKS = ("ancient_dates", "future_dates", "future_events")
_WHEN = {
    "ancient_dates": "before 1990-01-01",
    "future_dates": "in the future or far beyond the rest",
    "future_events": "in the future or far beyond the rest",
}


def _frame(quality: Any) -> pd.DataFrame:
    """The findings as a frame: from a frame, a DataQualityReport or a loaded CRMData."""
    if isinstance(quality, pd.DataFrame):
        return quality
    quality = getattr(quality, "quality", quality)  # CRMData -> its DataQualityReport
    return quality.to_frame()


def summary_lines(quality: Any, skip: Iterable[tuple[str, str]] = ()) -> list[Safe]:
    """The data-quality sentences a report's summary ends with (empty when nothing applies).

    Parameters
    ----------
    quality
        A loaded :class:`~crm_helpers.data.CRMData`, its ``quality`` report, or
        :func:`crm_helpers.overview.quality_table` output.
    skip
        ``(table, check)`` pairs already said elsewhere in the summary (the data overview
        states the events' excluded dates in its period sentence).

    Returns
    -------
    list of Safe
        At most two sentences: the rows/dates left out for implausible dates, and the lost
        time order of events.
    """
    from crm_helpers.data.validate import ROW_TIME

    frame = _frame(quality)
    if not len(frame):
        return []
    skip = set(skip)
    warn = frame[frame["severity"] == "warning"]
    lines: list[Safe] = []
    parts = []
    for r in warn[warn["check"].isin(DATE_CHECKS)].itertuples():
        if (r.table, r.check) in skip:
            continue
        if ROW_TIME.get(r.table) == r.column:
            parts.append(
                md(
                    "{n:,} row(s) of {table} excluded ({col} {when})",
                    n=int(r.count),
                    table=r.table,
                    col=r.column,
                    when=_WHEN[r.check],
                )
            )
        else:
            parts.append(
                md(
                    "{n:,} {where} dates treated as missing ({when})",
                    n=int(r.count),
                    where=f"{r.table}.{r.column}",
                    when=_WHEN[r.check],
                )
            )
    if parts:
        lines.append(
            md(
                "Data quality: rows with implausible dates were left out on load: {parts}.",
                parts=join(parts, "; "),
            )
        )
    for r in warn[warn["check"] == "tied_timestamps"].itertuples():
        if (r.table, r.check) not in skip:
            lines.append(md("Data quality: {msg} ({n:,} events).", msg=r.message, n=int(r.count)))
    return lines

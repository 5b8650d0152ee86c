"""Tables in reports: a small DataFrame as an HTML table formatted for readers.

:func:`show` is what a notebook cell returns instead of ``df.round(3)``:

* no pandas index column (a meaningful index is reset into a column first);
* the columns named in ``percent`` as percentages (``0.1234`` -> ``12.3%``);
* p- and q-values (columns ``p_value``, ``q_value`` or ending in ``_p_value`` /
  ``_q_value``) with three decimals, and below 0.001 as ``< 0.001`` (never ``0.0`` or
  ``3.6e-225``);
* other floats with thousands separators and ``digits`` decimals, integers with thousands
  separators, timestamps as ``YYYY-MM-DD`` (with ``HH:MM`` when any has a time of day),
  booleans as ``yes`` / ``no``, missing values as an empty cell, or as the text ``missing``
  gives for their column (e.g. ``"no data"`` for the rate of a period nobody entered);
* every cell's text HTML-escaped (values from the data cannot inject markup).

The frame itself is not changed: ``metrics.record_table`` keeps the full precision.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

__all__ = ["format_pvalue", "is_pvalue_column", "show", "to_html"]


def is_pvalue_column(name: str) -> bool:
    """Whether a column holds p- or q-values, by name."""
    n = str(name)
    return n in ("p_value", "q_value") or n.endswith(("_p_value", "_q_value"))


def format_pvalue(p: Any) -> str:
    """``"< 0.001"`` below 0.001, else three decimals; ``""`` when missing."""
    if p is None or (isinstance(p, float) and math.isnan(p)) or pd.isna(p):
        return ""
    p = float(p)
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _formatter(s: pd.Series, name: str, percent: set[str], digits: int) -> Callable[[Any], str]:
    if name in percent:
        return lambda v: "" if _missing(v) else f"{float(v) + 0.0:.1%}".replace("-0.0%", "0.0%")
    if is_pvalue_column(name):
        return format_pvalue
    if pd.api.types.is_bool_dtype(s):
        return lambda v: "" if _missing(v) else ("yes" if v else "no")
    if pd.api.types.is_integer_dtype(s):
        return lambda v: "" if _missing(v) else f"{int(v):,}"
    if pd.api.types.is_float_dtype(s):
        return lambda v: "" if _missing(v) else f"{float(v):,.{digits}f}"
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = s.dropna()
        timed = bool(len(ts)) and bool((ts != ts.dt.normalize()).any())
        fmt = "%Y-%m-%d %H:%M" if timed else "%Y-%m-%d"
        return lambda v: "" if _missing(v) else pd.Timestamp(v).strftime(fmt)
    return lambda v: "" if _missing(v) else str(v)


def to_html(
    df: pd.DataFrame,
    *,
    percent: Iterable[str] = (),
    digits: int = 2,
    max_rows: int | None = 50,
    missing: Mapping[str, str] | None = None,
) -> str:
    """The table as an HTML ``<table class="dataframe crm-table">`` (see the module docstring).

    Parameters
    ----------
    df : pandas.DataFrame
        Any small frame, shape (rows, columns). A non-default index becomes a column.
    percent : iterable of str
        Columns holding shares in [0, 1] (or differences of shares) shown as percentages.
    digits : int, default 2
        Decimals of other float columns.
    max_rows : int or None, default 50
        Rows shown (the rest are counted in a note).
    missing : mapping of str to str, optional
        Column -> the text of its missing values (default: an empty cell); columns the
        table does not have are ignored (one mapping serves several views of a table).

    Returns
    -------
    str
        HTML; every cell's text is escaped.
    """
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    pct = set(percent)
    unknown = pct - set(df.columns)
    if unknown:
        raise KeyError(f"percent names column(s) {sorted(unknown)} not in the table")
    missing = dict(missing or {})
    shown = df if max_rows is None else df.head(max_rows)
    fmts = {c: _formatter(df[c], c, pct, digits) for c in df.columns}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in shown.itertuples(index=False, name=None):
        cells = []
        for c, v in zip(df.columns, row, strict=True):
            text = html.escape(missing[c] if c in missing and _missing(v) else fmts[c](v))
            numeric = pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
            align = " class='num'" if numeric else " class='txt'"
            cells.append(f"<td{align}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = len(df) - len(shown)
    note = f"<p class='crm-table-note'>… and {more:,} more rows.</p>" if more > 0 else ""
    return (
        "<table class='dataframe crm-table'><thead><tr>"
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
        + note
    )


def show(
    df: pd.DataFrame,
    *,
    percent: Iterable[str] = (),
    digits: int = 2,
    max_rows: int | None = 50,
    missing: Mapping[str, str] | None = None,
):
    """:func:`to_html` wrapped for display in a notebook (an ``IPython.display.HTML``)."""
    from IPython.display import HTML

    return HTML(to_html(df, percent=percent, digits=digits, max_rows=max_rows, missing=missing))

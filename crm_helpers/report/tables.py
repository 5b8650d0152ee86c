"""Tables in reports: a small DataFrame as an HTML table formatted for readers.

:func:`show` is what a notebook cell returns instead of ``df.round(3)``; every displayed table
of every report goes through it (one presentation layer):

* headers are the labels of one vocabulary (:mod:`crm_helpers.report.labels`:
  ``chance_to_beat_control`` -> ``Chance to beat control``; an unknown name in words), never
  code names; ``labels`` overrides them for one table;
* no pandas row index (a named index is reset into a column first; an unnamed one, the
  row numbers of a filtered or sorted frame, is dropped);
* rates, shares and probabilities as percentages (``0.1234`` -> ``12.3%``): the columns of
  :data:`~crm_helpers.report.labels.PERCENT` and those named in ``percent``; relative lifts and
  changes (:data:`~crm_helpers.report.labels.SIGNED_PERCENT` and ``signed``) with their sign
  (``+29.3%``, ``-4.0%``);
* p- and q-values (columns ``p_value``, ``q_value``, ``p_adjusted``, ``p_holm`` or ending in
  ``_p_value`` / ``_q_value`` / ``_p_adjusted`` / ``_p_holm`` / ``_rate_p``) with three decimals, and below 0.001 as ``< 0.001`` (never ``0.0000``);
* money (``money`` columns) with thousands separators, two decimals and the ``currency``
  (a symbol of one character before the amount, a code after it: ``€1,234.50``,
  ``1,234.50 EUR``);
* counts (integers, and floats that are all whole numbers) with thousands separators and no
  decimals (``7,648``, not ``7648.0``); other floats with ``digits`` decimals;
* timestamps as ``YYYY-MM-DD`` (with ``HH:MM`` when any has a time of day), booleans as
  ``yes`` / ``no``, a path (a tuple or list of steps) as ``a → b → c``;
* an interval in one cell: ``intervals={"rel_lift": ("rel_ci_low", "rel_ci_high")}`` shows
  ``+29.3% [+11.6%, +47.0%]`` under the value's label plus ``(95% interval)``, and drops the
  bound columns;
* missing values: in the ``baseline`` rows (e.g. ``{"variant": "control"}``) the word
  ``baseline``; in a column of ``notes`` (absent on purpose) ``n/a`` with a footnote marker and
  the reason below the table; in a column of ``missing`` its text; elsewhere a dash ``–``
  (never ``NaN`` or an empty cell);
* ``details`` columns are moved out of the table into a collapsed ``<details>`` block (a
  second table, with the ``keys`` columns repeated), so a wide table fits the page;
* every cell's text HTML-escaped (values from the data cannot inject markup).

The frame itself is not changed: ``metrics.record_table`` keeps the raw names and the full
precision. The HTML is written here rather than by pandas' ``Styler`` or great-tables: it is
one ``<table>`` with two CSS classes per cell, about a third the bytes of ``Styler.to_html``
(which writes an id and a CSS rule per cell) and without a new dependency.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from crm_helpers.report.labels import PERCENT, SIGNED_PERCENT, label

__all__ = ["format_money", "format_pvalue", "is_pvalue_column", "show", "show_split", "to_html"]

DASH = "–"
_MARKS = "*†‡§¶"


def is_pvalue_column(name: str) -> bool:
    """Whether a column holds p- or q-values, by name."""
    n = str(name)
    return n in ("p_value", "q_value", "p_adjusted", "p_holm") or n.endswith(
        ("_p_value", "_q_value", "_p_adjusted", "_p_holm", "_rate_p")
    )


def format_pvalue(p: Any) -> str:
    """``"< 0.001"`` below 0.001, else three decimals; ``""`` when missing."""
    if p is None or (isinstance(p, float) and math.isnan(p)) or pd.isna(p):
        return ""
    p = float(p)
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def format_money(v: Any, currency: str = "", digits: int = 2) -> str:
    """``€1,234.50`` (a one-character symbol before), ``1,234.50 EUR`` (a code after)."""
    if _missing(v):
        return ""
    x = float(v) + 0.0
    body = f"{abs(x):,.{digits}f}"
    sign = "-" if x < 0 and body.strip("0.,") else ""
    if not currency:
        return sign + body
    return f"{sign}{currency}{body}" if len(currency) == 1 else f"{sign}{body} {currency}"


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _pct(v: Any, signed: bool = False) -> str:
    if _missing(v):
        return ""
    text = f"{float(v) + 0.0:{'+' if signed else ''}.1%}"
    return text.replace("-0.0%", "0.0%").replace("+0.0%", "0.0%")


def _whole(s: pd.Series) -> bool:
    x = s.dropna()
    return bool(len(x)) and bool((x == x.round()).all()) and bool((x.abs() < 1e15).all())


def _formatter(
    s: pd.Series,
    name: str,
    percent: set[str],
    signed: set[str],
    money: set[str],
    currency: str,
    digits: int,
) -> Callable[[Any], str]:
    if name in signed:
        return lambda v: _pct(v, signed=True)
    if name in percent:
        return _pct
    if is_pvalue_column(name):
        return format_pvalue
    if name in money:
        return lambda v: format_money(v, currency)
    if pd.api.types.is_bool_dtype(s):
        return lambda v: "" if _missing(v) else ("yes" if v else "no")
    if pd.api.types.is_integer_dtype(s) or (pd.api.types.is_float_dtype(s) and _whole(s)):
        return lambda v: "" if _missing(v) else f"{int(v):,}"
    if pd.api.types.is_float_dtype(s):
        return lambda v: "" if _missing(v) else f"{float(v) + 0.0:,.{digits}f}"
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = s.dropna()
        timed = bool(len(ts)) and bool((ts != ts.dt.normalize()).any())
        fmt = "%Y-%m-%d %H:%M" if timed else "%Y-%m-%d"
        return lambda v: "" if _missing(v) else pd.Timestamp(v).strftime(fmt)
    return _text


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list | tuple):  # a path of steps
        return " → ".join(str(x) for x in v)
    return "" if _missing(v) else str(v)


def _baseline_mask(df: pd.DataFrame, baseline: Any) -> pd.Series:
    if baseline is None:
        return pd.Series(False, index=df.index)
    if callable(baseline):
        return pd.Series(baseline(df), index=df.index).fillna(False).astype(bool)
    mask = pd.Series(True, index=df.index)
    for col, value in dict(baseline).items():
        if col not in df.columns:
            return pd.Series(False, index=df.index)
        mask &= df[col].astype(object) == value
    return mask


def _table(
    df: pd.DataFrame,
    columns: list[str],
    fmts: Mapping[str, Callable[[Any], str]],
    *,
    labels: Mapping[str, str] | None,
    intervals: Mapping[str, tuple[str, str]],
    interval_label: str,
    is_base: pd.Series,
    marks: Mapping[str, str],
    missing: Mapping[str, str],
) -> str:
    def head(c: str) -> str:
        text = label(c, dict(labels or {}))
        return f"{text} ({interval_label})" if c in intervals else text

    def cell(c: str, row: Mapping[str, Any], base: bool) -> str:
        v = row[c]
        if _missing(v):
            if base:
                return "baseline"
            if c in marks:
                return "n/a" + marks[c]
            return missing.get(c, DASH)
        text = fmts[c](v)
        if c in intervals:
            lo, hi = (row[b] for b in intervals[c])
            if not (_missing(lo) or _missing(hi)):
                text += f" [{fmts[intervals[c][0]](lo)}, {fmts[intervals[c][1]](hi)}]"
        return text

    def kind(c: str) -> str:
        s = df[c]
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        return "num" if numeric else "txt"

    align = {c: kind(c) for c in columns}
    out = ["<table class='dataframe crm-table'><thead><tr>"]
    out += [f"<th class='{align[c]}'>{html.escape(head(c))}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(df.to_dict("records")):
        out.append("<tr>")
        base = bool(is_base.iloc[i])
        for c in columns:
            out.append(f"<td class='{align[c]}'>{html.escape(cell(c, row, base))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def to_html(
    df: pd.DataFrame,
    *,
    percent: Iterable[str] = (),
    signed: Iterable[str] = (),
    money: Iterable[str] = (),
    currency: str = "",
    digits: int = 2,
    max_rows: int | None = 50,
    missing: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    intervals: Mapping[str, tuple[str, str]] | None = None,
    interval_label: str = "95% interval",
    baseline: Mapping[str, Any] | Callable[[pd.DataFrame], Any] | None = None,
    notes: Mapping[str, str] | None = None,
    details: Iterable[str] = (),
    keys: Iterable[str] = (),
    details_title: str = "More columns",
) -> str:
    """The table as an HTML ``<table class="dataframe crm-table">`` (see the module docstring).

    Parameters
    ----------
    df : pandas.DataFrame
        Any small frame, shape (rows, columns). A named index becomes a column, an unnamed
        one is dropped.
    percent, signed : iterable of str
        Columns shown as percentages (``signed``: with a ``+`` on gains), besides those the
        vocabulary knows as such.
    money : iterable of str
        Columns of money, shown with ``currency`` (``""``: no sign) and two decimals.
    digits : int, default 2
        Decimals of other float columns that are not whole numbers.
    max_rows : int or None, default 50
        Rows shown (the rest are counted in a note).
    missing : mapping of str to str, optional
        Column -> the text of its missing values (default: ``–``); columns the table does not
        have are ignored (one mapping serves several views of a table).
    labels : mapping of str to str, optional
        Header overrides of this table (default: :func:`crm_helpers.report.labels.label`).
    intervals : mapping of str to (str, str), optional
        Value column -> its (lower, upper) bound columns, merged into one cell.
    interval_label : str
        Added to the header of a merged interval column, in brackets.
    baseline : mapping or callable, optional
        The rows everything is compared with (``{"variant": "control"}``, or a function of
        the frame giving a boolean mask): their missing cells say ``baseline``.
    notes : mapping of str to str, optional
        Column -> why its missing values are absent on purpose: the cells say ``n/a`` with a
        marker, the reason is a footnote below the table.
    details : iterable of str
        Columns moved into a collapsed ``<details>`` block below the table, with ``keys``.
    keys : iterable of str
        Columns repeated in the details table so its rows can be told apart.
    details_title : str
        The summary line of the collapsed block.

    Returns
    -------
    str
        HTML; every cell's text is escaped.
    """
    if len(df.columns) == 0 and len(df.index.names) == 1 and df.index.name is None:
        return "<p class='crm-table-note'>No rows.</p>"
    if any(n is not None for n in df.index.names):  # a meaningful index is a column
        df = df.reset_index()
    df = df.reset_index(drop=True)  # a row number (also of a filtered frame) is never shown
    cols = [str(c) for c in df.columns]
    df.columns = cols
    intervals = {k: tuple(v) for k, v in (intervals or {}).items()}
    explicit = set(percent) | set(signed) | set(money) | set(details) | set(keys)
    explicit |= set(intervals) | {b for pair in intervals.values() for b in pair}
    unknown = explicit - set(cols)
    if unknown:
        raise KeyError(f"column(s) {sorted(unknown)} named for the display are not in the table")
    sgn = set(signed) | (SIGNED_PERCENT & set(cols))
    pct = (set(percent) | (PERCENT & set(cols))) - sgn
    fmts = {c: _formatter(df[c], c, pct, sgn, set(money), currency, digits) for c in cols}
    for value, (lo, hi) in intervals.items():  # bounds read like their value
        fmts[lo] = fmts[hi] = fmts[value]
    shown = df if max_rows is None else df.head(max_rows)
    is_base = _baseline_mask(shown, baseline)
    bounds = {b for pair in intervals.values() for b in pair}
    detail_cols = [c for c in cols if c in set(details)]
    main = [c for c in cols if c not in bounds and c not in detail_cols]
    notes = {k: v for k, v in (notes or {}).items() if k in cols}
    marks: dict[str, str] = {}  # column -> its footnote marker (one per distinct reason)
    by_reason: dict[str, str] = {}
    for c in notes:
        if shown[c].isna().any() and not (shown[c].isna() <= is_base).all():
            k = len(by_reason)
            mark = by_reason.setdefault(notes[c], _MARKS[k % len(_MARKS)] * (1 + k // len(_MARKS)))
            marks[c] = mark
    opts = dict(
        labels=labels,
        intervals=intervals,
        interval_label=interval_label,
        is_base=is_base,
        marks=marks,
        missing=dict(missing or {}),
    )
    parts = [_table(shown, main, fmts, **opts)]
    more = len(df) - len(shown)
    if more > 0:
        parts.append(f"<p class='crm-table-note'>… and {more:,} more rows.</p>")
    for reason, m in by_reason.items():
        heads = ", ".join(label(c, dict(labels or {})) for c in marks if notes[c] == reason)
        parts.append(
            f"<p class='crm-table-note'>{html.escape(m)} {html.escape(heads)}: "
            f"{html.escape(reason)}</p>"
        )
    if detail_cols:
        key_cols = [c for c in keys if c not in detail_cols]
        inner = _table(shown, key_cols + detail_cols, fmts, **opts)
        parts.append(
            f"<details class='crm-details'><summary>{html.escape(details_title)}</summary>"
            f"{inner}</details>"
        )
    return "".join(parts)


def show(df: pd.DataFrame, **options: Any):
    """:func:`to_html` wrapped for display in a notebook (an ``IPython.display.HTML``)."""
    from IPython.display import HTML

    return HTML(to_html(df, **options))


def show_split(
    df: pd.DataFrame,
    by: str,
    *,
    title: Callable[[Any], str] | None = None,
    options: Callable[[Any, pd.DataFrame], Mapping[str, Any]] | None = None,
    **common: Any,
):
    """A wide table as one small table per value of ``by`` (e.g. per metric), each headed.

    Parameters
    ----------
    df
        The table.
    by
        The column to split on (it is left out of the small tables).
    title
        The heading of a part from its value (default: the value itself).
    options
        Extra :func:`to_html` options of a part, from its value and rows (e.g. money for the
        revenue metric).
    **common
        :func:`to_html` options of every part.

    Returns
    -------
    IPython.display.HTML
    """
    from IPython.display import HTML

    parts = []
    for value, rows in df.groupby(by, sort=False):
        heading = title(value) if title else str(value)
        opts = {**common, **(dict(options(value, rows)) if options else {})}
        parts.append(f"<h4 class='crm-table-title'>{html.escape(heading)}</h4>")
        parts.append(to_html(rows.drop(columns=[by]).reset_index(drop=True), **opts))
    return HTML("".join(parts))

"""Notebook glue for the funnel report: parameters -> spec, tables -> plain-language findings.

:func:`spec_from_params` turns the literal parameters of ``notebooks/funnel_dropoff.ipynb``
into a :class:`~crm_helpers.funnels.core.FunnelSpec`; :func:`step_metrics`,
:func:`duration_bins`, :func:`average_order_value` and :func:`audience_profile` are the small
computations the notebook records or draws; :func:`funnel_summary` writes the findings.

The report's summary cell prints these sentences for managers: where most users are lost,
which group differs significantly, how big each drop-off audience is and what a win-back
campaign would be worth. Every number in a sentence is read from the tables passed in
(nothing is recomputed from events), so the summary always agrees with the charts.
The sentences are safe Markdown (:func:`crm_helpers.report.text.md`): event names, group
values and the breakdown property come from the data and are escaped, so they show as the
literal text they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from crm_helpers.report.currency import money
from crm_helpers.report.text import esc, join, md

__all__ = [
    "STEP_METRIC_COLUMNS",
    "audience_profile",
    "average_order_value",
    "duration_bins",
    "funnel_summary",
    "NO_DATA",
    "period_missing",
    "period_note",
    "spec_from_params",
    "step_metrics",
    "step_name",
]

#: Per-step fields recorded in ``metrics.json`` under ``steps``.
STEP_METRIC_COLUMNS: tuple[str, ...] = (
    "step",
    "event",
    "users",
    "conversion_from_previous",
    "conversion_from_start",
    "ci_low",
    "ci_high",
    "median_seconds_to_convert",
)


def spec_from_params(
    steps: Sequence[str],
    *,
    mode: str = "ordered",
    conversion_window_days: float = 7.0,
    per_step_max_hours: Sequence[float | None] = (),
    exclusions: Sequence[str | Mapping[str, Any]] = (),
    start_date: str = "",
    end_date: str = "",
    count: str = "users",
):
    """Build a ``FunnelSpec`` from a notebook's literal parameters.

    Parameters
    ----------
    steps
        Event names, in order.
    mode, conversion_window_days, count
        As for ``FunnelSpec``.
    per_step_max_hours
        Empty, or one entry per step after the first (``len(steps) - 1``): the longest
        time in hours from the previous step (``None`` = no limit).
    exclusions
        Event names (excluded anywhere between the first and last step) or mappings with
        ``event`` and optionally ``where``, ``from_step``, ``to_step`` (1-based).
    start_date, end_date
        Entry range ``[start_date, end_date)`` as ISO dates; empty = open.

    Returns
    -------
    FunnelSpec
        Validated by its constructor (empty steps, bad mode, empty range raise ValueError).
    """
    from crm_helpers.funnels.core import Exclusion, FunnelSpec, Step

    steps = list(steps)
    gaps = list(per_step_max_hours or [])
    if gaps and len(gaps) != len(steps) - 1:
        raise ValueError(
            f"per_step_max_hours needs one entry per step after the first "
            f"({len(steps) - 1}), got {len(gaps)}; use [] for no per-step limits"
        )
    step_objs: list[Any] = [steps[0]] if steps else []
    for k, event in enumerate(steps[1:]):
        hours = gaps[k] if gaps else None
        step_objs.append(
            event if hours is None else Step(event, max_seconds_from_previous=float(hours) * 3600)
        )
    excl = []
    for x in exclusions or []:
        if isinstance(x, str):
            excl.append(Exclusion(x))
        elif isinstance(x, Mapping):
            excl.append(Exclusion(**dict(x)))
        else:
            raise TypeError(f"an exclusion is an event name or a mapping, got {x!r}")
    return FunnelSpec(
        step_objs,
        mode=mode,
        conversion_window_days=float(conversion_window_days),
        exclusions=tuple(excl),
        count=count,
        start=start_date or None,
        end=end_date or None,
    )


def step_metrics(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The per-step fields of :data:`STEP_METRIC_COLUMNS` of a ``funnel_table``, as dicts.

    ``users`` is read from ``attempts`` when the funnel counts attempts.
    """
    t = table.sort_values("step")
    if "users" not in t.columns and "attempts" in t.columns:
        t = t.rename(columns={"attempts": "users"})
    cols = [c for c in STEP_METRIC_COLUMNS if c in t.columns]
    return [dict(zip(cols, row, strict=True)) for row in t[cols].itertuples(index=False)]


#: Readable bin edges for times to convert, in seconds (10 s ... 7 days).
_EDGES_S: tuple[float, ...] = (
    0, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600,
    86400, 2 * 86400, 3 * 86400, 7 * 86400,
)  # fmt: skip


def duration_bins(window_days: float) -> list[float]:
    """Bin edges in seconds for a time-to-convert histogram: readable steps up to the window.

    The edges are 0, 10 s, 30 s, 1, 2, 5, 10, 30 min, 1, 3, 6, 12 h, 1, 2, 3, 7 days, cut at
    the conversion window (which is always the last edge, so every conversion falls in a
    bin); a window beyond 7 days adds it as the last edge.
    """
    w = float(window_days) * 86400
    edges = [e for e in _EDGES_S if e < w]
    return [float(e) for e in edges] + [w]


def average_order_value(data: Any, spec: Any = None) -> float:
    """Net revenue per purchase (orders in the spec's entry range when it has one), in the engine.

    What a conversion is worth to the funnel's campaign sizing: the revenue of the orders in
    the range *as customers paid it, less refunds and cancellations* (rows with negative
    revenue), divided by the number of purchases (rows with revenue >= 0). A refund row is not
    an order that a conversion could bring, so it lowers the value instead of counting as a
    cheap order (the plain mean of every row would do both). Returns 0.0 when there are no
    purchases, or when the refunds outweigh them (no positive value to size a campaign with).
    """
    orders = data.orders
    if spec is not None and getattr(spec, "start", None) is not None:
        orders = orders.filter(orders.ts >= spec.start)
    if spec is not None and getattr(spec, "end", None) is not None:
        orders = orders.filter(orders.ts < spec.end)
    df = orders.aggregate(
        net=orders.revenue.sum(), purchases=(orders.revenue >= 0).ifelse(1, 0).sum()
    ).to_pandas()
    net, n = df["net"].iloc[0], df["purchases"].iloc[0]
    if n is None or pd.isna(n) or int(n) == 0 or net is None or pd.isna(net):
        return 0.0
    return max(float(net) / int(n), 0.0)


def audience_profile(audience: Any, by: str) -> pd.DataFrame:
    """Users of an audience (a lazy Ibis table, one row per user) per value of ``by``.

    Returns
    -------
    pandas.DataFrame
        ``by``, ``users``, ``share``; largest first (ties by value). Counted in the engine.
    """
    if by not in audience.columns:
        raise KeyError(f"the audience has no column {by!r}; it has {list(audience.columns)}")
    g = audience.group_by(audience[by].cast("string").name(by)).aggregate(users=audience.count())
    df = g.to_pandas()
    df["users"] = df["users"].astype("int64")
    total = df["users"].sum()
    df["share"] = df["users"] / total if total else np.nan
    df[by] = df[by].fillna("(missing)")
    return df.sort_values(["users", by], ascending=[False, True]).reset_index(drop=True)


def step_name(row: pd.Series | dict) -> str:
    """Display name of a step row: its ``label`` if set, else its ``event``, else ``step k``."""
    for c in ("label", "event"):
        v = row.get(c) if hasattr(row, "get") else None
        if isinstance(v, str) and v:
            return v
    return f"step {int(row['step'])}"


def _name(row: pd.Series | dict) -> str:
    """The step's display name as escaped Markdown text (it comes from the data)."""
    return esc(step_name(row))


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):.1f}%"


def _first(df: pd.DataFrame, *cols: str) -> str | None:
    return next((c for c in cols if c in df.columns), None)


def _overall(table: pd.DataFrame) -> list[str]:
    t = table.sort_values("step").reset_index(drop=True)
    unit = "attempts" if "attempts" in t.columns and "users" not in t.columns else "users"
    n = t[unit].astype(float).to_numpy()
    first, last = t.iloc[0], t.iloc[-1]
    out = []
    if n[0] <= 0:
        return [
            md("No {u} did the first step ('{s}') in the analysed period.", u=unit, s=_name(first))
        ]
    ci = esc("")
    if {"ci_low", "ci_high"} <= set(t.columns) and math.isfinite(float(last["ci_low"])):
        ci = md(", 95% CI {lo} to {hi}", lo=_pct(last["ci_low"]), hi=_pct(last["ci_high"]))
    out.append(
        md(
            "{n0:,} {u} started the funnel at '{first}'; {n1:,} of them ({pct}{ci}) "
            "reached '{last}'.",
            n0=int(n[0]),
            u=unit,
            first=_name(first),
            n1=int(n[-1]),
            pct=_pct(n[-1] / n[0]),
            ci=ci,
            last=_name(last),
        )
    )
    if len(t) < 2:
        return out
    lost = n[:-1] - n[1:]
    k = int(lost.argmax())
    share = lost[k] / n[k] if n[k] > 0 else float("nan")
    out.append(
        md(
            "Most {u} are lost between '{a}' and '{b}': {lost:,} {u} "
            "({pct} of those who reached '{a}') do not continue.",
            u=unit,
            a=_name(t.iloc[k]),
            b=_name(t.iloc[k + 1]),
            lost=int(lost[k]),
            pct=_pct(share),
        )
    )
    with_share = [(lost[i] / n[i], i) for i in range(len(lost)) if n[i] > 0]
    if with_share:
        worst_share, j = max(with_share)
        if j != k:
            out.append(
                md(
                    "The weakest step relative to its size is '{a}' -> '{b}', where {pct} "
                    "drop off.",
                    a=_name(t.iloc[j]),
                    b=_name(t.iloc[j + 1]),
                    pct=_pct(worst_share),
                )
            )
    return out


def _breakdown(breakdown: pd.DataFrame, by: str | None, alpha: float) -> list[str]:
    b = breakdown
    if b is None or b.empty:
        return []
    what = md("{by} ", by=by) if by else esc("")
    users_c = _first(b, "users", "attempts")
    first_step, last_step = int(b["step"].min()), int(b["step"].max())
    start = b[b["step"] == first_step].set_index("group")[users_c].astype(float)
    end = b[b["step"] == last_step].set_index("group")[users_c].astype(float)
    end = end.reindex(start.index).fillna(0.0)
    flags = b.drop_duplicates("group").set_index("group")
    sig = flags["significant"].fillna(False).astype(bool) if "significant" in flags else None
    small = (
        flags["small_group"].fillna(False).astype(bool)
        if "small_group" in flags
        else pd.Series(False, index=flags.index)
    )
    q_c = _first(flags, "q_value", "p_value")
    out = []
    if sig is None:
        return out
    significant = [g for g in flags.index if sig.get(g, False) and not small.get(g, False)]
    for g in significant:
        if {"overall_conversion", "rest_conversion"} <= set(flags.columns):
            # the breakdown's own test figures (exact also when groups overlap)
            rate = float(flags.loc[g, "overall_conversion"])
            rest = float(flags.loc[g, "rest_conversion"])
        else:  # groups partition the units: the rest is the sum of the other groups
            rate = end[g] / start[g] if start[g] > 0 else float("nan")
            rest_n, rest_x = start.drop(g).sum(), end.drop(g).sum()
            rest = rest_x / rest_n if rest_n > 0 else float("nan")
        direction = "lower" if rate < rest else "higher"
        q = md(" (q = {q:.2g})", q=float(flags.loc[g, q_c])) if q_c else esc("")
        out.append(
            md(
                "{what}'{g}' converts significantly {direction} than everyone else: "
                "{rate} vs {rest} from first to last step{q}.",
                what=what,
                g=g,
                direction=direction,
                rate=_pct(rate),
                rest=_pct(rest),
                q=q,
            )
        )
    if not significant:
        tested = int((~small).sum())
        out.append(
            md(
                "None of the {tested} {what}groups tested differs significantly from the rest "
                "(Benjamini-Hochberg, q < {alpha:g}).",
                tested=tested,
                what=what,
                alpha=alpha,
            )
        )
    n_small = int(small.sum())
    if n_small:
        out.append(
            md(
                "{n} {what}group{were} too small to test and {are} shown greyed out.",
                n=n_small,
                what=what,
                were="s were" if n_small > 1 else " was",
                are="are" if n_small > 1 else "is",
            )
        )
    return out


def _sizing(sizing: pd.DataFrame, currency: str = "") -> list[str]:
    if sizing is None or sizing.empty:
        return []
    s = sizing.sort_values("step").reset_index(drop=True)
    aud_c = _first(s, "audience", "audience_size", "users")
    parts = [md("{n:,} left after '{s}'", n=int(r[aud_c]), s=_name(r)) for _, r in s.iterrows()]
    out = [md("Drop-off audiences: {parts}.", parts=join(parts, "; "))]
    if "net_value" in s.columns and s["net_value"].notna().any():
        best = s.loc[s["net_value"].astype(float).idxmax()]
        if float(best["net_value"]) > 0:
            out.append(
                md(
                    "The most valuable win-back campaign targets the {n:,} users who left "
                    "after '{s}': expected net value {v}.",
                    n=int(best[aud_c]),
                    s=_name(best),
                    v=money(float(best["net_value"]), currency),
                )
            )
        else:
            out.append(
                md(
                    "At the assumed costs and conversion rates, no win-back campaign is "
                    "expected to pay for itself."
                )
            )
    return out


#: What a table shows for the rate of a period nobody entered (instead of an empty cell).
NO_DATA = "no data"

#: Columns of :func:`~crm_helpers.funnels.analysis.period_comparison` that have no value
#: when a period had no entrants.
_PERIOD_VALUES = ("previous_rate", "current_rate", "abs_change", "ci_low", "ci_high",
                  "relative_change", "p_value", "q_value")  # fmt: skip


def period_missing(comparison: pd.DataFrame) -> dict[str, str]:
    """``{column: "no data"}`` for :func:`crm_helpers.report.tables.show`: the columns of a
    period comparison whose missing values mean that a period had no entrants."""
    return {c: NO_DATA for c in _PERIOD_VALUES if c in comparison.columns}


def period_note(comparison: pd.DataFrame, period: str = "week") -> str | None:
    """A sentence naming the compared periods nobody entered (None when both had entrants).

    ``comparison`` is :func:`~crm_helpers.funnels.analysis.period_comparison` output.
    """
    if comparison.empty:
        return None
    row = comparison.iloc[0]
    empty = [
        (which, pd.Timestamp(row[f"{which}_period"]))
        for which in ("previous", "current")
        if int(row[f"{which}_entered"]) == 0
    ]
    if not empty:
        return None
    names = " and ".join(f"the {which} {period} ({p:%Y-%m-%d})" for which, p in empty)
    return md(
        "No user entered the funnel in {names}: {its} rates show 'no data' and the change "
        "cannot be computed.",
        names=names,
        its="its" if len(empty) == 1 else "their",
    )


def funnel_summary(
    table: pd.DataFrame,
    breakdown: pd.DataFrame | None = None,
    sizing: pd.DataFrame | None = None,
    *,
    by: str | None = None,
    alpha: float = 0.05,
    currency: str = "",
) -> list[str]:
    """Sentences summarising a funnel for a non-technical reader.

    Parameters
    ----------
    table : pandas.DataFrame
        ``funnel_table`` output, one row per step (``step``, ``label``/``event``, ``users``,
        ``ci_low``, ``ci_high``).
    breakdown : pandas.DataFrame, optional
        ``breakdown_table`` output, one row per (group, step) with ``group``, ``step``,
        ``users`` and per group ``significant``, ``small_group``, ``q_value`` and, when
        present, ``overall_conversion``/``rest_conversion`` (else the rest's rate is summed
        from the other groups' counts).
    sizing : pandas.DataFrame, optional
        ``campaign_sizing`` output, one row per drop-off step with the audience size
        (``audience``/``audience_size``) and ``net_value``.
    by
        Name of the breakdown property, used in the wording.
    alpha
        The false-discovery level the breakdown used (for the wording only).
    currency
        The money's currency (``EUR``, ``€``; empty: the amount alone), for the net value.

    Returns
    -------
    list of str
        Overall conversion, the biggest loss (count and share), the significant groups with
        their rate vs the rest of the users (from the breakdown counts), small groups, and
        the drop-off audiences with the most valuable campaign.
    """
    out = _overall(table)
    if breakdown is not None:
        out += _breakdown(breakdown, by, alpha)
    if sizing is not None:
        out += _sizing(sizing, currency)
    return out

"""Funnel figures: each takes the small DataFrame a compute function returned and only draws.

Nothing here touches Ibis or event-level data; every function maps columns of a tidy
pandas frame onto a :class:`plotly.graph_objects.Figure`:

==========================  ======================================================
figure                      input frame (producer)
==========================  ======================================================
:func:`plot_funnel`         ``funnel_table`` (one row per step)
:func:`plot_dropoff`        ``funnel_table``
:func:`plot_time_to_convert`  ``time_to_convert_histogram`` (one row per bin)
:func:`plot_breakdown`      ``breakdown_table`` (one row per (group, step))
:func:`plot_trend`          ``trend_table`` (one row per (period, step))
:func:`plot_sizing`         ``campaign_sizing`` (one row per drop-off step)
:func:`plot_drivers`        ``conversion_drivers`` (one row per factor)
==========================  ======================================================

Column names follow the producers in :mod:`crm_helpers.funnels`; where a producer may use
one of a few spellings (``users``/``count``) the first present one is used and a missing
column raises a ``KeyError`` naming the candidates. Each trace carries a ``meta`` dict with
what it shows (group, flags), so tests and callers can inspect figures without pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from crm_helpers.plots.theme import (
    COLORS,
    GREY,
    HIGHLIGHT,
    NEGATIVE,
    POSITIVE,
    axis_title,
    esc,
    figure,
    money_title,
    rate_title,
)

__all__ = [
    "COLORS",
    "plot_breakdown",
    "plot_drivers",
    "plot_dropoff",
    "plot_funnel",
    "plot_sizing",
    "plot_time_to_convert",
    "plot_trend",
]


def _col(df: pd.DataFrame, *candidates: str, required: bool = True) -> str | None:
    """The first of ``candidates`` that is a column of ``df``."""
    for c in candidates:
        if c in df.columns:
            return c
    if required:
        raise KeyError(
            f"expected one of the columns {list(candidates)}; the frame has {list(df.columns)}"
        )
    return None


def _floats(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _step_names(df: pd.DataFrame) -> list[str]:
    """Display name per row: ``label`` if set, else ``event``, else ``step k`` (escaped)."""
    names = []
    for _, row in df.iterrows():
        name = None
        for c in ("label", "event"):
            if c in df.columns and isinstance(row[c], str) and row[c]:
                name = row[c]
                break
        if name is None:
            name = f"step {int(row['step'])}" if "step" in df.columns else str(row.name)
        names.append(esc(name))
    return names


def _unique_names(names: Sequence[str], steps: Sequence[int]) -> list[str]:
    """Prefix ``k.`` so a repeated event (A, A, B) still gives distinct categories."""
    return [f"{int(s)}. {n}" for s, n in zip(steps, names, strict=True)]


#: The conversion axes: a share of the users who did the first step.
CONVERSION_TITLE = rate_title("conversion", "the first step's users")


def _pct(x: float) -> str:
    return "" if not np.isfinite(x) else f"{100 * x:.1f}%"


def plot_funnel(table: pd.DataFrame, *, title: str | None = "Funnel") -> go.Figure:
    """Bars of users per step, labelled with conversion from the first step and its Wilson CI.

    Parameters
    ----------
    table : pandas.DataFrame
        ``funnel_table`` output, one row per step: ``step``, ``label``/``event``, ``users``,
        ``conversion_from_start``, ``ci_low``, ``ci_high`` (Wilson CI of
        conversion_from_start), optionally ``conversion_from_previous``.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace with one bar per step. The error bars show the CI of the conversion
        from start on the users scale: ``[ci_low, ci_high] * users at step 1`` (the CI of
        the count a step would reach with the same entrants).
    """
    t = table.sort_values("step")
    users_col = _col(t, "users", "attempts")
    users = _floats(t[users_col])
    rate = _floats(t["conversion_from_start"])
    lo, hi = _floats(t["ci_low"]), _floats(t["ci_high"])
    n1 = users[0] if len(users) else np.nan
    x = _unique_names(_step_names(t), t["step"].tolist())
    prev = (
        _floats(t["conversion_from_previous"])
        if "conversion_from_previous" in t
        else np.full(len(t), np.nan)
    )
    text = [_pct(r) for r in rate]
    custom = np.column_stack([rate, lo, hi, prev])
    fig = figure(title, yaxis_title=axis_title(users_col), xaxis_title="Funnel step",
                 showlegend=False)  # fmt: skip
    fig.add_trace(
        go.Bar(
            x=x,
            y=users,
            text=text,
            textposition="outside",
            marker_color=COLORS[0],
            error_y=dict(
                type="data",
                symmetric=False,
                array=np.clip((hi - rate) * n1, 0, None),
                arrayminus=np.clip((rate - lo) * n1, 0, None),
                color="#444",
            ),
            customdata=custom,
            hovertemplate=(
                "%{x}<br>%{y:,.0f} " + users_col + "<br>from start: %{customdata[0]:.1%} "
                "(95% CI %{customdata[1]:.1%} to %{customdata[2]:.1%})"
                "<br>from previous: %{customdata[3]:.1%}<extra></extra>"
            ),
            meta={"kind": "funnel"},
            name=users_col,
        )
    )
    return fig


def plot_dropoff(table: pd.DataFrame, *, title: str | None = "Drop-off per step") -> go.Figure:
    """Bars of users lost at each transition (step k-1 -> k), labelled with the share lost.

    Parameters
    ----------
    table : pandas.DataFrame
        ``funnel_table`` output: ``step``, ``label``/``event``, ``dropoff`` (users lost from
        the previous step), ``dropoff_share`` (of the previous step's users).

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace with one bar per transition (n_steps - 1 bars); the largest drop-off
        is highlighted (``meta["largest"]`` is its index).
    """
    t = table.sort_values("step")
    names = _unique_names(_step_names(t), t["step"].tolist())
    t = t.assign(_name=names).iloc[1:]
    prev_names = names[:-1]
    x = [f"{a} → {b}" for a, b in zip(prev_names, t["_name"], strict=True)]
    drop = _floats(t["dropoff"])
    share = _floats(t["dropoff_share"])
    largest = int(np.nanargmax(drop)) if len(drop) and np.isfinite(drop).any() else -1
    colors = [HIGHLIGHT if i == largest else COLORS[0] for i in range(len(drop))]
    fig = figure(title, yaxis_title="Users lost", xaxis_title="From step → to step",
                 showlegend=False)  # fmt: skip
    fig.add_trace(
        go.Bar(
            x=x,
            y=drop,
            text=[_pct(s) for s in share],
            textposition="outside",
            marker_color=colors,
            customdata=share,
            hovertemplate="%{x}<br>%{y:,.0f} lost (%{customdata:.1%} of previous step)"
            "<extra></extra>",
            meta={"kind": "dropoff", "largest": largest},
            name="drop-off",
        )
    )
    return fig


_UNITS: tuple[tuple[str, float], ...] = (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0))


def _time_unit(max_seconds: float) -> tuple[str, float]:
    for name, size in _UNITS:
        if max_seconds >= 2 * size:
            return name, size
    return "seconds", 1.0


def _duration(seconds: float) -> str:
    """``90`` -> ``"1.5 min"``: a short human duration."""
    if not np.isfinite(seconds):
        return "∞"
    for name, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {name}"
    return f"{seconds:.3g} s"


def plot_time_to_convert(hist: pd.DataFrame, *, title: str | None = "Time to convert") -> go.Figure:
    """Histogram of the time from the previous step to the converting step.

    Parameters
    ----------
    hist : pandas.DataFrame
        ``time_to_convert_histogram`` output, one row per bin: left and right bin edges in
        seconds (``bin_start``/``bin_end``, ``left``/``right``, ``lower``/``upper`` or
        ``bin_left``/``bin_right``) and the number of users (``users`` or ``count``).

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace, one bar per bin. Equal-width bins are placed at the bin centre with
        the bin width, in a readable unit (seconds, minutes, hours or days:
        ``meta["unit"]``); unequal bins (e.g. 1 min, 10 min, 1 h, 1 d edges) are drawn as
        equally wide categories labelled ``"1 min-10 min"`` (``meta["unit"] = "category"``).
    """
    left_c = _col(hist, "bin_start", "bin_left", "left", "lower", "start_seconds", "lo")
    right_c = _col(hist, "bin_end", "bin_right", "right", "upper", "end_seconds", "hi")
    count_c = _col(hist, "users", "count", "n", "attempts")
    left, right, count = _floats(hist[left_c]), _floats(hist[right_c]), _floats(hist[count_c])
    widths = right - left
    uniform = len(widths) == 0 or np.allclose(widths, widths[0], rtol=1e-6)
    if uniform:
        finite_right = right[np.isfinite(right)]
        unit, size = _time_unit(float(finite_right.max()) if finite_right.size else 0.0)
        x, width, xlabel = (left + right) / 2 / size, widths / size, f"Time to convert ({unit})"
    else:
        unit, size, width = "category", 1.0, None
        xlabel = "Time to convert (bins; s = seconds, h = hours, d = days)"
        x = [f"{_duration(a)}-{_duration(b)}" for a, b in zip(left, right, strict=True)]
    fig = figure(title, xaxis_title=xlabel, yaxis_title=axis_title(count_c))
    fig.add_trace(
        go.Bar(
            x=x,
            y=count,
            width=width,
            marker_color=COLORS[0],
            marker_line_width=0,
            customdata=np.column_stack([left / size, right / size]),
            hovertemplate=(
                "%{customdata[0]:.3g} to %{customdata[1]:.3g} " + unit if uniform else "%{x}"
            )
            + "<br>%{y:,.0f}<extra></extra>",
            meta={"kind": "time_to_convert", "unit": unit},
            name=count_c,
        )
    )
    fig.update_layout(bargap=0 if uniform else 0.05, showlegend=False)
    return fig


def plot_breakdown(
    breakdown: pd.DataFrame,
    *,
    title: str | None = "Conversion by group",
    steps: Sequence[int] | None = None,
) -> go.Figure:
    """Grouped bars of conversion from the first step per group, with Wilson CIs.

    Parameters
    ----------
    breakdown : pandas.DataFrame
        ``breakdown_table`` output, one row per (group, step): ``group``, ``step``,
        ``label``/``event``, ``conversion_from_start``, ``ci_low``, ``ci_high``, and per
        group ``significant`` (bool: differs from the rest after BH) and ``small_group``
        (bool: too few users to test). Missing flags count as False.
    steps
        Steps to show (default: all steps after the first, whose conversion is 1).

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per group (x = step), each tested group in its own colour.
        Significant groups are highlighted: opaque, thick outline, ``*`` after the name;
        the other tested groups are translucent; small groups are grey.
        ``trace.meta`` holds ``group``, ``significant`` and ``small_group``.
    """
    b = breakdown.copy()
    if steps is None:
        steps = sorted(s for s in b["step"].unique() if s > 1) or sorted(b["step"].unique())
    b = b[b["step"].isin(list(steps))].sort_values(["step"])
    step_rows = b.drop_duplicates("step").sort_values("step")
    names = dict(
        zip(
            step_rows["step"],
            _unique_names(_step_names(step_rows), step_rows["step"].tolist()),
            strict=True,
        )
    )
    fig = figure(title, yaxis_title=CONVERSION_TITLE, xaxis_title="Funnel step",
                 barmode="group", yaxis_tickformat=".0%")  # fmt: skip
    for i, (group, g) in enumerate(b.groupby("group", sort=True)):
        significant = bool(g["significant"].fillna(False).any()) if "significant" in g else False
        small = bool(g["small_group"].fillna(False).any()) if "small_group" in g else False
        rate = _floats(g["conversion_from_start"])
        lo, hi = _floats(g["ci_low"]), _floats(g["ci_high"])
        if small:
            color, opacity, line_w = GREY, 0.5, 0
        elif significant:
            color, opacity, line_w = COLORS[i % len(COLORS)], 1.0, 3
        else:
            color, opacity, line_w = COLORS[i % len(COLORS)], 0.45, 0
        label = f"{esc(group)}{' *' if significant else ''}{' (small)' if small else ''}"
        fig.add_trace(
            go.Bar(
                x=[names[s] for s in g["step"]],
                y=rate,
                name=label,
                marker=dict(color=color, opacity=opacity, line=dict(width=line_w, color="#222")),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=np.clip(hi - rate, 0, None),
                    arrayminus=np.clip(rate - lo, 0, None),
                ),
                customdata=np.column_stack([lo, hi]),
                hovertemplate=esc(group)
                + "<br>%{x}: %{y:.1%} (95% CI %{customdata[0]:.1%} to %{customdata[1]:.1%})"
                "<extra></extra>",
                meta={"group": str(group), "significant": significant, "small_group": small},
            )
        )
    return fig


def plot_trend(
    trend: pd.DataFrame,
    *,
    title: str | None = "Conversion over time",
    steps: Sequence[int] | None = None,
) -> go.Figure:
    """Conversion from the first step per period of entry, one line per step, with CI bands.

    Parameters
    ----------
    trend : pandas.DataFrame
        ``trend_table`` output, one row per (period, step): ``period`` (start of the period
        of entry), ``step``, ``label``/``event``, ``conversion_from_start`` (or
        ``conversion``), ``ci_low``, ``ci_high``.
    steps
        Steps to draw (default: the last step only, i.e. overall conversion).

    Returns
    -------
    plotly.graph_objects.Figure
        Per step two traces: a filled CI band (``meta["band"] = True``) then the line with
        one point per period. With a ``window_complete`` column, periods whose users had
        not yet had the full conversion window (right-censored) get open markers and say so
        on hover.
    """
    rate_c = _col(trend, "conversion_from_start", "conversion", "rate")
    period_c = _col(trend, "period", "period_start", "entry_period")
    if steps is None:
        steps = [int(trend["step"].max())]
    fig = figure(title, yaxis_title=CONVERSION_TITLE, xaxis_title="Period of entry (its start)",
                 yaxis_tickformat=".0%")  # fmt: skip
    for i, s in enumerate(steps):
        g = trend[trend["step"] == s].sort_values(period_c)
        if g.empty:
            continue
        name = _unique_names(_step_names(g.iloc[:1]), [s])[0]
        x = list(g[period_c])
        lo, hi = _floats(g["ci_low"]), _floats(g["ci_high"])
        color = COLORS[i % len(COLORS)]
        complete = (
            g["window_complete"].astype(bool).tolist()
            if "window_complete" in g
            else [True] * len(g)
        )
        note = ["" if c else "<br>window not complete: still converting" for c in complete]
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=np.concatenate([hi, lo[::-1]]),
                fill="toself",
                fillcolor=color,
                opacity=0.2,
                line=dict(width=0),
                hoverinfo="skip",
                showlegend=False,
                name=f"{name} 95% CI",
                meta={"step": int(s), "band": True},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_floats(g[rate_c]),
                mode="lines+markers",
                line=dict(color=color),
                marker=dict(symbol=["circle" if c else "circle-open" for c in complete], size=7),
                customdata=note,
                name=name,
                hovertemplate="%{x}<br>%{y:.1%}%{customdata}<extra>" + name + "</extra>",
                meta={"step": int(s), "band": False, "incomplete": complete.count(False)},
            )
        )
    return fig


def plot_sizing(
    sizing: pd.DataFrame, *, title: str | None = "Campaign sizing", currency: str = ""
) -> go.Figure:
    """Net value of a win-back campaign per drop-off step (positive green, negative red).

    Parameters
    ----------
    sizing : pandas.DataFrame
        ``campaign_sizing`` output, one row per drop-off step: ``step`` and
        ``label``/``event`` (the step the audience reached), audience size (``audience`` or
        ``audience_size``), ``net_value``, optionally ``roi``.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace, one bar per drop-off step, text = audience size; the y axis names
        ``currency`` (:func:`~crm_helpers.plots.theme.money_title`).
    """
    s = sizing.sort_values("step")
    aud_c = _col(s, "audience", "audience_size", "users")
    net = _floats(s["net_value"])
    aud = _floats(s[aud_c])
    roi = _floats(s["roi"]) if "roi" in s else np.full(len(s), np.nan)
    x = [f"left after {n}" for n in _unique_names(_step_names(s), s["step"].tolist())]
    fig = figure(title, yaxis_title=money_title("expected net value", currency),
                 xaxis_title="Drop-off audience", showlegend=False)  # fmt: skip
    fig.add_trace(
        go.Bar(
            x=x,
            y=net,
            marker_color=[POSITIVE if v >= 0 else NEGATIVE for v in net],
            text=[f"{a:,.0f} users" for a in aud],
            textposition="outside",
            customdata=np.column_stack([aud, roi]),
            hovertemplate="%{x}<br>audience %{customdata[0]:,.0f}<br>net %{y:,.0f}"
            "<br>ROI %{customdata[1]:.2f}<extra></extra>",
            meta={"kind": "sizing"},
        )
    )
    return fig


def _driver_labels(d: pd.DataFrame) -> list[str]:
    return [esc(v) for v in _driver_texts(d)]


def _driver_texts(d: pd.DataFrame) -> list[str]:
    if "label" in d.columns:
        return [str(v) for v in d["label"]]
    if "feature" in d.columns:
        return [str(v) for v in d["feature"]]
    prop = _col(d, "property", "factor", "kind")
    val = _col(d, "value", "level", required=False)
    if val is None:
        return [str(p) for p in d[prop]]
    return [f"{p} = {v}" if pd.notna(v) else str(p) for p, v in zip(d[prop], d[val], strict=True)]


def _log_ticks(values: np.ndarray) -> dict:
    """Ticks 1-2-5 per decade over the finite positive ``values`` (plotly's own log ticks
    crowd the axis with unlabelled 2..9 minor labels)."""
    v = values[np.isfinite(values) & (values > 0)]
    if not v.size:
        return {}
    lo, hi = float(np.floor(np.log10(v.min()))), float(np.ceil(np.log10(v.max())))
    ticks = [m * 10**e for e in range(int(lo), int(hi) + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if v.min() / 1.5 <= t <= v.max() * 1.5] or [1.0]
    return {"tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}


def plot_drivers(
    drivers: pd.DataFrame, *, title: str | None = "Conversion drivers (odds ratio)"
) -> go.Figure:
    """Forest plot: odds ratio of converting with its CI per factor, on a log x axis.

    Parameters
    ----------
    drivers : pandas.DataFrame
        ``conversion_drivers`` output, one row per factor: a label (``label``/``feature``,
        or ``property`` and ``value``), ``odds_ratio``, ``ci_low``, ``ci_high``, optionally
        ``significant``.

    Returns
    -------
    plotly.graph_objects.Figure
        One scatter trace, one point per factor (top row = first row of the frame) with
        asymmetric error bars; significant factors in the highlight colour
        (``meta["significant"]``), a dashed reference line at odds ratio 1, log x axis.
    """
    d = drivers.reset_index(drop=True)
    or_c = _col(d, "odds_ratio", "or")
    ratio = _floats(d[or_c])
    lo, hi = _floats(d["ci_low"]), _floats(d["ci_high"])
    sig = (
        d["significant"].fillna(False).astype(bool).tolist()
        if "significant" in d
        else [False] * len(d)
    )
    labels = _driver_labels(d)
    fig = figure(title, xaxis_title="Odds ratio of converting (1 = no difference, log scale)",
                 yaxis_title="Factor", showlegend=False)  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=ratio,
            y=labels,
            mode="markers",
            marker=dict(color=[HIGHLIGHT if s else COLORS[0] for s in sig], size=9),
            error_x=dict(
                type="data",
                symmetric=False,
                array=np.clip(hi - ratio, 0, None),
                arrayminus=np.clip(ratio - lo, 0, None),
            ),
            customdata=np.column_stack([lo, hi]),
            hovertemplate="%{y}<br>OR %{x:.2f} (95% CI %{customdata[0]:.2f} to "
            "%{customdata[1]:.2f})<extra></extra>",
            meta={"kind": "drivers", "significant": sig},
        )
    )
    fig.add_vline(x=1.0, line_dash="dash", line_color="#666")
    fig.update_xaxes(type="log", **_log_ticks(np.concatenate([lo, hi, ratio])))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(300, 40 + 28 * len(d)))
    return fig

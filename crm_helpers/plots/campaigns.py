"""Campaign figures: each takes the small DataFrame a campaign function returned and only draws.

==============================  ===========================================================
figure                          input frame (producer)
==============================  ===========================================================
:func:`plot_scorecard`          ``analysis.rates_table`` of the channel counts
:func:`plot_weekly`             ``analysis.rates_table`` of ``core.weekly_counts``
:func:`plot_hour_heatmap`       ``analysis.weekday_hour_grid`` (weekday x hour)
:func:`plot_hours`              ``analysis.hour_table`` (one row per group and hour)
:func:`plot_frequency`          ``frequency.frequency_table`` and a ``frequency.DecayFit``
==============================  ===========================================================

Names from the data (channels, campaign ids) are shown as plotly text, which plotly does
not escape: they go through :func:`crm_helpers.plots.theme.esc`, which escapes ``< > &``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from crm_helpers.plots.theme import (
    COLORS,
    GREY,
    HIGHLIGHT,
    axis_title,
    esc,
    figure,
    rate_title,
)

__all__ = ["plot_frequency", "plot_hour_heatmap", "plot_hours", "plot_scorecard", "plot_weekly"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _f(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _err(rate, lo, hi) -> dict:
    return {"type": "data", "symmetric": False, "array": hi - rate, "arrayminus": rate - lo}


def plot_scorecard(
    table: pd.DataFrame, by: str = "channel", title: str | None = "Response rates by channel"
) -> go.Figure:
    """Grouped bars of open, click and conversion rate per group, with Wilson intervals.

    Rates the log lacks (all null) are left out.
    """
    fig = figure(title, yaxis_title=rate_title("response rate", "messages sent"),
                 xaxis_title=axis_title(by), yaxis_tickformat=".0%", barmode="group")  # fmt: skip
    x = [esc(v) for v in table[by]]
    for i, rate in enumerate(("open_rate", "click_rate", "conversion_rate")):
        r = _f(table[rate])
        if not np.isfinite(r).any():
            continue
        lo, hi = _f(table[f"{rate}_ci_low"]), _f(table[f"{rate}_ci_high"])
        fig.add_trace(
            go.Bar(x=x, y=r, name=rate.replace("_", " "), marker_color=COLORS[i],
                   error_y=_err(r, lo, hi), meta={"rate": rate})
        )  # fmt: skip
    return fig


def plot_weekly(
    table: pd.DataFrame, rate: str = "click_rate", by: str = "channel", title: str | None = None
) -> go.Figure:
    """One line per group of a rate by week of sending, with its Wilson band as error bars."""
    fig = figure(title or f"{rate.replace('_', ' ').capitalize()} by week",
                 yaxis_title=rate_title(rate.replace("_", " "), "messages sent"),
                 xaxis_title="Week of sending", yaxis_tickformat=".1%")  # fmt: skip
    for i, (group, g) in enumerate(table.groupby(by, sort=True)):
        g = g.sort_values("week")
        r = _f(g[rate])
        fig.add_trace(
            go.Scatter(x=g["week"], y=r, mode="lines+markers", name=esc(group),
                       line_color=COLORS[i % len(COLORS)],
                       error_y=_err(r, _f(g[f"{rate}_ci_low"]), _f(g[f"{rate}_ci_high"])),
                       meta={"group": str(group)})
        )  # fmt: skip
    return fig


def plot_hour_heatmap(
    grid: pd.DataFrame, metric: str = "click_rate", title: str | None = None
) -> go.Figure:
    """Heatmap of a rate by weekday (rows) and send hour (columns); blank where nothing was sent."""
    fig = figure(title or f"{metric.replace('_', ' ').capitalize()} by send weekday and hour",
                 xaxis_title="Send hour (0-23)", yaxis_title="Send weekday", height=360)  # fmt: skip
    z = grid.to_numpy(dtype=float)
    fig.add_trace(
        go.Heatmap(z=z, x=list(grid.columns), y=[WEEKDAYS[i] for i in grid.index],
                   colorscale="Blues",
                   colorbar={"tickformat": ".1%", "title": {"text": rate_title(metric.replace("_", " "), "sent")}},
                   hovertemplate="%{y} %{x}:00: %{z:.2%}<extra></extra>")
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    return fig


def plot_hours(
    hours: pd.DataFrame,
    by: str = "channel",
    title: str | None = None,
    min_sends: int | None = None,
    metric: str = "",
) -> go.Figure:
    """Rate by send hour per group with Wilson intervals; significantly better hours marked.

    Only the hours ``analysis.hour_table`` tested (``tested``: at least ``min_sends`` sends)
    are drawn: an hour with a handful of sends has an interval spanning most of the scale
    and would flatten the real pattern. A note under the chart names the hours left out
    (they stay in ``metrics.json`` ``by_hour``); ``min_sends`` is only for that note.
    ``metric`` (``click_rate``, ...) names the rate on the y axis (default: "rate").
    """
    what = metric.replace("_", " ") if metric else "rate"
    fig = figure(title or f"{axis_title(what)} by send hour (filled: significantly above the "
                 "channel's other hours)", xaxis_title="Send hour (0-23)",
                 yaxis_title=rate_title(what, "messages sent"), yaxis_tickformat=".1%")  # fmt: skip
    tested = (
        hours["tested"].astype(bool) if "tested" in hours.columns else pd.Series(True, hours.index)
    )
    for i, (group, g) in enumerate(hours[tested].groupby(by, sort=True)):
        # one row per hour 0-23, NaN where not drawn, so the line breaks instead of bridging
        g = g.set_index("hour").reindex(range(24)).rename_axis("hour").reset_index()
        r = _f(g["rate"])
        better = g["better"].fillna(False).astype(bool).to_numpy()
        fig.add_trace(
            go.Scatter(x=g["hour"], y=r, mode="lines+markers", name=esc(group),
                       line_color=COLORS[i % len(COLORS)],
                       marker={"size": np.where(better, 12, 6),
                               "symbol": np.where(better, "circle", "circle-open")},
                       error_y=_err(r, _f(g["ci_low"]), _f(g["ci_high"])),
                       meta={"group": str(group), "better": g["hour"][better].tolist()})
        )  # fmt: skip
    left_out = hours[~tested]
    if len(left_out):
        parts = []
        for group, g in left_out.groupby(by, sort=True):
            hs = ", ".join(f"{int(h):02d}" for h in sorted(g["hour"]))
            parts.append(f"{esc(group)}: {hs} h ({int(g['sent'].sum()):,} sends)")
        few = f"fewer than {min_sends:,} sends each" if min_sends else "too few sends to test"
        fig.add_annotation(
            text=f"Not drawn ({few}, not tested; counts in metrics.json by_hour): "
            + "; ".join(parts),
            xref="paper", yref="paper", x=0, y=-0.3, yanchor="top", showarrow=False,
            xanchor="left", font={"size": 11, "color": GREY},
        )  # fmt: skip
        fig.update_layout(margin={"b": 120})
    return fig


def plot_frequency(
    table: pd.DataFrame,
    fit=None,
    cap: int | None = None,
    metric: str = "click_rate",
    min_sends: int = 100,
) -> go.Figure:
    """Response rate by messages received in the window before, the fitted decay and the cap.

    The y axis fits the bands with at least ``min_sends`` messages; where a smaller band's
    interval reaches far above them, it is cut at the chart's top and a note names the band.
    """
    fig = figure(f"{metric.replace('_', ' ').capitalize()} by messages received just before",
                 xaxis_title="Messages received in the window before this one",
                 yaxis_tickformat=".1%",
                 yaxis_title=rate_title(metric.replace("_", " "), "messages sent"))  # fmt: skip
    r = _f(table["rate"])
    fig.add_trace(
        go.Bar(x=table["label"], y=r, marker_color=GREY, name="observed",
               error_y=_err(r, _f(table["ci_low"]), _f(table["ci_high"])),
               customdata=table["sent"], hovertemplate="%{x}: %{y:.2%} of %{customdata:,} sent")
    )  # fmt: skip
    if fit is not None:
        k = table["count"].to_numpy(int)
        fig.add_trace(
            go.Scatter(x=table["label"], y=fit.rate(k), mode="lines", name="fitted decay",
                       line_color=HIGHLIGHT)
        )  # fmt: skip
    if cap is not None:
        fig.add_annotation(text=f"cap: {cap} per window", x=str(cap), y=float(np.nanmax(r)),
                           showarrow=True)  # fmt: skip
    # a band of a handful of messages (e.g. 6 sends at 7 before) has an interval of most of
    # the scale: the y axis fits the bands with at least ``min_sends`` and cuts the others'
    # intervals at its top, saying so, rather than flattening every band that has data
    sent = table["sent"].to_numpy(float)
    hi = _f(table["ci_high"])
    solid = sent >= min_sends
    if solid.any() and np.nanmax(hi) > np.nanmax(hi[solid]) * 1.5:
        top = float(np.nanmax(hi[solid])) * 1.3
        fig.update_yaxes(range=[0, top])
        cut = ", ".join(str(x) for x in table["label"][(~solid) & (hi > top)])
        fig.add_annotation(
            text=f"Intervals cut at the top of the chart for bands of fewer than {min_sends:,} "
            f"messages ({cut})",
            xref="paper", yref="paper", x=0, y=-0.3, yanchor="top", showarrow=False,
            xanchor="left", font={"size": 11, "color": GREY},
        )  # fmt: skip
        fig.update_layout(margin={"b": 120})
    return fig

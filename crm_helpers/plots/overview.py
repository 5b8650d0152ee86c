"""Data-overview figures: draw the frames of :mod:`crm_helpers.overview`, nothing else.

Names from the data go through :func:`crm_helpers.plots.theme.esc` (plotly renders HTML).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from crm_helpers.plots import theme

__all__ = [
    "plot_event_counts",
    "plot_events_over_time",
    "plot_table_rows",
    "plot_users_by_attribute",
]


def _require(df: pd.DataFrame, cols: list[str], producer: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"expected columns {missing} (from {producer}); got {list(df.columns)}")


def plot_users_by_attribute(df: pd.DataFrame, attribute: str, top_n: int = 20) -> go.Figure:
    """Horizontal bars of users per attribute value.

    Parameters
    ----------
    df
        :func:`crm_helpers.overview.users_by_attribute` output (``value, users, share``).
    attribute
        The attribute's name (title).
    top_n
        Show the ``top_n`` largest values.
    """
    _require(df, ["value", "users", "share"], "users_by_attribute")
    d = df.head(top_n).iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=d["users"],
            y=theme.esc_all(d["value"]),
            orientation="h",
            marker_color=theme.COLORS[0],
            customdata=d["share"],
            hovertemplate="%{y}: %{x:,} users (%{customdata:.1%})<extra></extra>",
            text=[f"{s:.0%}" for s in d["share"]],
            textposition="auto",
        )
    )
    fig.update_layout(
        template=theme.TEMPLATE,
        title=theme.esc(f"Users by {attribute}"),
        xaxis_title="Users",
        yaxis_title=theme.esc(theme.axis_title(str(attribute))),
        height=max(260, 60 + 28 * len(d)),
    )
    return fig


def plot_events_over_time(df: pd.DataFrame, top_n: int | None = 10) -> go.Figure:
    """One line per event name: events per period.

    Parameters
    ----------
    df
        :func:`crm_helpers.overview.events_over_time` output (``period, event, count``).
    top_n
        Draw the ``top_n`` event names with most events (all when None).
    """
    _require(df, ["period", "event", "count"], "events_over_time")
    totals = df.groupby("event")["count"].sum().sort_values(ascending=False, kind="mergesort")
    keep = list(totals.index[:top_n] if top_n else totals.index)
    fig = go.Figure()
    for i, name in enumerate(keep):
        d = df[df["event"] == name].sort_values("period")
        fig.add_trace(
            go.Scatter(
                x=d["period"],
                y=d["count"],
                mode="lines+markers" if len(d) < 40 else "lines",
                name=theme.esc(name),
                line={"color": theme.COLORS[i % len(theme.COLORS)]},
                hovertemplate=f"{theme.esc(name)}<br>%{{x|%Y-%m-%d}}: %{{y:,}}<extra></extra>",
            )
        )
    fig.update_layout(
        template=theme.TEMPLATE,
        title="Events over time",
        xaxis_title="Period (its start date)",
        yaxis_title="Events per period",
        hovermode="x unified",
    )
    return fig


def plot_event_counts(df: pd.DataFrame, top_n: int = 15) -> go.Figure:
    """Horizontal bars of events per event name (largest on top).

    Parameters
    ----------
    df
        :func:`crm_helpers.overview.event_counts` output (``event, count, users, share``).
    """
    _require(df, ["event", "count", "users", "share"], "event_counts")
    d = df.head(top_n).iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=d["count"],
            y=theme.esc_all(d["event"]),
            orientation="h",
            marker_color=theme.COLORS[3],
            customdata=d[["users", "share"]].to_numpy(),
            hovertemplate=(
                "%{y}: %{x:,} events by %{customdata[0]:,} users "
                "(%{customdata[1]:.1%} of events)<extra></extra>"
            ),
        )
    )
    fig.update_layout(
        template=theme.TEMPLATE,
        title="Events by name",
        xaxis_title="Events",
        yaxis_title="Event name",
        height=max(260, 60 + 28 * len(d)),
    )
    return fig


def plot_table_rows(df: pd.DataFrame) -> go.Figure:
    """Bars of rows per table (log scale: events dwarf the rest).

    Parameters
    ----------
    df
        :func:`crm_helpers.overview.table_summary` output.
    """
    _require(df, ["table", "rows"], "table_summary")
    fig = go.Figure(
        go.Bar(
            x=df["table"],
            y=df["rows"],
            marker_color=theme.COLORS[0],
            text=[f"{r:,}" for r in df["rows"]],
            textposition="outside",
            hovertemplate="%{x}: %{y:,} rows<extra></extra>",
        )
    )
    fig.update_layout(
        template=theme.TEMPLATE,
        title="Rows per table",
        xaxis_title="Table",
        yaxis={"type": "log", "dtick": 1, "title": {"text": "Rows (log scale)"}},
    )
    return fig

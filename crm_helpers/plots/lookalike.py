"""Lookalike figures: each takes a small frame from :mod:`crm_helpers.lookalike` and only draws.

==============================  ======================================================
figure                          input frame (producer)
==============================  ======================================================
:func:`plot_lift_curve`         ``{model: gain_table}`` (``audit.gain_table``)
:func:`plot_recall_vs_n`        ``{model: gain_table}``
:func:`plot_score_histogram`    ``profile.score_distribution``
:func:`plot_profile`            ``profile.profile_table`` rows (e.g. ``top_differences``)
:func:`plot_feature_importance` ``profile.driver_table``
:func:`plot_segment_overlap`    ``overlap.overlap_table``
==============================  ======================================================

Each trace carries ``meta`` (the model or group it shows) so tests can inspect figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from crm_helpers.plots.theme import (
    COLORS,
    GREY,
    NEGATIVE,
    POSITIVE,
    esc,
    esc_all,
    figure,
    rate_title,
)

__all__ = [
    "plot_feature_importance",
    "plot_lift_curve",
    "plot_profile",
    "plot_recall_vs_n",
    "plot_score_histogram",
    "plot_segment_overlap",
]


def _curves(gains: dict[str, pd.DataFrame | None]) -> dict[str, pd.DataFrame]:
    return {k: v for k, v in gains.items() if v is not None and len(v)}


def plot_lift_curve(gains: dict[str, pd.DataFrame | None], title: str | None = None) -> go.Figure:
    """Share of held-out seeds captured (y) by the top share of candidates (x), per model.

    The diagonal is what a random ranking captures on average.
    """
    fig = figure(
        title or "Held-out seeds captured by the top of the ranking",
        xaxis_title=rate_title("top of the ranking", "candidates"),
        yaxis_title=rate_title("held-out seeds captured", "held-out seeds"),
        xaxis_tickformat=".0%",
        yaxis_tickformat=".0%",
    )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="random (expected)",
            line={"color": GREY, "dash": "dash"},
            meta={"model": "expected_random"},
        )
    )
    for i, (name, g) in enumerate(_curves(gains).items()):
        fig.add_trace(
            go.Scatter(
                x=np.r_[0, g["share"]],
                y=np.r_[0, g["recall"]],
                mode="lines",
                name=esc(name),
                line={"color": COLORS[i % len(COLORS)], "width": 3 if i == 0 else 1.5},
                meta={"model": name},
            )
        )
    return fig


def plot_recall_vs_n(
    gains: dict[str, pd.DataFrame | None], n: int | None = None, title: str | None = None
) -> go.Figure:
    """Held-out recall (y) against audience size in users (x), per model; ``n`` marked."""
    fig = figure(
        title or "Held-out recall by audience size",
        xaxis_title="Audience size (users)",
        yaxis_title=rate_title("held-out recall", "held-out seeds"),
        yaxis_tickformat=".0%",
    )
    for i, (name, g) in enumerate(_curves(gains).items()):
        fig.add_trace(
            go.Scatter(
                x=g["k"],
                y=g["recall"],
                mode="lines",
                name=esc(name),
                line={"color": COLORS[i % len(COLORS)], "width": 3 if i == 0 else 1.5},
                meta={"model": name},
            )
        )
    if n:
        fig.add_vline(x=n, line={"color": GREY, "dash": "dot"}, annotation_text="audience size")
    return fig


def plot_score_histogram(dist: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Users per score bin: the whole population and the audience (overlaid bars)."""
    mid = (dist["left"] + dist["right"]) / 2
    width = float((dist["right"] - dist["left"]).iloc[0]) if len(dist) else 1.0
    fig = figure(
        title or "Score distribution",
        xaxis_title="Lookalike score (higher: more like the seeds)",
        yaxis_title="Users (log scale)",
        barmode="overlay",
    )
    for col, color in (("population", GREY), ("audience", COLORS[0])):
        fig.add_trace(
            go.Bar(
                x=mid,
                y=dist[col],
                width=width,
                name=col,
                marker_color=color,
                opacity=0.8,
                meta={"group": col},
            )
        )
    fig.update_yaxes(type="log")
    return fig


def plot_profile(profile: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Index vs the population (100 = like everyone) of seeds and lookalikes per feature.

    Rows are labelled by ``label`` when the frame has it, else by ``feature``.
    """
    p = profile.iloc[::-1]
    names = esc_all(p["label"] if "label" in p.columns else p["feature"])
    fig = figure(
        title or "Seeds and lookalikes against the population",
        xaxis_title="Index vs the population (100 = same)",
        yaxis_title="Feature",
        barmode="group",
        height=max(320, 28 * len(p) + 140),
    )
    for col, name, color in (
        ("seeds_index", "seeds", COLORS[1]),
        ("lookalikes_index", "lookalikes", COLORS[0]),
    ):
        if col in p.columns:
            fig.add_trace(
                go.Bar(
                    y=names,
                    x=p[col],
                    orientation="h",
                    name=name,
                    marker_color=color,
                    meta={"group": name},
                )
            )
    fig.add_vline(x=100, line={"color": GREY, "dash": "dash"})
    return fig


def plot_feature_importance(drivers: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Signed weights of the score's drivers (largest first, top of the chart)."""
    d = drivers.iloc[::-1]
    colors = [POSITIVE if w > 0 else NEGATIVE for w in d["weight"]]
    fig = figure(
        title or "What drives the score (weight per standard deviation)",
        xaxis_title="Weight (score change per standard deviation)",
        yaxis_title="Feature",
        height=max(320, 24 * len(d) + 140),
    )
    fig.add_trace(
        go.Bar(
            y=esc_all(d["feature"]),
            x=d["weight"],
            orientation="h",
            marker_color=colors,
            meta={"group": "drivers"},
        )
    )
    return fig


def plot_segment_overlap(table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Index vs the population (100 = same) of seeds and lookalikes per existing segment.

    One bar pair per row of :func:`crm_helpers.lookalike.overlap.overlap_table` (RFM
    segments, then health states; segments empty in the population are left out).
    """
    from crm_helpers.lookalike.overlap import SEGMENTATIONS

    t = table[table["population_users"] > 0].iloc[::-1]
    pairs = zip(t["segmentation"], t["segment"], strict=True)
    names = [esc(f"{SEGMENTATIONS.get(g, g)}: {s}") for g, s in pairs]
    fig = figure(
        title or "Seeds and lookalikes in the existing segments",
        xaxis_title="Index vs the population (100 = same share)",
        yaxis_title="Segment",
        barmode="group",
        height=max(320, 28 * len(t) + 140),
    )
    for col, name, color in (
        ("seeds_index", "seeds", COLORS[1]),
        ("lookalikes_index", "lookalikes", COLORS[0]),
    ):
        if col in t.columns:
            fig.add_trace(
                go.Bar(
                    y=names,
                    x=t[col],
                    orientation="h",
                    name=name,
                    marker_color=color,
                    customdata=t[col.replace("_index", "_share")],
                    hovertemplate="%{y}: index %{x:.0f}, share %{customdata:.1%}<extra></extra>",
                    meta={"group": name},
                )
            )
    fig.add_vline(x=100, line={"color": GREY, "dash": "dash"})
    return fig

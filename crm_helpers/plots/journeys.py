"""Journey figures: each takes the small DataFrame a journey function returned and only draws.

==============================  ===========================================================
figure                          input frame (producer)
==============================  ===========================================================
:func:`plot_sankey`             ``analysis.sankey_data`` (nodes, links)
:func:`plot_transition_matrix`  ``graph.transitions`` (one row per edge)
:func:`plot_top_paths`          ``paths.variants`` (one row per variant)
:func:`plot_step_matrix_diff`   ``analysis.differential_step_matrix``
:func:`plot_transition_times`   ``graph.transitions`` (median / p90 seconds)
:func:`plot_stage_flow`         ``graph.transitions`` over stages + ``graph.node_reach``
==============================  ===========================================================

Names from the data are shown as plotly text (never HTML): plotly escapes nothing, so
labels go through :func:`crm_helpers.plots.theme.esc`, which escapes ``< > &``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from crm_helpers.plots.theme import COLORS, GREY, NEGATIVE, POSITIVE, esc, figure

__all__ = [
    "plot_sankey",
    "plot_stage_flow",
    "plot_step_matrix_diff",
    "plot_top_paths",
    "plot_transition_matrix",
    "plot_transition_times",
]


_label = esc


def _require(df: pd.DataFrame, cols: list[str], producer: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"missing columns {missing}: expected the output of {producer}")


def _node_hover(nodes: pd.DataFrame) -> dict:
    """Sankey node hover: journeys, and distinct users when ``nodes`` has them."""
    if "users" in nodes.columns:
        return {
            "customdata": nodes[["journeys", "users"]].to_numpy(),
            "hovertemplate": "%{label}<br>%{customdata[0]:,} journeys, "
            "%{customdata[1]:,} users<extra></extra>",
        }
    return {
        "customdata": nodes["journeys"].to_numpy(),
        "hovertemplate": "%{label}<br>%{customdata:,} journeys<extra></extra>",
    }


def plot_sankey(
    nodes: pd.DataFrame, links: pd.DataFrame, *, title: str | None = "Paths"
) -> go.Figure:
    """Sankey of paths around an anchor: one column per level, node labels with shares."""
    _require(nodes, ["level", "step", "journeys", "share"], "sankey_data")
    _require(links, ["source_level", "source", "target_level", "target", "journeys"], "sankey_data")
    idx = {(int(r.level), r.step): i for i, r in enumerate(nodes.itertuples())}
    steps = sorted(set(nodes["step"]))
    color = {s: COLORS[i % len(COLORS)] for i, s in enumerate(steps)}
    levels = sorted(set(nodes["level"].astype(int)))
    span = max(levels) - min(levels) if levels else 0
    x = [0.01 + 0.98 * ((int(lv) - min(levels)) / span if span else 0.5) for lv in nodes["level"]]
    fig = figure(title, height=520)
    fig.add_trace(
        go.Sankey(
            arrangement="snap",
            node={
                "label": [
                    f"{_label(s)} ({100 * sh:.0f}%)"
                    for s, sh in zip(nodes["step"], nodes["share"], strict=True)
                ],
                "color": [color[s] for s in nodes["step"]],
                "x": x,
                "pad": 12,
                **_node_hover(nodes),
            },
            link={
                "source": [idx[(int(a), s)] for a, s in zip(links.source_level, links.source, strict=True)],
                "target": [idx[(int(a), s)] for a, s in zip(links.target_level, links.target, strict=True)],
                "value": links["journeys"].to_numpy(),
                "color": "rgba(160,160,160,0.35)",
            },
            meta={"levels": levels},
        )
    )  # fmt: skip
    return fig


def plot_transition_matrix(
    edges: pd.DataFrame,
    *,
    weight: str = "share_of_source",
    top: int = 20,
    title: str | None = "Transitions (share of the source's exits)",
) -> go.Figure:
    """Heatmap of the transition matrix: rows sources, columns targets (the ``top`` steps
    by transitions; the rest are summed into nothing — they are left out)."""
    _require(edges, ["source", "target", "count", weight], "transitions")
    vol = (
        edges.groupby("source")["count"]
        .sum()
        .add(edges.groupby("target")["count"].sum(), fill_value=0)
    )
    keep = list(vol.sort_values(ascending=False).index[:top])
    e = edges[edges["source"].isin(keep) & edges["target"].isin(keep)]
    m = e.pivot_table(index="source", columns="target", values=weight, aggfunc="sum")
    m = m.reindex(index=keep, columns=keep)
    fig = figure(title, height=max(400, 26 * len(keep) + 160))
    fig.add_trace(
        go.Heatmap(
            z=m.to_numpy(float),
            x=[_label(c) for c in m.columns],
            y=[_label(i) for i in m.index],
            colorscale="Blues",
            hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>",
            meta={"weight": weight},
        )
    )
    fig.update_yaxes(autorange="reversed", title="from")
    fig.update_xaxes(title="to")
    return fig


def plot_top_paths(
    variants_df: pd.DataFrame, *, top: int = 10, title: str | None = "Top path variants"
) -> go.Figure:
    """Table of the top variants: path, journeys, share, conversion, median duration."""
    _require(variants_df, ["path", "journeys", "share", "conversion"], "variants")
    v = variants_df.head(top)
    paths = [
        " → ".join(_label(s) for s in p) + (" → …" if t else "")
        for p, t in zip(v["path"], v.get("truncated", [False] * len(v)), strict=True)
    ]
    conv = ["" if np.isnan(c) else f"{100 * c:.1f}%" for c in v["conversion"].astype(float)]
    dur = [_duration(s) for s in v["median_duration_seconds"].astype(float)]
    fig = figure(title, height=120 + 34 * len(v))
    fig.add_trace(
        go.Table(
            columnwidth=[6, 1, 1, 1, 1],
            header={"values": ["path", "journeys", "share", "conversion", "median duration"],
                    "align": "left", "fill_color": "#EEF2F6"},
            cells={"values": [paths, [f"{n:,}" for n in v["journeys"]],
                              [f"{100 * s:.1f}%" for s in v["share"]], conv, dur],
                   "align": "left"},
        )
    )  # fmt: skip
    return fig


def _duration(seconds: float) -> str:
    if np.isnan(seconds):
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def plot_step_matrix_diff(
    diff: pd.DataFrame,
    *,
    top_steps: int = 15,
    title: str | None = "Converters minus drop-outs: share at each step position",
) -> go.Figure:
    """Heatmap of ``share_b - share_a`` per (step, position); significant cells marked ``*``."""
    _require(diff, ["position", "step", "diff", "significant"], "differential_step_matrix")
    weight = diff.groupby("step")[["journeys_a", "journeys_b"]].sum().sum(axis=1)
    keep = list(weight.sort_values(ascending=False).index[:top_steps])
    d = diff[diff["step"].isin(keep)]
    z = d.pivot_table(index="step", columns="position", values="diff", aggfunc="sum").reindex(keep)
    sig = d.pivot_table(index="step", columns="position", values="significant", aggfunc="max")
    sig = sig.reindex(index=z.index, columns=z.columns).fillna(False).astype(bool)
    text = np.where(sig.to_numpy(), "*", "")
    lim = float(np.nanmax(np.abs(z.to_numpy(float)))) if z.size else 1.0
    fig = figure(title, height=max(380, 26 * len(keep) + 160))
    fig.add_trace(
        go.Heatmap(
            z=z.to_numpy(float), x=[str(c) for c in z.columns], y=[_label(i) for i in z.index],
            text=text, texttemplate="%{text}", zmid=0, zmin=-lim, zmax=lim,
            colorscale=[[0, NEGATIVE], [0.5, "#FFFFFF"], [1, POSITIVE]],
            hovertemplate="%{y} at step %{x}: %{z:+.3f}<extra></extra>",
            meta={"significant_cells": int(sig.to_numpy().sum())},
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="step position")
    return fig


def plot_transition_times(
    edges: pd.DataFrame, *, top: int = 15, title: str | None = "Time on the busiest transitions"
) -> go.Figure:
    """Median (bar) and p90 (marker) seconds of the ``top`` transitions by count (log axis)."""
    _require(edges, ["source", "target", "count", "median_seconds", "p90_seconds"], "transitions")
    e = edges.sort_values("count", ascending=False).head(top).iloc[::-1]
    names = [f"{_label(a)} → {_label(b)}" for a, b in zip(e["source"], e["target"], strict=True)]
    fig = figure(title, height=max(360, 26 * len(e) + 140), xaxis_type="log")
    med = e["median_seconds"].clip(lower=0.5)
    fig.add_trace(go.Bar(y=names, x=med, orientation="h", name="median", marker_color=COLORS[0]))
    fig.add_trace(
        go.Scatter(y=names, x=e["p90_seconds"].clip(lower=0.5), mode="markers", name="p90",
                   marker={"color": GREY, "size": 9, "symbol": "line-ns-open"})
    )  # fmt: skip
    fig.update_xaxes(title="seconds (log scale)")
    return fig


def plot_stage_flow(
    stage_edges: pd.DataFrame,
    stage_reach: pd.DataFrame,
    stages: list[str],
    *,
    title: str | None = "Stage flow",
) -> go.Figure:
    """Sankey of stage-to-stage movement (start/end nodes included), nodes labelled with users."""
    _require(stage_edges, ["source", "target", "count"], "transitions")
    users = dict(zip(stage_reach["step"], stage_reach["users"], strict=True))
    names = [
        s
        for s in ["[start]", *stages, "[end]", "[churned]"]
        if s in set(stage_edges["source"]) | set(stage_edges["target"])
    ]
    src_idx = {s: i for i, s in enumerate(names)}
    tgt_idx = {s: len(names) + i for i, s in enumerate(names)}
    e = stage_edges[stage_edges["source"].isin(names) & stage_edges["target"].isin(names)]
    labels = [f"{_label(s)} ({users.get(s, 0):,} users)" for s in names] * 2
    fig = figure(title, height=480)
    fig.add_trace(
        go.Sankey(
            node={"label": labels, "pad": 14,
                  "color": [COLORS[i % len(COLORS)] for i in range(len(names))] * 2},
            link={"source": [src_idx[s] for s in e["source"]],
                  "target": [tgt_idx[t] for t in e["target"]],
                  "value": e["count"].to_numpy(), "color": "rgba(160,160,160,0.35)"},
        )
    )  # fmt: skip
    return fig

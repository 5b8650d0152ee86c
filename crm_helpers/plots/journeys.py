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
    "sankey_height",
    "sankey_labels",
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
    """Sankey node hover: the step (in full, also when its label is shortened or hidden),
    its share, journeys, and distinct users when ``nodes`` has them."""
    names = [
        f"{_label(s)} ({100 * sh:.0f}%)"
        for s, sh in zip(nodes["step"], nodes["share"], strict=True)
    ]
    if "users" in nodes.columns:
        return {
            "customdata": np.column_stack(
                [names, nodes["journeys"].to_numpy(), nodes["users"].to_numpy()]
            ).astype(object),
            "hovertemplate": "%{customdata[0]}<br>%{customdata[1]:,} journeys, "
            "%{customdata[2]:,} users<extra></extra>",
        }
    return {
        "customdata": np.column_stack([names, nodes["journeys"].to_numpy()]).astype(object),
        "hovertemplate": "%{customdata[0]}<br>%{customdata[1]:,} journeys<extra></extra>",
    }


#: Sankey geometry the labels are laid out for: the gap between nodes, one line of label text
#: (13 px font), the node width, the margins above and below the plot, and the narrowest plot
#: width a report shows it at (its 1,100 px page less the margins).
SANKEY_PAD_PX = 12
SANKEY_LINE_PX = 17
SANKEY_NODE_PX = 20
SANKEY_MARGIN_PX = 110
SANKEY_WIDTH_PX = 1000
_CHAR_PX = 7.8  # a character of the 13 px label font, generously


def sankey_height(nodes: pd.DataFrame) -> int:
    """Figure height: 520 px, taller (up to 900) when a column has many nodes."""
    most = int(nodes.groupby("level").size().max()) if len(nodes) else 0
    return int(max(520, min(900, SANKEY_MARGIN_PX + most * (SANKEY_PAD_PX + SANKEY_LINE_PX))))


def sankey_labels(nodes: pd.DataFrame, height: int) -> list[str]:
    """Node labels that never overlap: ``"step (12%)"``, ``"step\n(12%)"`` (two lines),
    ``""`` where no label fits.

    * A node gets a label only when it is at least as high as its label's lines (plotly scales every
      column alike: the tightest column's journeys fill the plot height less its gaps), so two
      labels of one column are at least a line apart.
    * The last column's labels sit left of its nodes, facing the right-side labels of the
      column before it across one gap: those two columns' labels are shortened (``…``) to half
      the gap each at :data:`SANKEY_WIDTH_PX`: the share goes on a second line when the node
      is two lines high, else the name is shortened (``…``).

    The full name, share and counts stay in every node's hover.
    """
    if not len(nodes):
        return []
    lv = nodes["level"].astype(int)
    plot = height - SANKEY_MARGIN_PX
    sums = nodes.groupby(lv)["journeys"].sum()
    counts = nodes.groupby(lv).size()
    ky = min((plot - (counts[k] - 1) * SANKEY_PAD_PX) / max(sums[k], 1) for k in sums.index)
    px = nodes["journeys"].to_numpy(float) * max(ky, 0.0)
    levels = sorted(sums.index)
    gap = SANKEY_WIDTH_PX / max(len(levels) - 1, 1) - SANKEY_NODE_PX
    facing = set(levels[-2:]) if len(levels) > 1 else set()
    room = int((gap / 2 - 8) // _CHAR_PX)
    out = []
    for step, share, level, h in zip(nodes["step"], nodes["share"], lv, px, strict=True):
        if h < SANKEY_LINE_PX:
            out.append("")
            continue
        pct = f"({100 * share:.0f}%)"
        name = str(step)
        if level not in facing or len(name) + 1 + len(pct) <= room:
            out.append(f"{name} {pct}")
        elif h >= 2 * SANKEY_LINE_PX:  # two lines: the name, then the share
            short = name if len(name) <= room else name[: max(room - 1, 1)] + "…"
            out.append(f"{short}\n{pct}")
        else:
            out.append(name[: max(room - len(pct) - 2, 1)] + "… " + pct)
    return out


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
    height = sankey_height(nodes)
    labels = sankey_labels(nodes, height)
    fig = figure(title, height=height)
    fig.add_trace(
        go.Sankey(
            arrangement="snap",
            node={
                "label": ["<br>".join(_label(line) for line in t.split("\n")) for t in labels],
                "color": [color[s] for s in nodes["step"]],
                "x": x,
                "pad": SANKEY_PAD_PX,
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
            colorbar={"title": {"text": weight.replace("_", " ")}},
            hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>",
            meta={"weight": weight},
        )
    )
    fig.update_yaxes(autorange="reversed", title="From step (event)")
    fig.update_xaxes(title="To step (event)")
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
            colorbar={"title": {"text": "Difference in share"}},
            hovertemplate="%{y} at step %{x}: %{z:+.3f}<extra></extra>",
            meta={"significant_cells": int(sig.to_numpy().sum())},
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", title="Step (event)")
    fig.update_xaxes(title="Position in the journey (1 = first step)")
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
    fig.update_xaxes(title="Time on the transition (seconds, log scale)")
    fig.update_yaxes(title="Transition (from → to)")
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

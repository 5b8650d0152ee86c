"""Segment figures: each takes a small frame from :mod:`crm_helpers.segments` and only draws.

==============================  =========================================================
figure                          input frame (producer)
==============================  =========================================================
:func:`plot_rfm_treemap`        ``segment_summary`` (one row per segment)
:func:`plot_rfm_grid`           customers per (r_score, f_score) (``rfm_grid``)
:func:`plot_states_over_time`   state counts per period end (``states_over_time``)
:func:`plot_migration`          ``migration_matrix`` (from x to counts)
:func:`plot_migration_sankey`   ``migration_matrix`` (states or RFM segments)
:func:`plot_retention`          ``retention_table`` (cohort, period, share)
:func:`plot_cluster_profiles`   ``cluster_profiles`` (cluster, feature, effect_size)
:func:`plot_cluster_indices`    ``cluster_profiles`` (cluster, feature, index): seaborn
:func:`plot_cluster_map`        ``projection_2d`` (x, y, cluster)
:func:`plot_clv`                ``clv_table`` (histogram bins)
:func:`plot_holdout`            ``holdout_check(...)["by_frequency"]``
==============================  =========================================================
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from crm_helpers.plots.theme import (
    COLORS,
    GREY,
    HIGHLIGHT,
    axis_title,
    esc,
    esc_all,
    figure,
    money_title,
)

__all__ = [
    "STATE_COLORS",
    "plot_cluster_indices",
    "plot_cluster_map",
    "static_image",
    "plot_cluster_profiles",
    "plot_clv",
    "plot_holdout",
    "plot_migration",
    "plot_migration_sankey",
    "plot_retention",
    "plot_rfm_grid",
    "plot_rfm_treemap",
    "plot_states_over_time",
]

STATE_COLORS = {"super-active": "#00798C", "active": "#66A182", "dormant-risk": "#EDAE49",
                "churned": "#D1495B"}  # fmt: skip


def plot_rfm_treemap(
    summary: pd.DataFrame, title: str = "RFM segments: customers and revenue"
) -> go.Figure:
    """Treemap of segments, area = customers, colour = revenue share; hover shows the action."""
    s = summary[summary["customers"] > 0]
    fig = figure(title)
    fig.add_trace(
        go.Treemap(
            labels=esc_all(s["segment"]),
            parents=[""] * len(s),
            values=s["customers"],
            marker={
                "colors": s["revenue_share"].fillna(0),
                "colorscale": "Teal",
                "colorbar": {"title": "revenue share", "tickformat": ".0%"},
            },  # fmt: skip
            customdata=s[["revenue_share", "avg_order_value", "action"]]
            .assign(action=esc_all(s["action"]))
            .to_numpy(),
            texttemplate="<b>%{label}</b><br>%{value:,} customers<br>%{customdata[0]:.1%} of revenue",
            hovertemplate="<b>%{label}</b><br>%{value:,} customers<br>revenue share %{customdata[0]:.1%}"
            "<br>avg order %{customdata[1]:,.2f}<br>%{customdata[2]}<extra></extra>",
        )
    )
    fig.update_layout(margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


def plot_rfm_grid(
    grid: pd.DataFrame, title: str = "Customers by recency and frequency score"
) -> go.Figure:
    """Heatmap of customers per (R, F) score, labelled with the segment of each cell."""
    piv = grid.pivot_table(index="f_score", columns="r_score", values="customers", aggfunc="sum")
    piv = piv.reindex(index=range(1, 6), columns=range(1, 6)).fillna(0)
    seg = grid.drop_duplicates(["r_score", "f_score"]).pivot(
        index="f_score", columns="r_score", values="segment"
    )
    seg = seg.reindex(index=range(1, 6), columns=range(1, 6)).fillna("")
    text = [[f"{seg.iat[i, j]}<br>{int(piv.iat[i, j]):,}" for j in range(5)] for i in range(5)]
    fig = figure(
        title, xaxis_title="R score (5 = most recent)", yaxis_title="F score (5 = most frequent)"
    )
    fig.add_trace(go.Heatmap(z=piv.to_numpy(), x=list(range(1, 6)), y=list(range(1, 6)), text=text,
                             texttemplate="%{text}", colorscale="Blues", colorbar={"title": "customers"},
                             hovertemplate="R %{x}, F %{y}: %{z:,} customers<extra></extra>"))  # fmt: skip
    return fig


def plot_states_over_time(
    counts: pd.DataFrame, title: str = "Health states at each month end"
) -> go.Figure:
    """Stacked bars of users per state (columns ``period_end, state, users``)."""
    fig = figure(title, barmode="stack", yaxis_title="Users", xaxis_title="Month end (date)")
    for state, color in STATE_COLORS.items():
        d = counts[counts["state"] == state]
        x = pd.to_datetime(d["period_end"]).dt.strftime("%Y-%m-%d")
        fig.add_trace(go.Bar(x=x, y=d["users"], name=esc(state), marker_color=color))
    fig.update_xaxes(type="category", categoryorder="category ascending")
    return fig


def plot_migration(
    matrix: pd.DataFrame, title: str = "Migration between states, last month", what: str = "state"
) -> go.Figure:
    """Heatmap of the from x to counts, labelled with count and row share (``what``: the
    label kind named on the axes, "state" or "segment")."""
    share = matrix.div(matrix.sum(axis=1).where(lambda s: s > 0), axis=0).fillna(0)
    text = [[f"{int(matrix.iat[i, j]):,}<br>{share.iat[i, j]:.0%}" for j in range(matrix.shape[1])]
            for i in range(matrix.shape[0])]  # fmt: skip
    fig = figure(
        title,
        xaxis_title=axis_title(f"{what} at the end of the month"),
        yaxis_title=axis_title(f"{what} a month before"),
        # two lines of text per cell: 11 RFM segments need more than the default height
        height=max(420, 200 + 44 * matrix.shape[0]),
    )
    fig.add_trace(go.Heatmap(z=share.to_numpy(), x=esc_all(matrix.columns), y=esc_all(matrix.index), text=text,
                             texttemplate="%{text}", colorscale="Purples", zmin=0, zmax=1,
                             colorbar={"title": "% of the row", "tickformat": ".0%"},
                             hovertemplate="%{y} -> %{x}: %{text}<extra></extra>"))  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def plot_migration_sankey(
    matrix: pd.DataFrame,
    title: str = "Where users went, last month",
    colors: dict[str, str] | None = None,
) -> go.Figure:
    """Sankey of one period's transitions: sources (a month before) left, targets right.

    ``matrix`` is a from x to count matrix (``migration_matrix``); zero cells draw no link.
    A link takes its target's colour (``colors``, default :data:`STATE_COLORS`, else the
    theme palette in column order); users who stay put are drawn fainter.
    """
    src, dst = list(matrix.index), list(matrix.columns)
    palette = {**{c: COLORS[i % len(COLORS)] for i, c in enumerate(dst)}, **STATE_COLORS,
               **(colors or {})}  # fmt: skip
    n_in = matrix.sum(axis=1)
    n_out = matrix.sum(axis=0)
    labels = [f"{esc(s)} ({int(n_in[s]):,})" for s in src] + [
        f"{esc(t)} ({int(n_out[t]):,})" for t in dst
    ]
    node_colors = [palette.get(s, GREY) for s in src] + [palette.get(t, GREY) for t in dst]
    link = {"source": [], "target": [], "value": [], "color": [], "customdata": []}
    for i, s in enumerate(src):
        total = float(n_in[s]) or 1.0
        for j, t in enumerate(dst):
            v = int(matrix.iat[i, j])
            if v <= 0:
                continue
            link["source"].append(i)
            link["target"].append(len(src) + j)
            link["value"].append(v)
            link["color"].append(_rgba(palette.get(t, GREY), 0.25 if s == t else 0.6))
            link["customdata"].append(f"{v / total:.0%} of {esc(s)}")
    fig = figure(title)
    fig.add_trace(
        go.Sankey(
            arrangement="snap",
            node={"label": labels, "color": node_colors, "pad": 12, "thickness": 14},
            link={
                **link,
                "hovertemplate": "%{source.label} -> %{target.label}: %{value:,} users"
                " (%{customdata})<extra></extra>",
            },
        )  # fmt: skip
    )
    fig.update_layout(margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


def plot_retention(ret: pd.DataFrame, title: str = "Retention by cohort month") -> go.Figure:
    """Heatmap of the share of each cohort active k months later."""
    piv = ret.pivot_table(index="cohort", columns="period", values="share")
    labels = [pd.Timestamp(c).strftime("%Y-%m") for c in piv.index]
    fig = figure(title, xaxis_title="Months since the cohort month",
                 yaxis_title="Cohort (the month it started)")  # fmt: skip
    fig.add_trace(go.Heatmap(z=piv.to_numpy(), x=list(piv.columns), y=labels, colorscale="Greens",
                             zmin=0, zmax=1, texttemplate="%{z:.0%}",
                             colorbar={"title": "% of the cohort active", "tickformat": ".0%"},
                             hovertemplate="cohort %{y}, month %{x}: %{z:.1%}<extra></extra>"))  # fmt: skip
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def plot_cluster_profiles(
    profiles: pd.DataFrame, title: str = "What distinguishes each cluster"
) -> go.Figure:
    """Heatmap of effect sizes (Cohen's d vs the rest) per cluster and feature.

    The colour saturates at |d| = 3 (cells show the exact value), so that one very distinct
    small cluster does not wash out the large effects (0.8 and more) of the others.
    """
    piv = profiles.pivot_table(index="cluster", columns="feature", values="effect_size")
    z = piv.to_numpy()
    lim = float(min(3.0, max(1.0, abs(pd.DataFrame(z).stack()).max())))
    fig = figure(title, xaxis_title="Feature", yaxis_title="Cluster")
    fig.add_trace(go.Heatmap(z=z, x=esc_all(piv.columns), y=[f"cluster {esc(c)}" for c in piv.index],
                             colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim, texttemplate="%{z:.1f}",
                             colorbar={"title": "effect size (d)"},
                             hovertemplate="%{y}, %{x}: d = %{z:.2f}<extra></extra>"))  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    return fig


def plot_cluster_indices(profiles: pd.DataFrame, title: str | None = None):
    """Seaborn heatmap of each cluster's feature indices (100 = the average customer).

    Cells show the index (cluster mean / population mean x 100); the colour is its log2,
    clipped to [-2, 2] (a quarter to four times the average), so that 50 and 200 are equally
    far from white. Returns a matplotlib ``Figure`` (no pyplot state); show it in a report
    with :func:`static_image`.

    Parameters
    ----------
    profiles : pandas.DataFrame
        ``cluster_profiles``: one row per (cluster, feature) with ``index``.
    """
    import warnings

    import numpy as np
    import seaborn as sns
    from matplotlib.figure import Figure

    piv = profiles.pivot_table(index="cluster", columns="feature", values="index", dropna=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        color = np.clip(np.log2(piv.to_numpy(dtype=float) / 100.0), -2, 2)
    annot = piv.map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    fig = Figure(figsize=(max(6.0, 0.55 * piv.shape[1] + 2.5), 0.55 * piv.shape[0] + 2.2))
    ax = fig.subplots()
    with warnings.catch_warnings():  # seaborn 0.13 on matplotlib 3.10: cmap.set_bad notice
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(
            pd.DataFrame(color, index=[f"cluster {c}" for c in piv.index], columns=piv.columns),
            ax=ax, annot=annot.to_numpy(), fmt="", cmap="RdBu_r", center=0, vmin=-2, vmax=2,
            linewidths=0.5, linecolor="white",
            cbar_kws={"label": "log2(index / 100)", "ticks": [-2, -1, 0, 1, 2]},
        )  # fmt: skip
    ax.set_xlabel("Feature")
    ax.set_ylabel("")
    ax.tick_params(axis="y", rotation=0)  # "cluster k" reads across, not stacked
    ax.set_title(title or "Cluster profiles: feature index vs the average customer (100)")
    fig.tight_layout()
    return fig


def static_image(fig, dpi: int = 110):
    """A matplotlib figure as an embedded PNG for notebooks and rendered reports."""
    import io

    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return Image(data=buf.getvalue(), format="png")


def plot_cluster_map(
    points: pd.DataFrame, title: str = "Clusters in two dimensions (PCA)"
) -> go.Figure:
    """Scatter of the 2-D projection coloured by cluster.

    SVG markers, not WebGL: the projection is a sample of at most a few thousand users
    (``projection_2d``), and a WebGL chart shows "WebGL is not supported" instead of the
    points in a browser without it (remote desktops, headless browsers).
    """
    fig = figure(title, xaxis_title="Principal component 1 (standardised features)",
                 yaxis_title="Principal component 2 (standardised features)")  # fmt: skip
    for i, (c, d) in enumerate(points.groupby("cluster", sort=True)):
        fig.add_trace(go.Scatter(x=d["x"], y=d["y"], mode="markers", name=f"cluster {c}",
                                   marker={"size": 4, "opacity": 0.5, "color": COLORS[i % len(COLORS)]}))  # fmt: skip
    return fig


def plot_clv(
    hist: pd.DataFrame, horizon_label: str, title: str | None = None, currency: str = ""
) -> go.Figure:
    """Histogram (bars) of expected revenue per customer over the horizon (x in ``currency``)."""
    mid = (hist["clv_low"] + hist["clv_high"]) / 2
    fig = figure(title or f"Expected revenue per customer, next {horizon_label}",
                  xaxis_title=money_title("expected revenue per customer", currency),
                  yaxis_title="Customers", bargap=0.05)  # fmt: skip
    fig.add_trace(go.Bar(x=mid, y=hist["customers"], width=(hist["clv_high"] - hist["clv_low"]) * 0.95,
                         marker_color=COLORS[0], hovertemplate="%{x:,.0f}: %{y:,.0f} customers<extra></extra>"))  # fmt: skip
    return fig


def plot_holdout(
    table: pd.DataFrame, title: str = "Holdout: predicted vs actual purchases"
) -> go.Figure:
    """Grouped bars of mean predicted and actual holdout purchases per calibration frequency."""
    fig = figure(title, barmode="group", xaxis_title="Repeat purchases in the calibration period",
                  yaxis_title="Purchases per customer in the holdout")  # fmt: skip
    fig.add_trace(go.Bar(x=table["bucket"], y=table["actual"], name="actual", marker_color=GREY))
    fig.add_trace(go.Bar(x=table["bucket"], y=table["predicted"], name="predicted (BG/NBD)",
                         marker_color=HIGHLIGHT))  # fmt: skip
    fig.update_xaxes(type="category")
    return fig

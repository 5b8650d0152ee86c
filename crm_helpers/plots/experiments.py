"""Experiment readout figures: each takes a small DataFrame from
:mod:`crm_helpers.experiments.analysis` / :mod:`~crm_helpers.experiments.decision` and only draws.

==========================  ======================================================
figure                      input
==========================  ======================================================
:func:`plot_forest`         ``arms_table`` (relative lift with interval per arm and metric)
:func:`plot_sequential`     ``sequential_path`` (cumulative lift, fixed and always-valid bounds)
:func:`plot_posteriors`     ``arms_table`` rows + posterior mean/sd (normal posteriors of the lift)
:func:`plot_segments`       ``segment_table``
:func:`plot_waterfall`      an ``Economics`` dict (incremental profit -> costs -> net)
==========================  ======================================================

Each trace carries a ``meta`` dict with what it shows, so tests can inspect figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats as _st

from crm_helpers.plots.theme import (
    COLORS,
    GREY,
    NEGATIVE,
    POSITIVE,
    esc,
    figure,
    money_title,
    rate_title,
)

__all__ = [
    "plot_forest",
    "plot_posteriors",
    "plot_segments",
    "plot_sequential",
    "plot_waterfall",
]


#: The lift axes: the difference from the control as a share of the control's value.
LIFT_TITLE = rate_title("lift", "the control's value")


def _pct(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{x:+.1%}"


def plot_forest(arms: pd.DataFrame, title: str = "Relative lift vs control") -> go.Figure:
    """Relative lift of every non-control arm on every metric with its interval.

    Significant rows (adjusted p < alpha, ``significant``) are coloured by sign; others grey.
    """
    rows = arms[arms["diff"].notna()].reset_index(drop=True) if len(arms) else arms
    fig = figure(title, xaxis_title=LIFT_TITLE, yaxis_title="Metric · arm", xaxis_tickformat="+.0%")
    labels = [f"{esc(r.metric)} · {esc(r.variant)}" for r in rows.itertuples()]
    for i, r in enumerate(rows.itertuples()):
        sig = bool(getattr(r, "significant", False))
        color = (POSITIVE if r.rel_lift > 0 else NEGATIVE) if sig else GREY
        fig.add_trace(
            go.Scatter(
                x=[r.rel_lift],
                y=[labels[i]],
                mode="markers",
                marker={"color": color, "size": 11},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [r.rel_ci_high - r.rel_lift],
                    "arrayminus": [r.rel_lift - r.rel_ci_low],
                    "color": color,
                },
                name=labels[i],
                showlegend=False,
                hovertemplate=f"{labels[i]}: %{{x:+.2%}} ({_pct(r.rel_ci_low)} to "
                f"{_pct(r.rel_ci_high)})<extra></extra>",
                meta={"variant": r.variant, "metric": r.metric, "significant": sig},
            )
        )
    fig.add_vline(x=0, line_color="#888", line_dash="dot")
    fig.update_layout(height=max(260, 70 + 45 * len(rows)), yaxis={"autorange": "reversed"})
    return fig


def plot_sequential(path: pd.DataFrame, metric: str = "") -> go.Figure:
    """Cumulative relative lift by assignment day with the fixed-horizon interval (band)
    and the always-valid confidence sequence (dashed), one colour per arm."""
    fig = figure(
        f"Cumulative lift over time{': ' + metric if metric else ''}",
        xaxis_title="Assignment date (users assigned up to that day)",
        yaxis_title=LIFT_TITLE,
        yaxis_tickformat="+.0%",
    )
    for i, (v, g) in enumerate(path.groupby("variant", sort=True)):
        c = COLORS[i % len(COLORS)]
        x = list(g["day"])
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=list(g["ci_high"]) + list(g["ci_low"])[::-1],
                fill="toself",
                fillcolor="rgba(47,102,144,0.12)",
                line={"width": 0},
                name=f"{esc(v)}: fixed 95% interval",
                hoverinfo="skip",
                meta={"variant": v, "kind": "fixed"},
            )
        )
        for col in ("seq_ci_low", "seq_ci_high"):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=g[col],
                    mode="lines",
                    line={"color": c, "dash": "dash", "width": 1},
                    name=f"{esc(v)}: always-valid bound",
                    showlegend=col == "seq_ci_low",
                    meta={"variant": v, "kind": "sequential"},
                )
            )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=g["rel_lift"],
                mode="lines+markers",
                line={"color": c},
                name=f"{esc(v)}: estimate",
                meta={"variant": v, "kind": "estimate"},
            )
        )
    fig.add_hline(y=0, line_color="#888", line_dash="dot")
    lo, hi = _settled_range(path)
    if lo is not None:
        fig.update_yaxes(range=[lo, hi])
        fig.add_annotation(
            text="the first days' intervals are wider than the chart",
            xref="paper", yref="paper", x=0, y=1.02, showarrow=False,
            xanchor="left", yanchor="bottom", font={"size": 11, "color": "#666"},
        )  # fmt: skip
    return fig


def _settled_range(path: pd.DataFrame, settled: float = 0.2) -> tuple[float | None, float | None]:
    """The y range of the lift over time once each arm has ``settled`` (20%) of its users.

    The first days' intervals (a handful of users) span hundreds of percent and would squash
    the rest; the range covers the estimate, the fixed interval and the always-valid bounds
    of the later days (and 0), padded by 10%. ``(None, None)`` when nothing is cut.
    """
    cols = [c for c in ("rel_lift", "ci_low", "ci_high", "seq_ci_low", "seq_ci_high") if c in path]
    if not len(path) or not cols:
        return None, None
    late = pd.Series(True, index=path.index)
    for n in ("n", "n_control"):
        if n in path:
            final = path.groupby("variant")[n].transform("max")
            late &= path[n] >= settled * final
    vals = path.loc[late, cols].to_numpy(dtype=float)
    allv = path[cols].to_numpy(dtype=float)
    vals, allv = vals[np.isfinite(vals)], allv[np.isfinite(allv)]
    if not vals.size:
        return None, None
    lo, hi = min(float(vals.min()), 0.0), max(float(vals.max()), 0.0)
    pad = 0.1 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    if allv.min() >= lo and allv.max() <= hi:
        return None, None
    return lo, hi


def plot_posteriors(posteriors: pd.DataFrame, metric: str = "") -> go.Figure:
    """Normal posterior densities of the relative lift (``variant, mean, sd`` per arm),
    with the chance to beat control in the legend."""
    fig = figure(
        f"Posterior of the lift{': ' + metric if metric else ''}",
        xaxis_title=LIFT_TITLE,
        xaxis_tickformat="+.0%",
        yaxis_title="Probability density (per unit of lift)",
    )
    for i, r in enumerate(posteriors.dropna(subset=["mean", "sd"]).itertuples()):
        if not r.sd > 0:
            continue
        x = np.linspace(r.mean - 4 * r.sd, r.mean + 4 * r.sd, 200)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_st.norm.pdf(x, r.mean, r.sd),
                mode="lines",
                fill="tozeroy",
                line={"color": COLORS[i % len(COLORS)]},
                name=f"{esc(r.variant)} (P(beats control) = {r.chance_to_beat_control:.1%})",
                meta={"variant": r.variant},
            )
        )
    fig.add_vline(x=0, line_color="#888", line_dash="dot")
    return fig


def plot_segments(seg: pd.DataFrame, metric: str = "") -> go.Figure:
    """Relative lift per segment and arm with its interval; small segments grey (untested)."""
    fig = figure(
        f"Lift by segment{': ' + metric if metric else ''} (exploratory)",
        xaxis_title=LIFT_TITLE,
        yaxis_title="Segment",
        xaxis_tickformat="+.0%",
    )
    for i, (v, g) in enumerate(seg.groupby("variant", sort=True)):
        c = COLORS[i % len(COLORS)]
        colors = [GREY if s else c for s in g["small"]]
        fig.add_trace(
            go.Scatter(
                x=g["rel_lift"],
                y=[esc(s) for s in g["segment"]],
                mode="markers",
                marker={
                    "color": colors,
                    "size": 10,
                    "symbol": ["star" if q else "circle" for q in g["significant"]],
                },
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": (g["rel_ci_high"] - g["rel_lift"]).tolist(),
                    "arrayminus": (g["rel_lift"] - g["rel_ci_low"]).tolist(),
                    "color": c,
                },
                name=esc(v),
                meta={"variant": v},
            )
        )
    fig.add_vline(x=0, line_color="#888", line_dash="dot")
    fig.update_layout(height=max(280, 80 + 30 * seg["segment"].nunique()))
    return fig


def plot_waterfall(econ: dict, currency: str = "") -> go.Figure:
    """From incremental gross profit through coupon and send costs to net profit.

    The coupon bar is the cost subtracted (``coupon_cost_deducted``: 0 when the revenue is
    net of the discount, the default; older records without it: ``coupon_cost``).
    """
    gross = econ["gross_margin"] * econ["incremental_revenue"]
    coupon = econ.get("coupon_cost_deducted", econ["coupon_cost"])
    fig = figure(
        f"Campaign economics: {econ['variant']} vs control",
        xaxis_title="From gross profit to net profit",
        yaxis_title=money_title("amount", currency),
    )
    fig.add_trace(
        go.Waterfall(
            x=["incremental gross profit", "coupon cost", "send cost", "net profit"],
            y=[gross, -coupon, -econ["send_cost"], econ["net_profit"]],
            measure=["relative", "relative", "relative", "total"],
            increasing={"marker": {"color": POSITIVE}},
            decreasing={"marker": {"color": NEGATIVE}},
            totals={"marker": {"color": COLORS[0]}},
            texttemplate="%{y:,.0f}",
            showlegend=False,
            meta={"variant": econ["variant"]},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=["net profit"],
            y=[econ["net_profit"]],
            mode="markers",
            marker={"color": "rgba(0,0,0,0)"},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [econ["net_profit_high"] - econ["net_profit"]],
                "arrayminus": [econ["net_profit"] - econ["net_profit_low"]],
                "color": "#333",
            },
            name="95% interval",
            showlegend=False,
        )
    )
    return fig

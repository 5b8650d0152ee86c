"""Brute-force pandas reference of the engine side, for the tests.

Written independently of :mod:`crm_helpers.experiments.core`, row by row in plain pandas:
clean the assignments, find each user's orders and events in the window and pre-period,
build the per-user values, and sum them per variant. Only for small data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_helpers.experiments.metrics import parse_metric

__all__ = ["reference_per_user", "reference_stats"]


def reference_per_user(
    assignments: pd.DataFrame,
    orders: pd.DataFrame | None,
    events: pd.DataFrame | None,
    experiment_id: str,
    analysis_window_days: float,
    pre_period_days: float = 0.0,
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Per analysed user: ``user_id, variant, assigned_at`` and the raw per-user counts.

    Returns
    -------
    DataFrame
        ``user_id, variant, assigned_at, orders, revenue, pre_orders, pre_revenue`` and, for
        events, ``ev:<name>`` / ``pre_ev:<name>`` counts per event name.
    """
    a = assignments[assignments["experiment_id"].astype(str) == str(experiment_id)]
    g = a.groupby("user_id").agg(
        n_variants=("variant", "nunique"),
        variant=("variant", "first"),
        assigned_at=("assigned_at", "min"),
    )
    g = g[g["n_variants"] == 1].drop(columns="n_variants")
    win = pd.Timedelta(days=analysis_window_days)
    pre = pd.Timedelta(days=pre_period_days)
    if data_end is not None:
        g = g[g["assigned_at"] + win <= data_end]
    g["variant"] = g["variant"].astype(str)
    users = g.reset_index()

    def windows(df: pd.DataFrame) -> pd.DataFrame:
        m = df.merge(users[["user_id", "assigned_at"]], on="user_id")
        t, t0 = m["ts"], m["assigned_at"]
        m["w"] = (t >= t0) & (t <= t0 + win)  # at or after the assignment
        m["p"] = (t >= t0 - pre) & (t < t0) & (pre_period_days > 0)
        return m

    if orders is not None:
        m = windows(orders)
        for flag, p in (("w", ""), ("p", "pre_")):
            sub = m[m[flag]]
            agg = sub.groupby("user_id").agg(n=("revenue", "size"), r=("revenue", "sum"))
            users[f"{p}orders"] = users["user_id"].map(agg["n"]).fillna(0).astype(float)
            users[f"{p}revenue"] = users["user_id"].map(agg["r"]).fillna(0.0).astype(float)
    if events is not None:
        m = windows(events)
        for flag, p in (("w", "ev:"), ("p", "pre_ev:")):
            counts = m[m[flag]].groupby(["user_id", "event"]).size().unstack(fill_value=0)
            for name in events["event"].unique():
                col = counts[name] if name in counts.columns else pd.Series(dtype=float)
                users[f"{p}{name}"] = users["user_id"].map(col).fillna(0).astype(float)
    return users


def _values(u: pd.DataFrame, name: str, pre: bool) -> np.ndarray:
    s = parse_metric(name)
    p = "pre_" if pre else ""
    if s.kind in ("conversion", "orders", "revenue"):
        col = u[f"{p}orders" if s.kind != "revenue" else f"{p}revenue"].to_numpy(float)
        return (col > 0).astype(float) if s.kind == "conversion" else col
    col = f"{p}ev:{s.event}"
    counts = u[col].to_numpy(float) if col in u else np.zeros(len(u))
    return (counts > 0).astype(float) if s.kind == "event" else counts


def reference_stats(per_user: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Sufficient statistics per variant and metric from :func:`reference_per_user`
    (same columns as :func:`crm_helpers.experiments.core.sufficient_stats`)."""
    rows = []
    for v, u in per_user.groupby("variant"):
        for m in metrics:
            s = parse_metric(m)
            r = {"variant": v, "metric": m, "n": float(len(u))}
            if s.is_ratio:
                y = _values(u, s.numerator.name, False)
                d = _values(u, s.denominator.name, False)
                r.update(sum=y.sum(), sum_sq=(y * y).sum(), den_sum=d.sum())
                r.update(den_sum_sq=(d * d).sum(), num_den_sum=(y * d).sum())
            else:
                y, x = _values(u, m, False), _values(u, m, True)
                r.update(sum=y.sum(), sum_sq=(y * y).sum(), pre_sum=x.sum())
                r.update(pre_sum_sq=(x * x).sum(), cross_sum=(x * y).sum())
            rows.append(r)
    out = pd.DataFrame(rows).fillna(0.0)
    return out.sort_values(["variant", "metric"], kind="mergesort").reset_index(drop=True)

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
    """Per analysed user: ``user_id, variant, assigned_at`` and a dict column per source.

    Returns
    -------
    DataFrame
        ``user_id, variant, assigned_at, orders, revenue, pre_orders, pre_revenue`` and, for
        events, ``events`` / ``pre_events`` (dicts ``event name -> count``).
    """
    a = assignments[assignments["experiment_id"].astype(str) == str(experiment_id)]
    users = []
    win = pd.Timedelta(days=analysis_window_days)
    pre = pd.Timedelta(days=pre_period_days)
    for uid, g in a.groupby("user_id"):
        if g["variant"].nunique() > 1:
            continue
        t0 = g["assigned_at"].min()
        if data_end is not None and t0 + win > data_end:
            continue
        row = {"user_id": uid, "variant": str(g["variant"].iloc[0]), "assigned_at": t0}
        if orders is not None:
            o = orders[orders["user_id"] == uid]
            w = o[(o["ts"] > t0) & (o["ts"] <= t0 + win)]
            p = o[(o["ts"] >= t0 - pre) & (o["ts"] <= t0)] if pre_period_days > 0 else o.iloc[:0]
            row.update(
                orders=len(w),
                revenue=float(w["revenue"].sum()),
                pre_orders=len(p),
                pre_revenue=float(p["revenue"].sum()),
            )
        if events is not None:
            e = events[events["user_id"] == uid]
            w = e[(e["ts"] > t0) & (e["ts"] <= t0 + win)]
            p = e[(e["ts"] >= t0 - pre) & (e["ts"] <= t0)] if pre_period_days > 0 else e.iloc[:0]
            row["events"] = w["event"].value_counts().to_dict()
            row["pre_events"] = p["event"].value_counts().to_dict()
        users.append(row)
    return pd.DataFrame(users)


def _values(u: pd.DataFrame, name: str, pre: bool) -> np.ndarray:
    s = parse_metric(name)
    p = "pre_" if pre else ""
    if s.kind in ("conversion", "orders", "revenue"):
        col = u[f"{p}orders" if s.kind != "revenue" else f"{p}revenue"].to_numpy(float)
        return (col > 0).astype(float) if s.kind == "conversion" else col
    counts = np.array([d.get(s.event, 0) for d in u[f"{p}events"]], dtype=float)
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

"""Plain pandas reference for :func:`crm_helpers.lookalike.features.feature_table`.

The feature definitions of :mod:`crm_helpers.lookalike.features`, written independently
over pandas frames (the loaded tables fetched whole), for SMALL data only. Tests compare
the engine's table with it. Only the :class:`FeatureSpec` object is shared.

>>> ref = reference_features(tables, spec)   # tables: {"events": df, "users": df, ...}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_helpers.lookalike.features import HOUR_BINS, FeatureSpec

__all__ = ["reference_features"]


def _in_window(df: pd.DataFrame, ts: str, spec: FeatureSpec) -> pd.DataFrame:
    t = pd.to_datetime(df[ts])
    return df[(t >= spec.start) & (t < spec.as_of)]


def _days_before(as_of: pd.Timestamp, ts, default: float) -> float:
    if ts is None or pd.isna(ts):
        return default
    return (as_of - pd.Timestamp(ts)).total_seconds() / 86400.0


def reference_features(tables: dict[str, pd.DataFrame], spec: FeatureSpec) -> pd.DataFrame:
    """One row per population user (sorted by ``user_id``): ``user_id`` + ``spec.names``."""
    events = tables["events"]
    if "users" in tables:
        pop = pd.unique(tables["users"]["user_id"])
    else:
        pop = pd.unique(events["user_id"])
    pop = np.sort(pop)
    ev = _in_window(events, "ts", spec)
    ev = ev[~ev["event"].isin(set(spec.excluded_events))]  # the seed-defining events
    by_user = {u: g for u, g in ev.groupby("user_id")}
    orders = _in_window(tables["orders"], "ts", spec) if spec.orders else None
    o_by = {u: g for u, g in orders.groupby("user_id")} if orders is not None else {}
    msgs = _in_window(tables["messages"], "sent_at", spec) if spec.messages else None
    m_by = {u: g for u, g in msgs.groupby("user_id")} if msgs is not None else {}
    users = tables["users"].set_index("user_id") if "users" in tables else None
    lb = float(spec.lookback_days)
    rows = []
    for u in pop:
        g = by_user.get(u, events.iloc[0:0])
        r: dict = {"user_id": u, "events": float(len(g))}
        r["active_days"] = float(pd.to_datetime(g["ts"]).dt.date.nunique())
        r["recency_days"] = _days_before(spec.as_of, g["ts"].max() if len(g) else None, lb)
        for e in spec.event_types:
            r[f"count:{e}"] = float((g["event"] == e).sum())
        for col, values in spec.shares.items():
            known = g[col].notna().sum()
            for v in values:
                r[f"{col}:{v}"] = float((g[col] == v).sum() / known) if known else 0.0
        hours = pd.to_datetime(g["ts"]).dt.hour
        for name, (lo, hi) in HOUR_BINS.items():
            r[f"hour:{name}"] = (
                float(((hours >= lo) & (hours < hi)).sum() / len(g)) if len(g) else 0.0
            )
        if spec.orders:
            og = o_by.get(u)
            n = 0 if og is None else len(og)
            rev = 0.0 if og is None else float(og["revenue"].sum())
            r["orders"] = float(n)
            r["revenue"] = rev
            r["avg_order_value"] = rev / n if n else 0.0
            r["order_recency_days"] = _days_before(spec.as_of, og["ts"].max() if n else None, lb)
        if spec.messages:
            mg = m_by.get(u)
            sent = 0 if mg is None else len(mg)
            r["messages_sent"] = float(sent)
            for rate in spec.message_rates:
                col = rate.replace("_rate", "ed_at")
                r[rate] = float(mg[col].notna().sum() / sent) if sent else 0.0
        if spec.tenure:
            signup = users.loc[u, "signup_at"] if u in users.index else None
            r["tenure_days"] = _days_before(spec.as_of, signup, 0.0)
        for col, values in spec.attributes.items():
            val = users.loc[u, col] if u in users.index else None
            for v in values:
                r[f"attr:{col}={v}"] = (
                    1.0 if (val is not None and not pd.isna(val) and str(val) == v) else 0.0
                )
        rows.append(r)
    return pd.DataFrame(rows, columns=["user_id", *spec.names])

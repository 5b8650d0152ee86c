"""Plain-pandas references of :mod:`crm_helpers.segments.core`, the rule states and the cluster
feature table (:func:`crm_helpers.segments.clusters.feature_table`), for tests.

Written independently and as directly as the definitions read (loops where they are
clearer), on small frames. The tests require the engine results to equal these exactly.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from crm_helpers.segments.core import OTHER, as_day, parse_rules

__all__ = [
    "reference_btyd_summary",
    "reference_features",
    "reference_rfm",
    "reference_score",
]


def _days(ts: pd.Series) -> pd.Series:
    t = pd.to_datetime(ts)
    if t.dt.tz is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return (t.dt.floor("D") - pd.Timestamp("1970-01-01")).dt.days.astype("int64")


def reference_score(values: pd.Series, higher_is_better: bool) -> pd.Series:
    """Mid-rank quintile score of each value (ties share a score)."""
    v = values.to_numpy()
    n = len(v)
    out = []
    for x in v:
        below = int((v < x).sum()) if higher_is_better else int((v > x).sum())
        ties = int((v == x).sum())
        out.append(1 + math.floor(5 * (2 * below + ties) / (2 * n)))
    return pd.Series(out, index=values.index, dtype="int64")


def reference_rfm(orders: pd.DataFrame, as_of: Any, rules: Any = ()) -> pd.DataFrame:
    """RFM per customer with pandas: same columns as ``rfm_table`` (sorted by user_id)."""
    rules = parse_rules(rules)
    end = (pd.Timestamp(as_day(as_of)) - pd.Timestamp("1970-01-01")).days
    o = orders.assign(day=_days(orders["ts"]))
    o = o[o["day"] <= end]
    rows = []
    for uid, g in o.groupby("user_id", sort=True):
        buys = g[g["revenue"] >= 0]
        if buys.empty:
            continue
        rows.append(
            {
                "user_id": uid,
                "recency_days": end - int(buys["day"].max()),
                "frequency": len(buys),
                "monetary": float(g["revenue"].sum()),
                "first_day": int(buys["day"].min()),
                "last_day": int(buys["day"].max()),
            }
        )
    cols = ["user_id", "recency_days", "frequency", "monetary", "first_day", "last_day"]
    df = pd.DataFrame(rows, columns=cols)
    df["avg_order_value"] = df["monetary"] / df["frequency"]
    df["r_score"] = reference_score(df["recency_days"], higher_is_better=False)
    df["f_score"] = reference_score(df["frequency"], higher_is_better=True)
    df["m_score"] = reference_score(df["monetary"], higher_is_better=True)
    df["rfm"] = df["r_score"].astype(str) + df["f_score"].astype(str) + df["m_score"].astype(str)
    seg = []
    for r, f, m in zip(df["r_score"], df["f_score"], df["m_score"], strict=True):
        name = OTHER
        for rule in rules:
            if (
                rule.r[0] <= r <= rule.r[1]
                and rule.f[0] <= f <= rule.f[1]
                and (rule.m is None or rule.m[0] <= m <= rule.m[1])
            ):
                name = rule.segment
                break
        seg.append(name)
    df["segment"] = seg
    return df.reset_index(drop=True)


def reference_btyd_summary(
    orders: pd.DataFrame,
    observation_end: Any,
    *,
    time_unit_days: float = 1.0,
    calibration_end: Any = None,
) -> pd.DataFrame:
    """Frequency/recency/T per customer with pandas (lifetimes' definitions), by user_id."""
    obs = (pd.Timestamp(as_day(observation_end)) - pd.Timestamp("1970-01-01")).days
    cal = obs if calibration_end is None else (
        pd.Timestamp(as_day(calibration_end)) - pd.Timestamp("1970-01-01")
    ).days  # fmt: skip
    buy = orders["revenue"] >= 0
    o = orders[buy].assign(day=_days(orders.loc[buy, "ts"]))
    o = o[o["day"] <= obs]
    daily = o.groupby(["user_id", "day"], sort=True)["revenue"].sum().reset_index()
    rows = []
    for uid, g in daily.groupby("user_id", sort=True):
        first = int(g["day"].min())
        if first > cal:
            continue
        c = g[g["day"] <= cal]
        rep = c[c["day"] > first]
        h = g[g["day"] > cal]
        row = {
            "user_id": uid,
            "frequency": len(rep),
            "recency": (int(c["day"].max()) - first) / time_unit_days,
            "T": (cal - first) / time_unit_days,
            "monetary_value": float(rep["revenue"].mean()) if len(rep) else 0.0,
            "first_day": first,
        }
        if calibration_end is not None:
            row["frequency_holdout"] = len(h)
            row["monetary_value_holdout"] = float(h["revenue"].mean()) if len(h) else 0.0
            row["duration_holdout"] = (obs - cal) / time_unit_days
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["frequency"] = out["frequency"].astype("int64")
    return out.reset_index(drop=True)


def reference_rule_states(
    orders: pd.DataFrame,
    as_of: Any,
    *,
    dormant_after_days: int,
    churned_after_days: int,
    active_window_days: int,
    super_active_min_days: int,
    events: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Rule health states per user with pandas (``user_id, days_since, active_days, state``)."""
    end = (pd.Timestamp(as_day(as_of)) - pd.Timestamp("1970-01-01")).days
    buys = orders[orders["revenue"] >= 0]
    days = [pd.DataFrame({"user_id": buys["user_id"], "day": _days(buys["ts"])})]
    if events is not None:
        days.append(pd.DataFrame({"user_id": events["user_id"], "day": _days(events["ts"])}))
    a = pd.concat(days).drop_duplicates()
    a = a[a["day"] <= end]
    rows = []
    for uid, g in a.groupby("user_id", sort=True):
        since = end - int(g["day"].max())
        recent = int((g["day"] > end - active_window_days).sum())
        if since > churned_after_days:
            state = "churned"
        elif since > dormant_after_days:
            state = "dormant-risk"
        elif recent >= super_active_min_days:
            state = "super-active"
        else:
            state = "active"
        rows.append({"user_id": uid, "days_since": since, "active_days": recent, "state": state})
    return pd.DataFrame(rows, columns=["user_id", "days_since", "active_days", "state"])


def _safe_name(v: str) -> str:
    return "cat_" + "".join(ch if ch.isalnum() else "_" for ch in str(v).lower())


def _browse_name(v: str) -> str:
    return "browse_" + _safe_name(v).removeprefix("cat_")


def reference_features(
    as_of: Any,
    events: pd.DataFrame | None = None,
    orders: pd.DataFrame | None = None,
    messages: pd.DataFrame | None = None,
    n_categories: int = 8,
) -> pd.DataFrame:
    """The cluster feature table with pandas, user by user (columns and order as the engine's).

    Parameters
    ----------
    as_of
        The date; rows on later days are ignored.
    events, orders, messages
        Contract frames (``user_id, ts``; orders with ``revenue`` and optionally ``coupon``,
        ``category``; messages with ``sent_at, opened_at, clicked_at``) or ``None``.

    Returns
    -------
    pandas.DataFrame
        Shape (n_users, 1 + n_features), sorted by ``user_id``, no missing values.
    """
    end = (pd.Timestamp(as_day(as_of)) - pd.Timestamp("1970-01-01")).days
    if events is None and orders is None:
        raise ValueError("features need events or orders")
    rows: dict[Any, dict[str, float]] = {}
    last: dict[Any, int] = {}
    cats: list[str] = []
    browse: list[str] = []
    browsing = events is not None and "category" in events.columns
    if events is not None:
        e = events.assign(day=_days(events["ts"]))
        e = e[e["day"] <= end]
        if browsing:
            n = e[e["category"].notna()].groupby("category").size().reset_index(name="n")
            n = n.sort_values(["n", "category"], ascending=[False, True])
            browse = [str(c) for c in n["category"].head(n_categories)]
        for uid, g in e.groupby("user_id", sort=True):
            rows.setdefault(uid, {})
            rows[uid]["events"] = float(len(g))
            rows[uid]["active_days"] = float(g["day"].nunique())
            last[uid] = int(g["day"].max())
            with_cat = g["category"].notna().sum() if browsing else 0
            for c in browse:
                hit = (g["category"] == c).sum()
                rows[uid][_browse_name(c)] = hit / with_cat if with_cat else 0.0
    if orders is not None:
        o = orders.assign(day=_days(orders["ts"]))
        o = o[o["day"] <= end]
        if "category" in o.columns and not browsing:
            bought = o[(o["revenue"] >= 0) & o["category"].notna()]
            n = bought.groupby("category").size().reset_index(name="n")
            n = n.sort_values(["n", "category"], ascending=[False, True])
            cats = [str(c) for c in n["category"].head(n_categories)]
        for uid, g in o.groupby("user_id", sort=True):
            buys = g[g["revenue"] >= 0]
            r = rows.setdefault(uid, {})
            r["orders"] = float(len(buys))
            r["revenue"] = float(g["revenue"].sum())
            if "coupon" in o.columns:
                has = buys["coupon"].notna() & (buys["coupon"] != "")
                r["coupon_share"] = float(has.sum()) / len(buys) if len(buys) else 0.0
            for c in cats:
                hit = (buys["category"] == c).sum()
                r[_safe_name(c)] = float(hit) / len(buys) if len(buys) else 0.0
            if len(buys):
                last[uid] = max(last.get(uid, -(10**9)), int(buys["day"].max()))
    cols = []
    if events is not None:
        cols += ["events", "active_days", *(_browse_name(c) for c in browse)]
    if orders is not None:
        cols += ["orders", "revenue"]
        cols += ["coupon_share"] if "coupon" in orders.columns else []
        cols += [_safe_name(c) for c in cats]
    if messages is not None:
        m = messages[_days(messages["sent_at"]) <= end]
        for uid, g in m.groupby("user_id", sort=True):
            if uid in rows:
                rows[uid]["open_rate"] = float(g["opened_at"].notna().mean())
                rows[uid]["click_rate"] = float(g["clicked_at"].notna().mean())
        cols += ["open_rate", "click_rate"]
    out = []
    for uid in sorted(rows):
        rec = {"user_id": uid, **{c: rows[uid].get(c, 0.0) for c in cols}}
        rec["recency_days"] = float(end - last[uid]) if uid in last else 0.0
        out.append(rec)
    return pd.DataFrame(out, columns=["user_id", *cols, "recency_days"])

"""Realism of a synthetic world: the key rates of real shops, measured on the tables.

Each rate is computed with plain pandas/numpy from the five contract tables (no hidden
truth), the same way on the synthetic world and on a real log. :data:`REAL` holds the
published reference figures (see ``data/README.md``, "How real is the synthetic world")
and :data:`RANGES` the range a synthetic world must land in; the test
``tests/synth/test_realism.py`` checks a small world against it.

Definitions (``start``/``end``: the period of the data; "day" = 24 h from ``start``):

``views_per_session_mean`` / ``views_per_session_median``
    ``product_view`` events per session, over sessions with at least one view.
``carts_per_100_views`` / ``buys_per_100_views``
    ``add_to_cart`` and ``purchase`` events per 100 ``product_view`` events.
``purchase_with_view_same_session`` / ``purchase_with_cart_same_session``
    Share of ``purchase`` events whose session has a ``product_view`` / ``add_to_cart`` of
    the same ``product_id`` at or before the purchase.
``first_view_to_purchase_median_hours``
    Per user: first ``product_view``, then the first ``purchase`` at or after it; median
    gap in hours over users whose gap is at most 7 days.
``viewers_buying_within_7_days``
    Users with a ``purchase`` at most 7 days after one of their ``product_view`` events,
    over users with a ``product_view`` (the funnel report's view -> purchase conversion).
``one_time_buyer_share`` / ``orders_per_buyer``
    Among users with at least one order in the period: share with exactly one; mean orders.
``monthly_repeat``
    30-day months from ``start``; pooled over consecutive month pairs: buyers of month m who
    also buy in month m + 1, over buyers of month m.
``repeat_days_30_60`` / ``repeat_days_90_120``
    New customers (signed up in the period) whose first order is at least 120 days before
    ``end``: share with an order in days [30, 60) / [90, 120) after the first order.
``activity_decay_ratio``
    New customers (signed up at least 120 days before ``end``): share with a visit in days
    [90, 120) after signup over the share with one in days [30, 60).
``visit_14d_no_message`` / ``buy_14d_no_message``
    Every regular campaign (``campaign_id`` >= 100) whose day + 14 lies inside the period
    is a randomised test: users signed up before the send day who were not sent it are its
    control. Pooled over campaigns: share of control users with a ``visit`` / an order in
    the 14 days from the send day's midnight.
``message_lift_visit`` / ``message_lift_buy``
    Same campaigns: relative lift of recipients over the control, (p_sent / p_control - 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

US_D = 86_400 * 1_000_000

#: Real reference figures (issue #14; sources in data/README.md).
REAL: dict[str, str] = {
    "views_per_session_mean": "Taobao 5.7; Online Shoppers 32 product pages",
    "views_per_session_median": "Taobao 3",
    "carts_per_100_views": "Taobao 5.9; ~3 carts per order (70% of carts abandoned)",
    "buys_per_100_views": "Taobao 2.3; Online Shoppers 0.49 (15.5% of sessions buy, 32 pages)",
    "purchase_with_view_same_session": "Taobao 52% (same product)",
    "purchase_with_cart_same_session": "Taobao 17% (same product; Taobao has a buy button)",
    "first_view_to_purchase_median_hours": "Taobao 49 h",
    "viewers_buying_within_7_days": "single digits (e-commerce visitor-to-buyer rates)",
    "one_time_buyer_share": "CDNOW 65%, Online Retail 48%",
    "orders_per_buyer": "CDNOW 1.8, Online Retail 2.7",
    "monthly_repeat": "CDNOW 23%, Online Retail 37%",
    "repeat_days_30_60": "CDNOW 13%, Online Retail 25%",
    "repeat_days_90_120": "CDNOW 9%, Online Retail 28%",
    "activity_decay_ratio": "CDNOW repeat 9% / 13% = 0.7 (customers leave)",
    "visit_14d_no_message": "Hillstrom control 10.6%",
    "buy_14d_no_message": "Hillstrom control 0.57%",
    "message_lift_visit": "Hillstrom +57% (Mens e-mail +72%)",
    "message_lift_buy": "Hillstrom +87% (Mens e-mail +119%)",
}

#: Accepted range (inclusive) per rate: the real figures with room for shop-to-shop spread.
RANGES: dict[str, tuple[float, float]] = {
    "views_per_session_mean": (3.5, 12.0),
    "views_per_session_median": (2.0, 5.0),
    "carts_per_100_views": (2.0, 10.0),
    "buys_per_100_views": (0.45, 4.0),
    "purchase_with_view_same_session": (0.35, 0.80),
    "purchase_with_cart_same_session": (0.15, 0.65),
    "first_view_to_purchase_median_hours": (6.0, 72.0),
    "viewers_buying_within_7_days": (0.02, 0.10),
    "one_time_buyer_share": (0.42, 0.70),
    "orders_per_buyer": (1.6, 2.9),
    "monthly_repeat": (0.18, 0.40),
    "repeat_days_30_60": (0.10, 0.30),
    "repeat_days_90_120": (0.06, 0.28),
    "activity_decay_ratio": (0.4, 0.9),
    "visit_14d_no_message": (0.08, 0.30),
    "buy_14d_no_message": (0.003, 0.02),
    "message_lift_visit": (0.25, 1.20),
    "message_lift_buy": (0.40, 1.80),
}


def _us_at(t) -> int:
    """One timestamp (text or Timestamp; naive = UTC) -> int64 microseconds since the epoch."""
    t = pd.Timestamp(t)
    t = t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t
    return int(t.value // 1000)


def _us(ts: pd.Series) -> np.ndarray:
    """Timestamps (tz-aware or naive UTC) -> int64 microseconds since the epoch."""
    s = ts
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy().astype("datetime64[us]").astype(np.int64)


def session_rates(events: pd.DataFrame) -> dict[str, float]:
    """Browsing rates of the events table (columns user_id, event, ts, session_id, product_id).

    Returns the ``views_per_session_*``, ``*_per_100_views`` and ``purchase_with_*`` rates.
    """
    ev = events[["event", "ts", "session_id", "product_id"]]
    views = ev[ev["event"] == "product_view"]
    per_sess = views.groupby("session_id").size()
    n_views = len(views)
    n_carts = int((ev["event"] == "add_to_cart").sum())
    pur = ev[ev["event"] == "purchase"]
    out = {
        "views_per_session_mean": float(per_sess.mean()),
        "views_per_session_median": float(per_sess.median()),
        "carts_per_100_views": 100.0 * n_carts / n_views,
        "buys_per_100_views": 100.0 * len(pur) / n_views,
    }
    pk = pur[["session_id", "product_id", "ts"]].reset_index(drop=True)
    pk["row"] = np.arange(len(pk))
    for step, key in (("product_view", "view"), ("add_to_cart", "cart")):
        st = ev.loc[ev["event"] == step, ["session_id", "product_id", "ts"]]
        j = pk.merge(st, on=["session_id", "product_id"], suffixes=("", "_s"))
        hit = np.unique(j.loc[j["ts_s"] <= j["ts"], "row"].to_numpy())
        out[f"purchase_with_{key}_same_session"] = len(hit) / max(len(pk), 1)
    # first view -> first purchase at or after it, per user, within 7 days
    first_view = (
        views.assign(user_id=events.loc[views.index, "user_id"]).groupby("user_id")["ts"].min()
    )
    p = events.loc[pur.index, ["user_id", "ts"]].merge(
        first_view.rename("fv"), left_on="user_id", right_index=True
    )
    p = p[p["ts"] >= p["fv"]].groupby("user_id").agg(ts=("ts", "min"), fv=("fv", "first"))
    gap_h = (p["ts"] - p["fv"]).dt.total_seconds() / 3600.0
    gap_h = gap_h[gap_h <= 7 * 24]
    out["first_view_to_purchase_median_hours"] = float(gap_h.median())
    # viewers who buy within 7 days after one of their views (the funnel report's
    # product_view -> purchase conversion over the whole period)
    pv = events.loc[views.index, ["user_id", "ts"]].sort_values("ts")
    pp = events.loc[pur.index, ["user_id", "ts"]].sort_values("ts")
    j = pd.merge_asof(
        pp, pv.rename(columns={"ts": "tv"}), left_on="ts", right_on="tv", by="user_id"
    )
    ok = (j["ts"] - j["tv"]) <= pd.Timedelta(days=7)
    out["viewers_buying_within_7_days"] = j.loc[ok, "user_id"].nunique() / max(
        pv["user_id"].nunique(), 1
    )
    return out


def repeat_rates(users: pd.DataFrame, orders: pd.DataFrame, start, end) -> dict[str, float]:
    """Repeat-buying rates of the orders table (see the module docstring)."""
    start_us, end_us = _us_at(start), _us_at(end)
    o_u = orders["user_id"].to_numpy()
    o_t = _us(orders["ts"])
    per_buyer = pd.Series(o_u).value_counts()
    out = {
        "one_time_buyer_share": float((per_buyer == 1).mean()),
        "orders_per_buyer": float(per_buyer.mean()),
    }
    month = (o_t - start_us) // (30 * US_D)
    n_months = int((end_us - start_us) // (30 * US_D))
    bm = pd.DataFrame({"u": o_u, "m": month}).drop_duplicates()
    bm = bm[bm["m"] < n_months]
    nxt = bm.assign(m=bm["m"] - 1)
    both = bm.merge(nxt, on=["u", "m"])
    base = bm[bm["m"] < n_months - 1]
    out["monthly_repeat"] = len(both) / max(len(base), 1)
    signup = users.set_index("user_id")["signup_at"]
    new = signup.index[_us(signup) >= start_us]
    o = pd.DataFrame({"u": o_u, "t": o_t})
    o = o[o["u"].isin(new)]
    first = o.groupby("u")["t"].transform("min")
    o = o.assign(d=(o["t"] - first) / US_D)
    cohort = o.loc[first <= end_us - 120 * US_D, "u"].unique()
    oc = o[o["u"].isin(cohort)]
    for lo, hi in ((30, 60), (90, 120)):
        hit = oc.loc[(oc["d"] >= lo) & (oc["d"] < hi), "u"].nunique()
        out[f"repeat_days_{lo}_{hi}"] = hit / max(len(cohort), 1)
    out["repeat_cohort_size"] = float(len(cohort))
    return out


def _any_in_window(key_sorted: np.ndarray, u: np.ndarray, lo: int, hi: int, shift: int):
    """For users ``u``: is there a (user, t) in ``key_sorted`` with lo <= t < hi."""
    a = np.searchsorted(key_sorted, (u << shift) + lo)
    b = np.searchsorted(key_sorted, (u << shift) + hi)
    return b > a


def message_rates(
    users: pd.DataFrame,
    events: pd.DataFrame,
    orders: pd.DataFrame,
    messages: pd.DataFrame,
    start,
    end,
    channel: str | None = None,
    window_days: int = 14,
    without_click: bool = False,
) -> dict[str, float]:
    """Baseline and lift of regular campaigns (see the module docstring).

    ``channel`` restricts to campaigns of one channel (e.g. ``"email"``);
    ``without_click=True`` leaves the recipients who clicked out of the sent arm (what the
    message did to people who never clicked).
    """
    start_us, end_us = _us_at(start), _us_at(end)
    ids = pd.Index(users["user_id"].to_numpy())
    signup = _us(users["signup_at"])
    span = end_us + window_days * US_D - start_us
    shift = int(span).bit_length()

    def keyed(uid, ts):
        t = _us(ts) - start_us
        idx = ids.get_indexer(uid)
        ok = (idx >= 0) & (t >= 0)
        return np.sort((idx[ok].astype(np.int64) << shift) + t[ok])

    visits = events[events["event"] == "visit"]
    kv = keyed(visits["user_id"].to_numpy(), visits["ts"])
    ko = keyed(orders["user_id"].to_numpy(), orders["ts"])
    m = messages[messages["campaign_id"] >= 100]
    if channel is not None:
        m = m[m["channel"] == channel]
    sent_day = (_us(m["sent_at"]) - start_us) // US_D
    cnt = np.zeros((2, 3))  # (control, sent) x (users, visited, bought)
    m_idx = ids.get_indexer(m["user_id"].to_numpy())
    for cid in np.unique(m["campaign_id"].to_numpy()):
        sel = (m["campaign_id"] == cid).to_numpy()
        day = int(sent_day[sel].min())
        lo = day * US_D
        hi = lo + window_days * US_D
        if start_us + hi > end_us:
            continue
        elig = np.flatnonzero(signup < start_us + lo)
        sent = np.zeros(len(ids), dtype=bool)
        sent[m_idx[sel]] = True
        clicker = np.zeros(len(ids), dtype=bool)
        if without_click:
            clicker[m_idx[sel & m["clicked_at"].notna().to_numpy()]] = True
        treated = elig[sent[elig] & ~clicker[elig]]
        for arm, us in ((0, elig[~sent[elig]]), (1, treated)):
            us = us.astype(np.int64)
            cnt[arm] += (
                len(us),
                _any_in_window(kv, us, lo, hi, shift).sum(),
                _any_in_window(ko, us, lo, hi, shift).sum(),
            )
    p = cnt[:, 1:] / np.maximum(cnt[:, :1], 1)
    return {
        "visit_14d_no_message": float(p[0, 0]),
        "buy_14d_no_message": float(p[0, 1]),
        "message_lift_visit": float(p[1, 0] / p[0, 0] - 1) if p[0, 0] else float("nan"),
        "message_lift_buy": float(p[1, 1] / p[0, 1] - 1) if p[0, 1] else float("nan"),
        "message_test_users": float(cnt[:, 0].sum()),
    }


def activity_decay(users: pd.DataFrame, events: pd.DataFrame, start, end) -> dict[str, float]:
    """Share of new customers with a ``visit`` in days [30, 60) and [90, 120) after signup.

    New customers: signed up in the period at least 120 days before ``end``. Customers who
    leave make the later share smaller (``activity_decay_ratio`` = later / earlier).
    """
    start_us, end_us = _us_at(start), _us_at(end)
    su = _us(users["signup_at"])
    new = (su >= start_us) & (su <= end_us - 120 * US_D)
    signup = pd.Series(su[new], index=users["user_id"].to_numpy()[new])
    v = events.loc[events["event"] == "visit", ["user_id", "ts"]]
    v = v[v["user_id"].isin(signup.index)]
    d = (_us(v["ts"]) - signup.loc[v["user_id"]].to_numpy()) / US_D
    out = {"activity_cohort_size": float(len(signup))}
    for lo, hi in ((30, 60), (90, 120)):
        out[f"active_days_{lo}_{hi}"] = v.loc[(d >= lo) & (d < hi), "user_id"].nunique() / max(
            len(signup), 1
        )
    out["activity_decay_ratio"] = out["active_days_90_120"] / out["active_days_30_60"]
    return out


def realism_rates(tables: dict[str, pd.DataFrame], start, end) -> dict[str, float]:
    """All rates of :data:`RANGES` (plus sample sizes) for the five contract tables.

    Parameters
    ----------
    tables
        ``users``, ``events``, ``orders``, ``messages`` (pandas, contract columns plus
        ``events.product_id``).
    start, end
        The period of the data (timestamps).

    Returns
    -------
    dict
        rate name -> value.
    """
    out = session_rates(tables["events"])
    out.update(repeat_rates(tables["users"], tables["orders"], start, end))
    out.update(activity_decay(tables["users"], tables["events"], start, end))
    out.update(
        message_rates(
            tables["users"], tables["events"], tables["orders"], tables["messages"], start, end
        )
    )
    return out


def realism_table(tables: dict[str, pd.DataFrame], start, end) -> pd.DataFrame:
    """:func:`realism_rates` as a table: rate, value, low, high, inside, real.

    Returns
    -------
    DataFrame
        One row per rate of :data:`RANGES` (index: rate name).
    """
    r = realism_rates(tables, start, end)
    rows = []
    for k, (lo, hi) in RANGES.items():
        v = r[k]
        rows.append(
            {"rate": k, "value": v, "low": lo, "high": hi, "inside": lo <= v <= hi, "real": REAL[k]}
        )
    return pd.DataFrame(rows).set_index("rate")

"""Brute-force campaign counts in plain pandas/Python, for the tests of the engine.

The rules of :mod:`crm_helpers.campaigns.core` (its module docstring), written the obvious
way: for each conversion, scan the user's messages; for each message, scan the user's
earlier messages. Quadratic per user; for small test data only.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from crm_helpers.campaigns.core import CLICK_FLAGS, COUNT_COLUMNS

__all__ = ["reference_counts", "reference_facts"]

_TRUE_TEXT = {"true", "t", "yes", "y", "1"}


def _truthy(v) -> bool:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return False
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | float | np.integer | np.floating):
        return v != 0
    return str(v).strip().lower() in _TRUE_TEXT


def _ts(x) -> pd.Timestamp | None:
    if x is None or x is pd.NaT or (not isinstance(x, pd.Timestamp) and pd.isna(x)):
        return None
    return pd.Timestamp(x)


def reference_facts(
    messages: pd.DataFrame,
    conversions: pd.DataFrame | None = None,
    *,
    attribution_days: float = 3.0,
    machine_open_seconds: float = 5.0,
    timezone: str = "UTC",
    fatigue_window_days: float | None = None,
) -> pd.DataFrame:
    """Per-message facts, as :func:`crm_helpers.campaigns.core.message_facts` defines them.

    ``messages`` and ``conversions`` hold naive-UTC timestamps.
    """
    msgs = messages.to_dict("records")
    has_open = "opened_at" in messages.columns
    flag = None
    if "clicked_at" not in messages.columns:
        flag = next((c for c in CLICK_FLAGS if c in messages.columns), None)
    has_click = "clicked_at" in messages.columns or flag is not None
    window = pd.Timedelta(days=attribution_days)
    credit: dict = {m["message_id"]: [0, 0.0] for m in msgs}
    by_user: dict = {}
    for m in msgs:
        by_user.setdefault(m["user_id"], []).append(m)
    if conversions is not None:
        for c in conversions.to_dict("records"):
            ts = pd.Timestamp(c["ts"])
            best = None
            for m in by_user.get(c["user_id"], []):
                s = pd.Timestamp(m["sent_at"])
                if s < ts <= s + window:
                    key = (s, m["message_id"])
                    if best is None or key > best:
                        best = key
            if best is not None:
                credit[best[1]][0] += 1
                r = c.get("revenue")
                credit[best[1]][1] += 0.0 if r is None or pd.isna(r) else float(r)
    tz = ZoneInfo(timezone)
    rows = []
    for m in msgs:
        s = pd.Timestamp(m["sent_at"])
        wall = s.tz_localize("UTC").tz_convert(tz)
        row = {
            "message_id": m["message_id"],
            "user_id": m["user_id"],
            "campaign_id": m["campaign_id"],
            "channel": m["channel"],
            "sent_at": s,
            "hour": wall.hour,
            "weekday": wall.weekday(),
            "sent": 1,
        }
        o = _ts(m.get("opened_at")) if has_open else None
        if has_open:
            machine = o is not None and (o - s) <= pd.Timedelta(seconds=machine_open_seconds)
            row.update(
                opened=int(o is not None),
                machine_opened=int(machine),
                human_opened=int(o is not None and not machine),
            )
        else:
            row.update(opened=pd.NA, machine_opened=pd.NA, human_opened=pd.NA)
        if has_click:
            clicked = _ts(m.get("clicked_at")) is not None if flag is None else _truthy(m[flag])
            row["clicked"] = int(clicked)
            row["clicked_opened"] = int(clicked and o is not None) if has_open else pd.NA
        else:
            row.update(clicked=pd.NA, clicked_opened=pd.NA)
        if conversions is not None:
            n, rev = credit[m["message_id"]]
            row.update(conversions=n, converted=int(n > 0), revenue=rev)
        else:
            row.update(conversions=pd.NA, converted=pd.NA, revenue=np.nan)
        if fatigue_window_days is not None:
            lo = s - pd.Timedelta(days=fatigue_window_days)
            row["prior_messages"] = sum(
                lo <= pd.Timestamp(p["sent_at"]) < s for p in by_user[m["user_id"]]
            )
        rows.append(row)
    return pd.DataFrame(rows)


def reference_counts(facts: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sums of :data:`~crm_helpers.campaigns.core.COUNT_COLUMNS` per ``by`` (sorted)."""
    cols = [c for c in COUNT_COLUMNS if c in facts.columns]
    out = facts.groupby(by, sort=True)[cols].sum(min_count=1).reset_index()
    out["sent"] = facts.groupby(by, sort=True).size().to_numpy()
    if "revenue" in out:
        out["revenue"] = out["revenue"].fillna(0.0) if facts["revenue"].notna().any() else np.nan
    return out

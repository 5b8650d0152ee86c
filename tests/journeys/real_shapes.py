"""Event logs shaped like two real exports, small and seeded, for the journey defaults.

* :func:`b2b_leads`: a B2B sales pipeline as a CRM exports it: text lead ids
  (``L-00042``), the stages ``lead_created`` -> ``contacted`` -> ``qualified`` ->
  ``proposal`` -> ``won`` / ``lost`` days to weeks apart, an ``owner`` column, timestamps as
  ISO text with ``Z``; no orders table. Converters (``won``) are more often referrals and
  more often had a ``proposal``; several leads are lost early.
* :func:`taobao_clicks`: a Taobao UserBehavior-style clickstream: integer user, item and
  category ids, ``behavior_type`` in ``pv`` / ``cart`` / ``fav`` / ``buy`` seconds to
  minutes apart, sessions on several days; the file has its own column names and a
  ``schema.yaml`` maps them (``event: behavior_type``, ``ts: timestamp``).

Each ``write_*`` writes the directory a report reads and returns the canonical frame
(``user_id, event, ts`` naive UTC, plus the other columns), which the references use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

B2B_START = pd.Timestamp("2024-01-08 09:00")  # a Monday


def b2b_leads(n: int = 240, seed: int = 5) -> pd.DataFrame:
    """The pipeline's events (canonical columns, naive UTC ``ts``), sorted by lead and time."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        lead = f"L-{i:05d}"
        source = rng.choice(["referral", "webinar", "cold_outreach"], p=[0.3, 0.3, 0.4])
        owner = rng.choice(["ana", "ben", "chloe"])
        t = B2B_START + pd.Timedelta(hours=float(rng.uniform(0, 24 * 120)))
        rows.append((lead, "lead_created", t, source, owner))
        p_won = {"referral": 0.55, "webinar": 0.35, "cold_outreach": 0.15}[source]
        for step, (lo, hi), p_go in (
            ("contacted", (0.5, 4), 0.9),
            ("qualified", (2, 12), 0.75),
            ("proposal", (4, 20), 0.8),
        ):
            if rng.random() > p_go:
                if rng.random() < 0.6:  # closed as lost at this point
                    t = t + pd.Timedelta(days=float(rng.uniform(3, 25)))
                    rows.append((lead, "lost", t, source, owner))
                break
            t = t + pd.Timedelta(days=float(rng.uniform(lo, hi)))
            rows.append((lead, step, t, source, owner))
        else:
            t = t + pd.Timedelta(days=float(rng.uniform(5, 30)))
            rows.append((lead, "won" if rng.random() < p_won else "lost", t, source, owner))
    df = pd.DataFrame(rows, columns=["user_id", "event", "ts", "source", "owner"])
    df["ts"] = df["ts"].dt.floor("s").astype("datetime64[us]")
    return df.sort_values(["user_id", "ts"], ignore_index=True)


def write_b2b_leads(d: Path, **kw) -> pd.DataFrame:
    """``events.csv`` (ISO text with ``Z``) in ``d``; returns :func:`b2b_leads`."""
    df = b2b_leads(**kw)
    text = df.assign(ts=df["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    text.to_csv(d / "events.csv", index=False)
    return df


TAOBAO_START = pd.Timestamp("2017-11-25 08:00")


def taobao_clicks(n_users: int = 120, seed: int = 3) -> pd.DataFrame:
    """The clickstream (canonical columns, naive UTC ``ts``): per user 1-4 sessions on
    different days, each a run of ``pv`` seconds to minutes apart, with ``fav`` and
    ``cart`` now and then and, in some sessions with a cart, a ``buy``."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        uid = 1_000_000 + 37 * u
        day0 = TAOBAO_START + pd.Timedelta(days=int(rng.integers(0, 9)))
        for s in range(int(rng.integers(1, 5))):
            t = day0 + pd.Timedelta(days=s, minutes=float(rng.uniform(0, 600)))
            carted = False
            for _ in range(int(rng.integers(2, 12))):
                item = int(rng.integers(1, 5000))
                cat = item % 40
                rows.append((uid, "pv", t, item, cat))
                t = t + pd.Timedelta(seconds=float(rng.uniform(5, 240)))
                r = rng.random()
                if r < 0.08:
                    rows.append((uid, "fav", t, item, cat))
                    t = t + pd.Timedelta(seconds=float(rng.uniform(2, 30)))
                elif r < 0.2:
                    rows.append((uid, "cart", t, item, cat))
                    carted = True
                    t = t + pd.Timedelta(seconds=float(rng.uniform(2, 60)))
            if carted and rng.random() < 0.45:
                rows.append((uid, "buy", t, item, cat))
    df = pd.DataFrame(rows, columns=["user_id", "event", "ts", "item_id", "category_id"])
    df["ts"] = df["ts"].dt.floor("s").astype("datetime64[us]")
    return df.sort_values(["user_id", "ts"], kind="mergesort", ignore_index=True)


TAOBAO_SCHEMA = """\
# Taobao UserBehavior as published: its own column names, mapped here.
tables:
  events: UserBehavior
columns:
  events:
    event: behavior_type
    ts: timestamp
"""


def write_taobao_clicks(d: Path, **kw) -> pd.DataFrame:
    """``UserBehavior.csv`` (its own column names, times as text) and ``schema.yaml`` in
    ``d``; returns :func:`taobao_clicks`."""
    df = taobao_clicks(**kw)
    raw = df.rename(columns={"event": "behavior_type", "ts": "timestamp"})
    raw = raw[["user_id", "item_id", "category_id", "behavior_type", "timestamp"]]
    raw = raw.assign(timestamp=raw["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    raw.to_csv(d / "UserBehavior.csv", index=False)
    (d / "schema.yaml").write_text(TAOBAO_SCHEMA)
    return df

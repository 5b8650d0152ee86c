"""A tiny, seeded CRM data set written as Parquet (used until ``small_world`` is available).

Loaded by path from the report, notebook and CLI tests (no package import needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

EVENTS = ("app_open", "visit", "product_view", "add_to_cart", "purchase")
START = pd.Timestamp("2024-01-01")


def build(out_dir: Path, n_users: int = 120, seed: int = 7) -> Path:
    """Write users/events/orders/messages/assignments Parquet files into ``out_dir``."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    user_id = np.arange(1, n_users + 1, dtype="int64")
    signup = START + pd.to_timedelta(rng.integers(0, 14 * 24 * 60, n_users), unit="min")
    age = rng.choice(["18-24", "25-34", "35-54", "55+"], n_users).astype(object)
    age[rng.random(n_users) < 0.1] = None
    users = pd.DataFrame(
        {
            "user_id": user_id,
            "signup_at": signup,
            "country": rng.choice(["DE", "FR", "ES"], n_users, p=[0.5, 0.3, 0.2]),
            "platform": rng.choice(["ios", "android", "web"], n_users),
            "age_band": age,
        }
    )
    n_ev = rng.integers(5, 40, n_users)
    ev_user = np.repeat(user_id, n_ev)
    ev_signup = np.repeat(signup.to_numpy(), n_ev)
    offset = pd.to_timedelta(rng.integers(0, 28 * 24 * 3600, len(ev_user)), unit="s")
    events = pd.DataFrame(
        {
            "user_id": ev_user,
            "event": rng.choice(EVENTS, len(ev_user), p=[0.35, 0.3, 0.2, 0.1, 0.05]),
            "ts": pd.DatetimeIndex(ev_signup) + offset,
            "session_id": ev_user * 1000 + rng.integers(0, 5, len(ev_user)),
        }
    )
    buyers = events[events["event"] == "purchase"].reset_index(drop=True)
    orders = pd.DataFrame(
        {
            "order_id": np.arange(1, len(buyers) + 1, dtype="int64"),
            "user_id": buyers["user_id"],
            "ts": buyers["ts"],
            "revenue": np.round(rng.gamma(2.0, 20.0, len(buyers)), 2),
        }
    )
    n_msg = n_users * 2
    sent = START + pd.to_timedelta(rng.integers(14 * 24 * 60, 40 * 24 * 60, n_msg), unit="min")
    opened = sent + pd.to_timedelta(rng.integers(1, 600, n_msg), unit="min")
    opened = opened.where(rng.random(n_msg) < 0.4)
    messages = pd.DataFrame(
        {
            "message_id": np.arange(1, n_msg + 1, dtype="int64"),
            "user_id": np.tile(user_id, 2),
            "campaign_id": rng.integers(1, 4, n_msg),
            "channel": rng.choice(["push", "email"], n_msg),
            "sent_at": sent,
            "opened_at": opened,
        }
    )
    assignments = pd.DataFrame(
        {
            "experiment_id": np.ones(n_users, dtype="int64"),
            "user_id": user_id,
            "variant": rng.choice(["control", "treatment"], n_users),
            "assigned_at": signup + pd.Timedelta(hours=1),
        }
    )
    for name, df in {
        "users": users,
        "events": events,
        "orders": orders,
        "messages": messages,
        "assignments": assignments,
    }.items():
        for col in df.columns:
            if pd.api.types.is_datetime64_any_dtype(df[col]):
                df[col] = df[col].astype("datetime64[us]")
        df.to_parquet(out_dir / f"{name}.parquet", index=False)
    return out_dir

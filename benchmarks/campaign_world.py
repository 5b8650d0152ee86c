"""A messages-scale world for bench_campaigns.py: users, messages and orders Parquet (numpy).

The full synthetic generator (``crm generate``) simulates every user's events and would take
hours for 100M messages; this one draws only what the campaign scorecard and the
hour x weekday table read, in vectorised chunks written straight to Parquet (bounded memory):

* ``users.parquet``: ``user_id`` 0..n-1, ``signup_at`` in the year before the window.
* ``messages.parquet``: ``message_id`` 0..m-1, a uniform random ``user_id``, one of 200
  campaigns, channel (email 50%, push 30%, sms 10%, in-app 10%), ``sent_at`` over 180 days
  from 2024-01-01 UTC with a daytime-heavy hour profile; 30% opened (hours later, or within
  5 s for 10% of opens: machine opens), 10% of opens clicked.
* ``orders.parquet``: per 100 messages two orders: one 0-4 days after a random message of
  the same user (half of them inside the 3-day attribution window), one at a random time.

Timestamps are ``timestamp[us, tz=UTC]`` like the synthetic world's. Same seed, same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START_US = 1_704_067_200_000_000  # 2024-01-01 00:00 UTC
DAY_US = 86_400_000_000
WINDOW_DAYS = 180
CHUNK = 5_000_000
CHANNELS = np.array(["email", "push", "sms", "in-app"])
CHANNEL_P = [0.5, 0.3, 0.1, 0.1]
_HOURS = np.array([1, 1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 8, 9, 8, 7, 7, 8, 10, 12, 12, 10, 6, 3, 2])
HOUR_P = _HOURS / _HOURS.sum()
TS = pa.timestamp("us", tz="UTC")


def _ts(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, type=pa.int64(), mask=mask).cast(TS)


def write_world(out: Path, n_users: int, n_messages: int, seed: int = 7) -> Path:
    """Write the three tables into ``out`` (skipped when ``out`` already holds this world)."""
    out = Path(out)
    stamp = {"users": n_users, "messages": n_messages, "seed": seed}
    marker = out / "campaign_world.json"
    if marker.exists() and json.loads(marker.read_text()) == stamp:
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(out / "users.parquet", _users_schema()) as w:
        for lo in range(0, n_users, CHUNK):
            ids = np.arange(lo, min(lo + CHUNK, n_users), dtype=np.int64)
            signup = START_US - rng.integers(0, 365 * DAY_US, len(ids))
            w.write_table(pa.table({"user_id": ids, "signup_at": _ts(signup)}))
    order_id = 0
    with (
        pq.ParquetWriter(out / "messages.parquet", _messages_schema()) as wm,
        pq.ParquetWriter(out / "orders.parquet", _orders_schema()) as wo,
    ):
        for lo in range(0, n_messages, CHUNK):
            msgs = _messages(rng, lo, min(lo + CHUNK, n_messages), n_users)
            wm.write_table(msgs, row_group_size=1 << 20)
            orders = _orders(rng, msgs, n_users, order_id)
            order_id += orders.num_rows
            wo.write_table(orders, row_group_size=1 << 20)
    marker.write_text(json.dumps(stamp))
    return out


def _users_schema() -> pa.Schema:
    return pa.schema([("user_id", pa.int64()), ("signup_at", TS)])


def _messages_schema() -> pa.Schema:
    return pa.schema(
        [
            ("message_id", pa.int64()),
            ("user_id", pa.int64()),
            ("campaign_id", pa.int64()),
            ("channel", pa.string()),
            ("sent_at", TS),
            ("opened_at", TS),
            ("clicked_at", TS),
        ]
    )


def _orders_schema() -> pa.Schema:
    return pa.schema(
        [
            ("order_id", pa.int64()),
            ("user_id", pa.int64()),
            ("ts", TS),
            ("revenue", pa.float64()),
            ("quantity", pa.int64()),
        ]
    )


def _messages(rng: np.random.Generator, lo: int, hi: int, n_users: int) -> pa.Table:
    n = hi - lo
    day = rng.integers(0, WINDOW_DAYS, n)
    hour = rng.choice(24, n, p=HOUR_P)
    sent = START_US + day * DAY_US + hour * 3_600_000_000 + rng.integers(0, 3_600_000_000, n)
    opened = rng.random(n) < 0.3
    machine = rng.random(n) < 0.1
    delay = np.where(
        machine,
        rng.integers(0, 5_000_001, n),
        (rng.exponential(2.0, n) * 3_600_000_000).astype(np.int64) + 5_000_001,
    )
    clicked = opened & (rng.random(n) < 0.1)
    click_delay = (rng.exponential(0.5, n) * 3_600_000_000).astype(np.int64)
    return pa.table(
        {
            "message_id": np.arange(lo, hi, dtype=np.int64),
            "user_id": rng.integers(0, n_users, n),
            "campaign_id": rng.integers(1, 201, n),
            "channel": pa.array(CHANNELS[rng.choice(4, n, p=CHANNEL_P)]),
            "sent_at": _ts(sent),
            "opened_at": _ts(sent + delay, ~opened),
            "clicked_at": _ts(sent + delay + click_delay, ~clicked),
        },
        schema=_messages_schema(),
    )


def _orders(rng: np.random.Generator, msgs: pa.Table, n_users: int, first_id: int) -> pa.Table:
    n = msgs.num_rows // 100
    pick = rng.integers(0, msgs.num_rows, n)
    users = np.concatenate(
        [msgs["user_id"].to_numpy()[pick], rng.integers(0, n_users, n)]
    )  # one order after a message of the same user, one at random
    sent = msgs["sent_at"].cast(pa.int64()).to_numpy()[pick]
    after = sent + rng.integers(1, 4 * DAY_US, n)
    anytime = START_US + rng.integers(0, WINDOW_DAYS * DAY_US, n)
    m = 2 * n
    return pa.table(
        {
            "order_id": np.arange(first_id, first_id + m, dtype=np.int64),
            "user_id": users,
            "ts": _ts(np.concatenate([after, anytime])),
            "revenue": np.round(rng.lognormal(3.5, 0.8, m), 2),
            "quantity": rng.integers(1, 5, m),
        },
        schema=_orders_schema(),
    )

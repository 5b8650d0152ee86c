"""Message-log shapes of real exports, for tests/notebooks/test_foreign_shapes.py.

* ``sms_no_opens``: ``messages.csv`` of SMS with ``clicked_at`` and no ``opened_at``
  column, text ids; ``events.csv`` with ``pv`` and ``buy`` events (the purchase event, no
  orders).
* ``clicks_no_opens``: e-mail with ``opened_at`` and ``clicked_at``, a third of the clicks
  without a logged open (blocked pixels); ``orders.csv`` with revenue.
* ``email_opens_no_clicks``: e-mail with ``opened_at`` only (some machine opens, 1-3 s
  after the send); no other table.
* ``impressions``: ``impressions.csv``, one row per impression with a 0/1 ``clicked``
  flag and its own column names, mapped by ``schema.yaml``; no other table.

Each builder writes the files and returns the canonical frames (naive-UTC timestamps) that
:func:`campaign_check` compares the report's ``metrics.json`` with, through the brute-force
reference of :mod:`crm_helpers.campaigns.reference`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from crm_helpers.campaigns.reference import reference_counts, reference_facts

START = pd.Timestamp("2024-03-04 06:00")  # a Monday; 5 weeks of sends


def _log(seed: int, n_users: int = 60, n: int = 420, prefix: str = "u") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sent = START + pd.to_timedelta(rng.integers(0, 35 * 24 * 60, n), unit="min")
    return pd.DataFrame(
        {
            "message_id": [f"m{i:04d}" for i in range(n)],
            "user_id": [f"{prefix}{u:03d}" for u in rng.integers(0, n_users, n)],
            "campaign_id": rng.choice(["spring", "winback", "newsletter"], n),
            "sent_at": sent.astype("datetime64[us]"),
        }
    )


def _later(rng, sent: pd.Series, p: float, lo_s: float, hi_s: float) -> pd.Series:
    delay = pd.to_timedelta(rng.uniform(lo_s, hi_s, len(sent)), unit="s")
    t = (sent + delay).dt.floor("s")
    return t.where(rng.random(len(sent)) < p).astype("datetime64[us]")


def _text(s: pd.Series) -> pd.Series:
    return s.dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")


def _buys(rng, msgs: pd.DataFrame, n: int) -> pd.DataFrame:
    pick = msgs.sample(n, random_state=int(rng.integers(1 << 30)))
    ts = pick["sent_at"] + pd.to_timedelta(rng.uniform(60, 5 * 86_400, n), unit="s")
    return pd.DataFrame({"user_id": pick["user_id"].to_numpy(), "ts": ts.dt.floor("s")})


def sms_no_opens(d: Path) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(21)
    m = _log(21).assign(channel="sms")
    m["clicked_at"] = _later(rng, m["sent_at"], 0.12, 30, 7200)
    m.assign(sent_at=_text(m["sent_at"]), clicked_at=_text(m["clicked_at"])).to_csv(
        d / "messages.csv", index=False
    )
    buys = _buys(rng, m, 40).assign(event="buy")
    visits = _buys(rng, m, 300).assign(event="pv")  # page views after sends, some users buy
    visits["ts"] = visits["ts"] - pd.Timedelta(seconds=30)
    ev = pd.concat([visits, buys], ignore_index=True)[["user_id", "event", "ts"]]
    ev["ts"] = ev["ts"].astype("datetime64[us]")
    ev.assign(ts=_text(ev["ts"])).to_csv(d / "events.csv", index=False)
    return {"messages": m, "events": ev}


def clicks_no_opens(d: Path) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(22)
    m = _log(22).assign(channel="email")
    m["opened_at"] = _later(rng, m["sent_at"], 0.3, 60, 20_000)
    clicked = _later(rng, m["sent_at"], 0.15, 100, 30_000)
    m["clicked_at"] = clicked.where(m["opened_at"].isna() | (clicked > m["opened_at"]))
    m.to_parquet(d / "messages.parquet", index=False)
    o = _buys(rng, m, 50)
    o.insert(0, "order_id", np.arange(1, len(o) + 1))
    o["ts"] = o["ts"].astype("datetime64[us]")
    o["revenue"] = rng.integers(5, 120, len(o)).astype(float)
    o.assign(ts=_text(o["ts"])).to_csv(d / "orders.csv", index=False)
    return {"messages": m, "orders": o}


def email_opens_no_clicks(d: Path) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(23)
    m = _log(23).assign(channel="email")
    human = _later(rng, m["sent_at"], 0.25, 60, 40_000)
    machine = _later(rng, m["sent_at"], 0.15, 1, 3)
    m["opened_at"] = machine.fillna(human).astype("datetime64[us]")
    m.assign(sent_at=_text(m["sent_at"]), opened_at=_text(m["opened_at"])).to_csv(
        d / "messages.csv", index=False
    )
    return {"messages": m}


IMPRESSION_SCHEMA = """\
tables:
  messages: impressions
columns:
  messages:
    message_id: impression_id
    user_id: visitor
    campaign_id: placement
    sent_at: shown_at
"""


def impressions(d: Path) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(24)
    m = _log(24, prefix="v").assign(channel="in-app")
    m["clicked"] = (rng.random(len(m)) < 0.08).astype(int)
    raw = m.rename(
        columns={"message_id": "impression_id", "user_id": "visitor", "campaign_id": "placement",
                 "sent_at": "shown_at"}
    )  # fmt: skip
    raw.assign(shown_at=_text(raw["shown_at"])).to_csv(d / "impressions.csv", index=False)
    (d / "schema.yaml").write_text(IMPRESSION_SCHEMA)
    return {"messages": m}


MESSAGE_SHAPES: dict[str, Callable[[Path], dict[str, pd.DataFrame]]] = {
    "sms_no_opens": sms_no_opens,
    "clicks_no_opens": clicks_no_opens,
    "email_opens_no_clicks": email_opens_no_clicks,
    "impressions": impressions,
}


def _none_or(x):
    return None if x is None or pd.isna(x) else x


def campaign_check(m: dict, frames: dict[str, pd.DataFrame]) -> None:
    """The report's ``campaigns`` and ``by_hour`` equal the brute-force reference."""
    msgs = frames["messages"]
    if "orders" in frames:
        conv = frames["orders"][["user_id", "ts", "revenue"]]
    elif "events" in frames:
        ev = frames["events"]
        conv = ev.loc[ev["event"] == "buy", ["user_id", "ts"]].assign(revenue=np.nan)
    else:
        conv = None
    p = m["provenance"]["parameters"]
    facts = reference_facts(
        msgs, conv, attribution_days=p["attribution_days"],
        machine_open_seconds=p["machine_open_seconds"], timezone=p["timezone"],
    )  # fmt: skip
    want = reference_counts(facts, ["campaign_id", "channel"])
    got = pd.DataFrame(m["metrics"]["campaigns"]).sort_values("campaign_id")
    assert got["campaign_id"].tolist() == want["campaign_id"].tolist()
    assert got["sent"].tolist() == want["sent"].tolist()
    for col in ("opened", "clicked", "converted"):
        assert [_none_or(v) for v in got[col]] == [_none_or(v) for v in want[col]], col
    if "orders" in frames:
        np.testing.assert_allclose(got["revenue"].astype(float), want["revenue"], atol=1e-9)
        assert want["converted"].sum() > 0  # the fixture has attributed conversions
    hours = reference_counts(facts, ["channel", "hour"])
    for ch, rows in m["metrics"]["by_hour"].items():
        h = hours[hours["channel"] == ch]
        assert [r["sent"] for r in rows] == h["sent"].tolist()
        assert [_none_or(r["opened"]) for r in rows] == [_none_or(v) for v in h["human_opened"]]
        assert [_none_or(r["clicked"]) for r in rows] == [_none_or(v) for v in h["clicked"]]

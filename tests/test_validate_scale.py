"""Validation's cheap counts (crm_helpers.data.validate_scale) give the exact path's report.

Keys and unknown users are counted with bitmaps on DuckDB (integer ids in a bounded range)
and the future-dates percentile is skipped when a tail count proves it cannot matter. Each
data set below is loaded twice: as shipped, and with the cheap paths switched off (every
key by ``nunique``, unknown users by anti-join, exact percentiles); the findings and
cleaning rules must be identical, and the counts equal those taken with plain pandas/numpy.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from crm_helpers.data import load, validate_scale
from crm_helpers.data.validate import validate

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def world(n_users: int = 300, n_msgs: int = 3000, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {"user_id": np.arange(n_users), "signup_at": T0 - pd.to_timedelta(rng.integers(1, 300, n_users), "D")}
    )  # fmt: skip
    sent = T0 + pd.to_timedelta(rng.integers(0, 90 * 86400, n_msgs), "s")
    opened = sent + pd.to_timedelta(rng.integers(1, 7200, n_msgs), "s")
    msgs = pd.DataFrame(
        {
            "message_id": np.arange(n_msgs),
            "user_id": rng.integers(0, n_users, n_msgs),
            "campaign_id": rng.integers(1, 5, n_msgs),
            "channel": rng.choice(["email", "push"], n_msgs),
            "sent_at": sent,
            "opened_at": opened.where(rng.random(n_msgs) < 0.4),
            "clicked_at": pd.NaT,
        }
    )
    msgs["clicked_at"] = pd.to_datetime(msgs["clicked_at"], utc=True)
    n_orders = n_msgs // 10
    orders = pd.DataFrame(
        {
            "order_id": np.arange(n_orders) + 10,
            "user_id": rng.integers(0, n_users, n_orders),
            "ts": T0 + pd.to_timedelta(rng.integers(0, 90 * 86400, n_orders), "s"),
            "revenue": rng.uniform(5, 50, n_orders).round(2),
        }
    )
    return {"users": users, "messages": msgs, "orders": orders}


def write(path, frames):
    path.mkdir()
    for name, df in frames.items():
        df.to_parquet(path / f"{name}.parquet", index=False)
    return path


def exact_off(monkeypatch):
    """Switch the cheap paths off: nunique keys, anti-joins, exact percentiles."""
    monkeypatch.setattr(validate_scale, "MAX_BITMAP_RANGE", 0)
    monkeypatch.setattr(validate_scale, "_tails", lambda contexts, row: {})


def report(data):
    q = validate(data)  # the report, errors included (load would raise on them)
    found = sorted((f.table, f.column or "", f.check, f.severity, f.count) for f in q.findings)
    return found, q.cleaning


def both(tmp_path, monkeypatch, frames):
    d = write(tmp_path / "data", frames)
    fast = report(load(d, validate=False))
    with monkeypatch.context() as m:
        exact_off(m)
        exact = report(load(d, validate=False))
    return fast, exact


def counts(found) -> dict:
    return {(t, c, k): n for t, c, k, _, n in found}


def test_duplicates_and_unknown_users_bitmap_equals_exact_and_pandas(tmp_path, monkeypatch):
    f = world()
    msgs, orders = f["messages"], f["orders"]
    msgs.loc[[5, 6, 7], "message_id"] = [1, 1, 2]  # 3 extra rows (ids 1, 1, 2 repeat)
    msgs.loc[[10, 11, 12], "user_id"] = [300, 301, 301]  # unknown: 3 rows, 2 distinct ids
    orders.loc[[0, 1], "user_id"] = [-5, 150]  # one below users' range
    orders.loc[2, "order_id"] = orders.loc[3, "order_id"]
    fast, exact = both(tmp_path, monkeypatch, f)
    assert fast == exact
    c = counts(fast[0])
    known = set(f["users"].user_id)
    assert c[("messages", "message_id", "duplicate_key")] == len(msgs) - msgs.message_id.nunique()
    assert c[("messages", "user_id", "unknown_user")] == (~msgs.user_id.isin(known)).sum() == 3
    assert c[("orders", "user_id", "unknown_user")] == (~orders.user_id.isin(known)).sum() == 1
    assert c[("orders", "order_id", "duplicate_key")] == 1


def test_no_finding_on_clean_dense_ids(tmp_path, monkeypatch):
    fast, exact = both(tmp_path, monkeypatch, world(seed=1))
    assert fast == exact == ([], {})


@pytest.mark.parametrize("kind", ["text", "sparse"])
def test_text_and_sparse_ids_fall_back_to_exact_counts(tmp_path, monkeypatch, kind):
    f = world(seed=2)
    for name, key in (("users", "user_id"), ("messages", "message_id"), ("orders", "order_id")):
        df = f[name]
        if kind == "text":
            df[key] = "k" + df[key].astype(str)
        else:  # ids 2^40 apart: no bitmap over that range
            df[key] = df[key].astype("int64") * (1 << 40)
    for name in ("messages", "orders"):
        u = f[name]["user_id"]
        f[name]["user_id"] = (
            "k" + u.astype(str) if kind == "text" else u.astype("int64") * (1 << 40)
        )
    f["messages"].loc[3, "message_id"] = f["messages"].loc[4, "message_id"]
    f["orders"].loc[0, "user_id"] = "nobody" if kind == "text" else 7
    fast, exact = both(tmp_path, monkeypatch, f)
    assert fast == exact
    c = counts(fast[0])
    assert c[("messages", "message_id", "duplicate_key")] == 1
    assert c[("orders", "user_id", "unknown_user")] == 1


def seconds(values: pd.Series) -> np.ndarray:
    return (values.dropna() - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy()


def numpy_fires(values: pd.Series) -> bool:
    """The future-dates rule by hand: max > 99.9th percentile (linear) + 30 days."""
    s = seconds(values)
    return bool(s.max() > np.quantile(s, 0.999) + 30 * 86400)


@pytest.mark.parametrize("gap_h", [-30, -1, 1, 30])
@pytest.mark.parametrize("n_late", [1, 3, 4, 6])
def test_future_outliers_at_the_percentile_boundary(tmp_path, monkeypatch, gap_h, n_late):
    """``n_late - 1`` sent_at values just after the data's end, and a last one ``gap_h``
    hours beyond (or before) the 99.9th percentile + 30 days.

    With 3000 messages the percentile sits among the last 4 values, so the tail count
    (rows from max - 30 d) settles some cases and leaves the others to the exact
    percentile; both must agree with each other and with numpy.
    """
    f = world(seed=3)
    m = f["messages"]
    end = m.sent_at.max()
    late = m.index[-n_late:]
    for i, ix in enumerate(late[:-1]):
        m.loc[ix, "sent_at"] = end + pd.Timedelta(hours=1 + i)
    # the percentile does not depend on the largest value while it stays the largest
    m.loc[late[-1], "sent_at"] = end + pd.Timedelta(days=3650)
    q = np.quantile(seconds(m.sent_at), 0.999)
    m.loc[late[-1], "sent_at"] = pd.Timestamp(
        q + 30 * 86400 + gap_h * 3600, unit="s", tz="UTC"
    ).floor("us")
    fast, exact = both(tmp_path, monkeypatch, f)
    assert fast == exact
    fired = ("messages", "sent_at", "future_dates") in counts(fast[0])
    assert fired == numpy_fires(m.sent_at) == (gap_h > 0)


def test_dates_beyond_the_load_time_use_the_median_rule(tmp_path, monkeypatch):
    f = world(seed=4)
    now = pd.Timestamp(dt.datetime.now(dt.UTC))
    f["orders"].loc[[0, 1], "ts"] = [now + pd.Timedelta(days=3), now + pd.Timedelta(days=400)]
    fast, exact = both(tmp_path, monkeypatch, f)
    assert fast[0] == exact[0]  # the cleaning cutoffs hold each load's own time
    assert counts(fast[0])[("orders", "ts", "future_dates")] == 2


def test_clean_dense_ids_take_the_cheap_paths(tmp_path, monkeypatch):
    """No nunique, anti-join or percentile is computed for clean data with dense ids."""
    d = write(tmp_path / "data", world(seed=5))
    rows = []
    real = validate_scale.complete

    def spy(con, contexts, row):
        real(con, contexts, row)
        rows.append(row)

    def refuse(*a, **k):
        raise AssertionError("an exact count was computed")

    monkeypatch.setattr(validate_scale, "complete", spy)
    monkeypatch.setattr(validate_scale, "_scalar", refuse)
    load(d)
    (row,) = rows
    assert row["messages__key_distinct"] == 3000 and row["users__key_distinct"] == 300
    assert row["messages__unknown_users"] == row["orders__unknown_users"] == 0
    assert row["messages__sent_at_q"] is None and row["orders__ts_q"] is None

"""The cluster feature table in the engine equals the plain-pandas reference (and the hand count)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_helpers.segments import clusters as cl
from crm_helpers.segments.reference import reference_features
from tests.segments.conftest import D0

AS_OF = "2024-01-31"  # day 30 after D0
# purchases per category (users 1 and 4): "Home & Garden" 5 (a safe column name is needed), b 3,
# c-f 2 each, then "alpha", "g", "refunded" and "zeta" tie at 1 for the last two of the top 8:
# the names decide ("alpha", "g"); "refunded" is also refunded twice (refunds are not counted)
CATS = ["Home & Garden"] * 4 + ["b", "c", "d", "e", "f"] * 2 + ["g", "alpha", "zeta"]


def _ts(day: float, hour: int = 12) -> pd.Timestamp:
    return D0 + pd.Timedelta(days=day, hours=hour)


def tiny() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """events, orders, messages of seven users (see the comments)."""
    ev = [
        (1, 0), (1, 0, 18), (1, 4),  # 1: three events on two days
        (2, 10), (2, 40),  # 2: events only; one after as_of (ignored)
        (6, 35),  # 6: only after as_of -> absent
        (7, 30, 23),  # 7: an event late on as_of and an order earlier
        # 9: days 0, 62, 63, 125, 126 (twice) and 300 before as_of: across 63-day words
        (9, 30), (9, -32), (9, -33), (9, -95), (9, -96), (9, -96, 20), (9, -270),
    ]  # fmt: skip
    events = pd.DataFrame([(u, _ts(d, *h)) for u, d, *h in ev], columns=["user_id", "ts"]).astype(
        {"user_id": "int64", "ts": "datetime64[us]"}
    )
    od = [
        # user, day, revenue, coupon, category
        (1, 2, 10.0, "SAVE", "Home & Garden"),
        (1, 6, 30.0, "", "b"),  # an empty coupon is no coupon
        (1, 7, -10.0, "SAVE", "Home & Garden"),  # a refund: net revenue only, never a purchase
        (3, 3, -5.0, None, "refunded"),  # 3: refunds only: 0 purchases, no last day
        (3, 4, -5.0, None, "refunded"),
        (7, 1, 0.0, None, None),  # a free order is a purchase (no category)
        (8, 50, 9.0, None, "b"),  # 8: after as_of only -> absent
    ]
    # user 4 buys the category mix (14 purchases) so the top-8 choice has a tie to break
    od += [(4, 5 + i % 3, 1.0 + i, "X" if i % 2 else None, c) for i, c in enumerate(CATS)]
    od += [(4, 9, 2.0, None, "refunded")]
    orders = pd.DataFrame(od, columns=["user_id", "day", "revenue", "coupon", "category"])
    orders.insert(0, "order_id", range(1, len(orders) + 1))
    orders["ts"] = [_ts(d) for d in orders.pop("day")]
    orders = orders.astype({"ts": "datetime64[us]", "user_id": "int64"})
    msgs = pd.DataFrame(
        [
            (1, 1, 0, _ts(1), _ts(1, 13), None),
            (2, 2, 0, _ts(3), _ts(3, 13), _ts(3, 14)),
            (3, 3, 0, _ts(45), _ts(45, 13), _ts(45, 14)),  # sent after as_of: ignored
            (4, 4, 0, _ts(5), None, None),
            (5, 5, 0, _ts(5), _ts(5, 13), None),  # 5: messages only -> absent
        ],
        columns=["message_id", "user_id", "campaign_id", "sent_at", "opened_at", "clicked_at"],
    )
    for c in ("sent_at", "opened_at", "clicked_at"):
        msgs[c] = pd.to_datetime(msgs[c]).astype("datetime64[us]")
    return events, orders, msgs


def _tables(con, frames):
    return [con.create_table(f"feat_{i}", f, overwrite=True) for i, f in enumerate(frames)]


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got["user_id"].tolist() == want["user_id"].tolist()
    feats = [c for c in got.columns if c != "user_id"]
    assert (got.dtypes[feats] == "float64").all() and not got[feats].isna().any().any()
    np.testing.assert_allclose(
        got[feats].to_numpy(float), want[feats].to_numpy(float), rtol=1e-12, atol=1e-12
    )


def test_features_tiny_by_hand():
    from crm_helpers.engine import connect

    e, o, m = _tables(connect("duckdb"), tiny())
    f = cl.feature_table(as_of=AS_OF, events=e, orders=o, messages=m).set_index("user_id")
    assert f.index.tolist() == [1, 2, 3, 4, 7, 9]
    top8 = ["home___garden", "b", "c", "d", "e", "f", "alpha", "g"]  # by count, ties by name
    assert [c[4:] for c in f.columns if c.startswith("cat_")] == top8
    one = f.loc[1]
    assert (one["events"], one["active_days"], one["orders"], one["revenue"]) == (3, 2, 2, 30)
    assert (one["coupon_share"], one["cat_home___garden"], one["cat_b"]) == (0.5, 0.5, 0.5)
    assert (one["open_rate"], one["click_rate"], one["recency_days"]) == (1.0, 0.0, 24.0)
    assert (f.loc[2, "events"], f.loc[2, "orders"], f.loc[2, "recency_days"]) == (1, 0, 20)
    assert (f.loc[2, "open_rate"], f.loc[2, "click_rate"]) == (1.0, 1.0)
    # refunds only: a user with 0 purchases, net revenue -10, no active day (recency 0)
    three = f.loc[3]
    assert (three["orders"], three["revenue"], three["recency_days"]) == (0, -10, 0)
    assert three["open_rate"] == 0.0  # the message after as_of does not count
    assert f.loc[4, "orders"] == len(CATS) + 1 and f.loc[4, "cat_alpha"] == 1 / (len(CATS) + 1)
    assert f.loc[4, "open_rate"] == 0.0 and f.loc[4, "coupon_share"] == 8 / 18
    # the later of the event day (30) and the purchase day (1)
    assert (f.loc[7, "recency_days"], f.loc[7, "orders"], f.loc[7, "events"]) == (0, 1, 1)
    assert (f.loc[9, "events"], f.loc[9, "active_days"], f.loc[9, "recency_days"]) == (7, 6, 0)


def test_event_counts_bitmap_equals_day_groups():
    """The per-word bitmaps (DuckDB, Spark) and the (user, day) groups (other engines) agree."""
    from crm_helpers.engine import connect

    ev = connect("duckdb").create_table("feat_ev", _browsing(tiny()[0]), overwrite=True)
    e = ev.select("user_id", "category", day=cl._day(ev))
    end = 30 + (D0 - pd.Timestamp("1970-01-01")).days
    e = e.filter(e.day <= end)
    for browse in (None, ["k0", "k3", "Home & Garden"]):
        fast, plain = (
            cl._event_counts(e, end, b, browse)
            .to_pandas()
            .sort_values("user_id")
            .reset_index(drop=True)
            for b in ("duckdb", None)
        )
        pd.testing.assert_frame_equal(fast, plain)
        assert fast["active_days"].tolist() == [2, 1, 1, 6]


def _browsing(ev: pd.DataFrame) -> pd.DataFrame:
    """Events with a ``category`` (10 values and empties, so the top 8 has ties to break)."""
    kinds = [*(f"k{i}" for i in range(10)), None, "Home & Garden"]
    return ev.assign(category=[kinds[(i * 7) % len(kinds)] for i in range(len(ev))])


@pytest.mark.parametrize(
    "parts", ["all", "events", "orders", "no_messages", "string_ids", "browse", "browse_events"]
)
def test_features_equal_reference(con, parts):
    ev, od, ms = tiny()
    if parts.startswith("browse"):  # browsing categories replace the purchase ones
        ev = _browsing(ev)
    if parts == "string_ids":
        ev, od, ms = (f.assign(user_id="u" + f["user_id"].astype(str)) for f in (ev, od, ms))
    if parts == "orders":
        od = od.drop(columns=["coupon", "category"])  # a bare contract orders table
    frames = {"events": ev, "orders": od, "messages": ms}
    keep = {
        "all": ("events", "orders", "messages"),
        "string_ids": ("events", "orders", "messages"),
        "events": ("events", "messages"),
        "orders": ("orders",),
        "no_messages": ("events", "orders"),
        "browse": ("events", "orders", "messages"),
        "browse_events": ("events",),
    }[parts]
    tabs = dict(zip(frames, _tables(con, list(frames.values())), strict=True))
    got = cl.feature_table(as_of=AS_OF, **{k: tabs[k] for k in keep})
    want = reference_features(AS_OF, **{k: frames[k] for k in keep})
    assert_same(got, want)
    if parts.startswith("browse"):
        assert [c for c in got.columns if c.startswith("browse_")] and not [
            c for c in got.columns if c.startswith("cat_")
        ]


def test_features_need_events_or_orders():
    with pytest.raises(ValueError, match="events or orders"):
        cl.feature_table(as_of=AS_OF)


def test_features_before_any_data_are_empty():
    from crm_helpers.engine import connect

    e, o, m = _tables(connect("duckdb"), tiny())
    f = cl.feature_table(as_of="2023-01-01", events=e, orders=o, messages=m)
    assert f.empty and "recency_days" in f.columns


def test_features_equal_reference_on_small_world(small_world):
    from crm_helpers import load

    data = load(small_world, validate=False)
    from crm_helpers.segments.core import last_order_date

    as_of = pd.Timestamp(last_order_date(data.orders)) - pd.Timedelta(days=30)
    got = cl.feature_table(
        as_of=as_of, events=data.events, orders=data.orders, messages=data.messages
    )
    want = reference_features(
        as_of,
        data.events.to_pandas(),
        data.orders.to_pandas(),
        data.messages.to_pandas(),
    )
    assert len(got) > 1000
    assert_same(got, want)

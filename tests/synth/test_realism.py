"""The synthetic world behaves like real shops: key rates inside the documented ranges.

The reference figures (Taobao UserBehavior, CDNOW, UCI Online Retail, Online Shoppers
Intention, Hillstrom) and the accepted ranges are :data:`crm_helpers.synth.realism.REAL` /
``RANGES`` and the table in ``data/README.md``. The rate definitions are checked first on
tiny hand-made tables whose answers are obvious.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_helpers.synth import SynthConfig, generate
from crm_helpers.synth import realism as R

START, END = "2025-01-01", "2025-07-01"


@pytest.fixture(scope="module")
def world():
    return generate(SynthConfig(n_users=50_000, seed=5))


def _period(w):
    return w.ground_truth["period"]["start"], w.ground_truth["period"]["end"]


# --- the definitions, on tiny tables -----------------------------------------------------
def _ts(*hours):
    return pd.to_datetime(START, utc=True) + pd.to_timedelta(list(hours), unit="h")


def test_session_rates_on_a_tiny_log():
    # session 1: views of products 1, 2, 1; cart of 1; purchase of 1
    # session 2: one view of 3; session 3 (a later cart return): purchase of 2, no view
    ev = pd.DataFrame(
        {
            "user_id": [1] * 6 + [2, 1],
            "event": ["product_view", "product_view", "product_view", "add_to_cart",
                      "purchase", "product_view", "product_view", "purchase"],
            "ts": _ts(1.0, 1.1, 1.2, 1.3, 1.4, 50.0, 2.0, 60.0),
            "session_id": [1, 1, 1, 1, 1, 2, 4, 3],
            "product_id": [1, 2, 1, 1, 1, 3, 5, 2],
        }
    )  # fmt: skip
    r = R.session_rates(ev)
    assert r["views_per_session_mean"] == pytest.approx(5 / 3)  # sessions 1, 2, 4: 3, 1, 1
    assert r["views_per_session_median"] == 1.0
    assert r["carts_per_100_views"] == pytest.approx(100 / 5)
    assert r["buys_per_100_views"] == pytest.approx(200 / 5)
    assert r["purchase_with_view_same_session"] == 0.5
    assert r["purchase_with_cart_same_session"] == 0.5
    # user 1: first view at 1.0 h, first purchase at 1.4 h (user 2 never buys)
    assert r["first_view_to_purchase_median_hours"] == pytest.approx(0.4)


def test_repeat_rates_on_tiny_orders():
    users = pd.DataFrame(
        {"user_id": [1, 2, 3], "signup_at": _ts(1, 1, -100)}  # user 3 signed up before
    )
    day = 24.0
    orders = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 3, 3],
            # user 1: days 0, 40, 100 (month 0, 1, 3); user 2: day 0; user 3: days 0, 35
            "ts": _ts(2, 40 * day + 2, 100 * day + 2, 2, 2, 35 * day),
        }
    )
    r = R.repeat_rates(users, orders, START, END)
    assert r["one_time_buyer_share"] == pytest.approx(1 / 3)
    assert r["orders_per_buyer"] == pytest.approx(2.0)
    # month pairs: month 0 buyers {1, 2, 3}, 2 buy in month 1; month 1 {1, 3}: none in 2;
    # month 3 {1}: none in 4 -> 2 / 6
    assert r["monthly_repeat"] == pytest.approx(2 / 6)
    # new customers 1 and 2 (user 3 signed up before the period): user 1 buys at day 40
    # (in [30, 60)) and day 100 (in [90, 120))
    assert r["repeat_days_30_60"] == 0.5 and r["repeat_days_90_120"] == 0.5


def test_message_rates_on_a_tiny_campaign():
    users = pd.DataFrame({"user_id": [1, 2, 3, 4], "signup_at": _ts(-10, -10, -10, -10)})
    sent = _ts(24 * 10 + 9)[0]
    messages = pd.DataFrame(
        {
            "user_id": [1, 2],
            "campaign_id": [100, 100],
            "channel": ["email", "email"],
            "sent_at": [sent, sent],
            "clicked_at": [pd.NaT, sent],
        }
    )
    # recipients 1 and 2 both visit, 1 buys; of the control (3, 4) only 3 visits
    ev = pd.DataFrame(
        {"user_id": [1, 2, 3], "event": "visit", "ts": _ts(24 * 12, 24 * 11, 24 * 13)}
    )
    orders = pd.DataFrame({"user_id": [1, 4], "ts": _ts(24 * 12, 24 * 30)})
    r = R.message_rates(users, ev, orders, messages, START, END)
    assert r["visit_14d_no_message"] == 0.5 and r["buy_14d_no_message"] == 0.0
    assert r["message_lift_visit"] == pytest.approx(1.0)  # 100% vs 50%
    r = R.message_rates(users, ev, orders, messages, START, END, without_click=True)
    assert r["message_lift_visit"] == pytest.approx(1.0)  # user 1 alone: 100% vs 50%


# --- the synthetic world -----------------------------------------------------------------
def test_key_rates_inside_documented_ranges(world):
    table = R.realism_table(world.tables(), *_period(world))
    assert set(table.index) == set(R.RANGES) == set(R.REAL)
    outside = table[~table["inside"]]
    assert outside.empty, outside[["value", "low", "high", "real"]].to_string()


def test_customers_leave_after_acquisition(world):
    """Ordinary customers drop out: fewer new customers are active 3-4 months after signup
    than 1-2 months after (a one-sided two-proportion test far beyond chance)."""
    r = R.activity_decay(world.users, world.events, *_period(world))
    n = r["activity_cohort_size"]
    p1, p2 = r["active_days_30_60"], r["active_days_90_120"]
    se = np.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)
    assert n > 1_000 and (p1 - p2) / se > 4
    # the planted dropout is in the hidden truth, for the ordinary types only
    truth = world.truth["users"]
    dropped = truth["dropout_at"].notna()
    assert set(truth.loc[dropped, "customer_type"]) == {"sports_fans", "bargain_hunters", "casual"}
    gt = world.ground_truth["behaviour"]["dropout"]
    assert dropped.sum() == sum(gt["dropped_before_start"].values()) + sum(
        gt["dropped_in_period"].values()
    )


def test_messages_change_behaviour_of_recipients_who_never_click(world):
    start, end = _period(world)
    r = R.message_rates(
        world.users, world.events, world.orders, world.messages, start, end, without_click=True
    )
    n = r["message_test_users"]
    assert n > 100_000
    # a clear lift on visits and purchases without any click
    assert r["message_lift_visit"] > 0.15 and r["message_lift_buy"] > 0.2
    nudges = world.ground_truth["behaviour"]["nudges"]
    assert nudges["nudged_messages_without_click"] > 0.9 * nudges["nudged_messages"]
    assert (
        nudges["nudged_sessions"]
        == world.ground_truth["counts"]["sessions_by_source"]["message_nudge"]
    )


def test_sessions_browse_and_revisit(world):
    ev = world.events
    views = ev[ev["event"] == "product_view"]
    per_session = views.groupby("session_id").size()
    assert per_session.max() > 30  # heavy tail
    assert (per_session == 1).mean() < 0.35
    # a purchased product was viewed in an earlier session of the same user (revisits)
    pur = ev[ev["event"] == "purchase"][["user_id", "product_id", "session_id", "ts"]]
    j = pur.merge(
        views[["user_id", "product_id", "session_id", "ts"]], on=["user_id", "product_id"]
    )
    earlier = j[(j["session_id_y"] != j["session_id_x"]) & (j["ts_y"] < j["ts_x"])]
    assert earlier["session_id_x"].nunique() > 0.3 * len(pur)
    assert set(ev["event"]) >= {"listing_view", "search"}
    gt = world.ground_truth["behaviour"]["browsing"]
    assert gt["product_views"] == len(views)
    assert gt["listing_views"] == (ev["event"] == "listing_view").sum()

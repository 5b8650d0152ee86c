"""RFM and the BTYD summary in the engine equal the plain-pandas reference exactly."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_helpers.segments import core
from crm_helpers.segments.reference import reference_btyd_summary, reference_rfm, reference_score
from tests.segments.conftest import orders_df, to_table

# user 1: four purchases, two on one day; user 2: a purchase and a free (zero-revenue) order;
# user 3: a purchase and a refund bigger than it (net negative); user 4: a refund only (not a
# customer);
# user 5: buys only after as_of; user 6: bought on as_of, late evening (same UTC day)
ROWS = [
    (1, 0, 10.0), (1, 5, 20.0), (1, 5, 5.0, 18), (1, 20, 40.0),
    (2, 3, 15.0), (2, 8, 0.0),
    (3, 1, 30.0), (3, 2, -45.0),
    (4, 6, -3.0),
    (5, 40, 99.0),
    (6, 30, 12.0, 23),
]  # fmt: skip
AS_OF = "2024-01-31"  # day 30


def _sorted(t) -> pd.DataFrame:
    return t.to_pandas().sort_values("user_id").reset_index(drop=True)


def test_rfm_tiny_by_hand():
    got = _sorted(core.rfm_table(to_table(orders_df(ROWS)), AS_OF))
    assert got["user_id"].tolist() == [1, 2, 3, 6]  # 4: no purchase, 5: after as_of
    assert got["recency_days"].tolist() == [10, 22, 29, 0]
    assert got["frequency"].tolist() == [4, 2, 1, 1]
    assert got["monetary"].tolist() == [75.0, 15.0, -15.0, 12.0]
    # R: customers strictly less recent ("below") 2, 1, 0, 3 of n=4, no ties:
    # 1 + floor(5 * (2*below + 1) / 8)
    assert got["r_score"].tolist() == [4, 2, 1, 5]
    # F: users 3 and 6 tie at 1 (below 0, ties 2 -> 1 + floor(10/8) = 2); user 2 below 2
    # -> 1 + floor(25/8) = 4; user 1 below 3 -> 5
    assert got["f_score"].tolist() == [5, 4, 2, 2]
    assert got["segment"].tolist() == ["Loyal", "At risk", "Lost", "Potential loyalist"]


@pytest.mark.parametrize("as_of", ["2024-01-01", "2024-01-06", AS_OF, "2024-03-01"])
def test_rfm_equals_reference(con, as_of):
    df = orders_df(ROWS)
    got = _sorted(core.rfm_table(to_table(df, con), as_of))
    ref = reference_rfm(df, as_of)
    pd.testing.assert_frame_equal(got[ref.columns], ref, check_dtype=False)


def test_rfm_before_any_data_is_empty():
    t = core.rfm_table(to_table(orders_df(ROWS)), "2023-06-01")
    assert t.count().execute() == 0
    s = core.segment_summary(t)
    assert s["customers"].sum() == 0 and len(s) == len(core.DEFAULT_RULES)
    assert s["revenue_share"].isna().all()


def test_all_customers_alike_land_in_one_segment():
    df = orders_df([(u, 3, 10.0) for u in range(1, 8)])
    got = core.rfm_table(to_table(df), AS_OF).to_pandas()
    assert set(got["rfm"]) == {"333"}
    s = core.segment_summary(core.rfm_table(to_table(df), AS_OF)).set_index("segment")
    assert s.loc["Needs attention", "customers"] == 7
    assert s.loc["Needs attention", "revenue_share"] == 1.0
    assert s.loc["Needs attention", "avg_order_value"] == 10.0


def test_segment_summary_sums():
    df = orders_df(ROWS)
    s = core.segment_summary(core.rfm_table(to_table(df), AS_OF)).set_index("segment")
    assert s["customers"].sum() == 4
    assert s["revenue"].sum() == pytest.approx(75 + 15 - 15 + 12)
    assert s["revenue_share"].sum() == pytest.approx(1.0)
    assert s.loc["Loyal", "avg_order_value"] == pytest.approx(75 / 4)
    assert s.loc["Lost", "avg_order_value"] == pytest.approx(-15.0)  # refund bigger than spend
    assert s.loc["Champions", "customers"] == 0 and pd.isna(s.loc["Champions", "avg_order_value"])


def test_scores_are_quintiles_for_distinct_values():
    v = pd.Series(range(10))
    assert reference_score(v, True).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert reference_score(v, False).tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_custom_rules_and_bad_rules():
    rules = [{"segment": "Recent", "r": [4, 5], "f": [1, 5], "action": "thank"},
             {"segment": "Old", "r": [1, 3], "f": [1, 5]}]  # fmt: skip
    got = _sorted(core.rfm_table(to_table(orders_df(ROWS)), AS_OF, rules))
    assert got["segment"].tolist() == ["Recent", "Old", "Old", "Recent"]  # R: 4, 2, 1, 5
    with pytest.raises(ValueError, match="'r' must be"):
        core.parse_rules([{"segment": "x", "r": [0, 6], "f": [1, 5]}])
    with pytest.raises(ValueError, match="must be a dict"):
        core.parse_rules(["Champions"])
    with pytest.raises(ValueError, match="unique"):
        core.parse_rules([{"segment": "x", "r": [1, 5], "f": [1, 5]}] * 2)
    with pytest.raises(ValueError, match="date"):
        core.rfm_table(to_table(orders_df(ROWS)), "not a date")


def test_default_rules_cover_the_grid_once():
    cells = {(r, f) for r in range(1, 6) for f in range(1, 6)}
    hits = {c: [x.segment for x in core.DEFAULT_RULES
                if x.r[0] <= c[0] <= x.r[1] and x.f[0] <= c[1] <= x.f[1]] for c in cells}  # fmt: skip
    assert all(len(v) == 1 for v in hits.values()), hits
    assert len(core.DEFAULT_RULES) == 11


@pytest.mark.parametrize("cal", [None, "2024-01-10"])
def test_btyd_summary_equals_reference(con, cal):
    df = orders_df(ROWS)
    got = _sorted(
        core.btyd_summary(to_table(df, con), AS_OF, time_unit_days=7.0, calibration_end=cal)
    )
    ref = reference_btyd_summary(df, AS_OF, time_unit_days=7.0, calibration_end=cal)
    pd.testing.assert_frame_equal(got[ref.columns], ref, check_dtype=False)


def test_btyd_summary_by_hand():
    got = _sorted(core.btyd_summary(to_table(orders_df(ROWS)), AS_OF))
    u1 = got.set_index("user_id").loc[1]
    # purchase days 0, 5 (two orders = one transaction of 25), 20: two repeats
    assert (u1["frequency"], u1["recency"], u1["T"], u1["monetary_value"]) == (2, 20, 30, 32.5)
    u2 = got.set_index("user_id").loc[2]  # the free order is a (zero-value) purchase day
    assert (u2["frequency"], u2["recency"], u2["monetary_value"]) == (1, 5, 0.0)
    u3 = got.set_index("user_id").loc[3]  # the refund is not a purchase day
    assert (u3["frequency"], u3["recency"], u3["T"], u3["monetary_value"]) == (0, 0, 29, 0.0)
    with pytest.raises(ValueError, match="before the observation end"):
        core.btyd_summary(to_table(orders_df(ROWS)), AS_OF, calibration_end="2024-02-10")
    with pytest.raises(ValueError, match="time_unit_days"):
        core.btyd_summary(to_table(orders_df(ROWS)), AS_OF, time_unit_days=0)


def test_rfm_equals_reference_on_small_world(small_world):
    df = pd.read_parquet(
        small_world / "orders.parquet", columns=["order_id", "user_id", "ts", "revenue"]
    )
    df["ts"] = (
        pd.to_datetime(df["ts"]).dt.tz_convert(None) if pd.to_datetime(df["ts"]).dt.tz else df["ts"]
    )
    as_of = (pd.to_datetime(df["ts"]).max() - pd.Timedelta(days=20)).date().isoformat()
    got = _sorted(core.rfm_table(to_table(df), as_of))
    ref = reference_rfm(df, as_of)
    pd.testing.assert_frame_equal(got[ref.columns], ref, check_dtype=False)
    assert got["segment"].nunique() >= 6

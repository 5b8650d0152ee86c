"""Overlap of seeds / lookalikes with RFM segments and health states: hand-made cases."""

from __future__ import annotations

from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.data import CRMData
from crm_helpers.engine import connect
from crm_helpers.lookalike.overlap import (
    NO_ACTIVITY,
    NO_PURCHASE,
    overlap_counts,
    overlap_table,
    segment_labels,
)
from crm_helpers.schema import Schema
from crm_helpers.segments.core import rfm_table

AS_OF = pd.Timestamp("2024-06-01")  # exclusive: the segments are taken at 2024-05-31


def _data(with_orders=True) -> CRMData:
    day = AS_OF - pd.Timedelta(days=1)
    ev = []
    for d in range(5):  # user 1: active on 5 of the last 30 days -> super-active
        ev.append((1, day - pd.Timedelta(days=d)))
    ev.append((2, day - pd.Timedelta(days=3)))  # active
    ev.append((3, day - pd.Timedelta(days=40)))  # dormant-risk
    ev.append((4, day - pd.Timedelta(days=120)))  # churned
    ev.append((5, AS_OF + pd.Timedelta(days=2)))  # after as_of only: never active by then
    events = pd.DataFrame(ev, columns=["user_id", "ts"]).assign(event="visit")
    events["ts"] = events["ts"].astype("datetime64[us]")
    users = pd.DataFrame({"user_id": [1, 2, 3, 4, 5, 6]})  # 6: no event at all
    orders = pd.DataFrame(
        {
            "order_id": ["a", "b", "c"],
            "user_id": [1, 1, 3],
            "ts": pd.to_datetime(["2024-05-30", "2024-05-20", "2024-04-01"]).astype(
                "datetime64[us]"
            ),
            "revenue": [10.0, 20.0, 5.0],
        }
    )
    con = connect("duckdb")
    tables = {"events": ibis.memtable(events), "users": ibis.memtable(users)}
    if with_orders:
        tables["orders"] = ibis.memtable(orders)
    tables = {k: con.create_table(f"ov_{k}", v, overwrite=True) for k, v in tables.items()}
    return CRMData(con=con, data_dir=Path("."), schema=Schema(), tables=tables)


def test_labels_by_hand():
    data = _data()
    lab = segment_labels(data, AS_OF).to_pandas().set_index("user_id").sort_index()
    assert lab["health"].tolist() == [
        "super-active",
        "active",
        "dormant-risk",
        "churned",
        NO_ACTIVITY,
        NO_ACTIVITY,
    ]
    rfm = rfm_table(data.orders, "2024-05-31").to_pandas().set_index("user_id")["segment"]
    assert lab["rfm"].tolist() == [rfm[1], NO_PURCHASE, rfm[3], *[NO_PURCHASE] * 3]
    # no orders: health only (events are the activity), no RFM column
    lab = segment_labels(_data(with_orders=False), AS_OF).to_pandas()
    assert "rfm" not in lab.columns and len(lab) == 6


def test_overlap_counts_and_index_by_hand():
    data = _data()
    groups = {"seeds": pd.Series([1, 2]), "lookalikes": pd.Series([3, 4, 99])}  # 99: unknown
    counts = overlap_counts(data, AS_OF, groups)
    h = counts[counts.segmentation == "health"].set_index(["group", "segment"])["users"]
    assert h["population"].to_dict() == {
        "super-active": 1,
        "active": 1,
        "dormant-risk": 1,
        "churned": 1,
        NO_ACTIVITY: 2,
    }
    assert h["seeds"].to_dict() == {"super-active": 1, "active": 1}
    t = overlap_table(counts)
    th = t[t.segmentation == "health"].set_index("segment")
    assert th.index.tolist() == ["super-active", "active", "dormant-risk", "churned", NO_ACTIVITY]
    # seeds: 1 of 2 super-active (0.5) vs 1 of 6 in the population -> index 300
    assert th.loc["super-active", "seeds_share"] == 0.5
    assert th.loc["super-active", "seeds_index"] == pytest.approx(300.0)
    assert th.loc["churned", "lookalikes_index"] == pytest.approx(300.0)
    assert th.loc[NO_ACTIVITY, "seeds_index"] == 0.0
    for g in ("population", "seeds", "lookalikes"):
        for s in ("rfm", "health"):
            assert t.loc[t.segmentation == s, f"{g}_share"].sum() == pytest.approx(1.0)
    # a filtered population: the shares are of those users only
    counts = overlap_counts(data, AS_OF, groups, population_ids=pd.Series([1, 2, 3, 4]))
    t = overlap_table(counts)
    th = t[t.segmentation == "health"].set_index("segment")
    assert th["population_users"].sum() == 4 and NO_ACTIVITY not in th.index
    assert th.loc["super-active", "seeds_index"] == pytest.approx(200.0)
    with pytest.raises(ValueError, match="reserved"):
        overlap_counts(data, AS_OF, {"population": pd.Series([1])})


def test_overlap_table_edge_cases():
    counts = pd.DataFrame(
        {
            "group": ["population", "population", "seeds"],
            "segmentation": ["health", "health", "health"],
            "segment": ["active", "churned", "active"],
            "users": [3, 0, 2],
        }
    )
    t = overlap_table(counts).set_index("segment")
    assert np.isnan(t.loc["churned", "seeds_index"])  # nobody in the population there
    assert t.loc["active", "seeds_index"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="population"):
        overlap_table(counts[counts.group == "seeds"])
    assert overlap_table(counts.iloc[:0]).empty


def test_overlap_on_small_world_matches_pandas(small_world):
    """Counts equal a pandas computation from the segments' per-user tables."""
    from crm_helpers.segments.states import activity_days, rule_states

    data = load(small_world)
    as_of = pd.Timestamp("2025-07-01")
    ids = data.users.select("user_id").to_pandas()["user_id"]
    seeds = ids.iloc[::50]
    counts = overlap_counts(data, as_of, {"seeds": seeds})
    rfm = rfm_table(data.orders, "2025-06-30").to_pandas().set_index("user_id")["segment"]
    st = rule_states(activity_days(data.orders, data.events), "2025-06-30").to_pandas()
    st = st.set_index("user_id")["state"]
    want_rfm = rfm.reindex(seeds).fillna(NO_PURCHASE).value_counts()
    want_st = st.reindex(seeds).fillna(NO_ACTIVITY).value_counts()
    got = counts[counts.group == "seeds"].set_index(["segmentation", "segment"])["users"]
    assert got["rfm"].sort_index().to_dict() == want_rfm.sort_index().to_dict()
    assert got["health"].sort_index().to_dict() == want_st.sort_index().to_dict()
    pop = counts[counts.group == "population"]
    assert pop.groupby("segmentation")["users"].sum().tolist() == [len(ids), len(ids)]

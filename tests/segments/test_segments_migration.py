"""Month-over-month migration between RFM segments: by hand, against the pandas reference,
its metrics entry and the Sankey figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_helpers.plots.segments import plot_migration_sankey
from crm_helpers.segments import narrative
from crm_helpers.segments import states as st
from crm_helpers.segments.reference import reference_rfm
from tests.segments.conftest import orders_df, to_table


def test_rfm_migration_by_hand():
    # day 9: users 1 and 2 (one order each on day 0) are alike -> all scores 3 -> Needs attention.
    # day 19: user 3 bought on day 15: recency 19, 19, 4 -> R 2, 2, 5; F all 1 -> 3:
    # users 1, 2 -> At risk (R 1-2, F 3-4); user 3 -> Potential loyalist (R 4-5, F 2-3), new.
    df = orders_df([(1, 0, 10.0), (2, 0, 10.0), (3, 15, 10.0)])
    m = st.rfm_migration_table(to_table(df), ["2024-01-10", "2024-01-20"])
    got = {(r.from_state, r.to_state): r.users for r in m.itertuples()}
    assert got == {("Needs attention", "At risk"): 2, ("(new)", "Potential loyalist"): 1}
    mat = st.migration_matrix(m, order=st.segment_names())
    assert list(mat.columns) == st.segment_names()  # every segment a column, in rule order
    assert list(mat.index) == ["(new)", "Needs attention"]
    assert mat.loc["Needs attention", "At risk"] == 2 and mat.to_numpy().sum() == 3
    flows = st.flows_into(m, ["At risk", "Lost"])
    assert flows["into_At risk"].tolist() == [2] and flows["into_Lost"].tolist() == [0]


def _reference_transitions(df: pd.DataFrame, ends: list[str]) -> dict:
    out = {}
    for prev, cur in zip(ends, ends[1:], strict=False):
        a = reference_rfm(df, prev).set_index("user_id")["segment"]
        b = reference_rfm(df, cur).set_index("user_id")["segment"]
        src = a.reindex(b.index).fillna("(new)")
        for (f, t), n in pd.crosstab(src, b).stack().items():
            if n:
                out[(pd.Timestamp(cur), f, t)] = int(n)
    return out


def test_rfm_migration_equals_reference(con):
    rng = np.random.default_rng(3)
    rows = [(int(u), int(d), float(r)) for u, d, r in zip(rng.integers(1, 60, 400),
            rng.integers(0, 120, 400), rng.choice([-5.0, 0.0, 10.0, 25.0, 80.0], 400), strict=True)]  # fmt: skip
    df = orders_df(rows)
    ends = [e.date().isoformat() for e in st.month_ends("2024-01-01", "2024-04-29")]
    m = st.rfm_migration_table(to_table(df, con), ends)
    got = {(r.period_end, r.from_state, r.to_state): r.users for r in m.itertuples()}
    assert got == _reference_transitions(df, ends)
    # each period's rows: every customer at the period end exactly once; row shares sum to 1
    for pe, part in m.groupby("period_end"):
        assert part["users"].sum() == len(reference_rfm(df, pe))
        assert part.groupby("from_state")["share"].sum().to_numpy() == pytest.approx(1.0)


def test_rfm_migration_metrics_and_sankey():
    df = orders_df([(1, 0, 10.0), (2, 0, 10.0), (3, 15, 10.0)])
    m = st.rfm_migration_table(to_table(df), ["2024-01-10", "2024-01-20"])
    mat = st.migration_matrix(m, order=st.segment_names())
    flows = st.flows_into(m, ["Lost"])
    got = narrative.rfm_migration_metrics(mat, flows, m["period_end"].max())
    assert got["period_end"] == "2024-01-20" and got["lost_segment"] == "Lost"
    assert got["flows_into_lost"] == [{"period_end": "2024-01-20", "customers": 0}]
    i, j = got["from_segments"].index("Needs attention"), got["to_segments"].index("At risk")
    assert got["counts"][i][j] == 2 and got["shares"][i][j] == 1.0
    no_lost = narrative.rfm_migration_metrics(mat, st.flows_into(m, []), None)
    assert no_lost["flows_into_lost"] is None and no_lost["period_end"] is None
    fig = plot_migration_sankey(mat)
    link = fig.data[0].link
    assert sorted(link.value) == [1, 2] and sum(link.value) == mat.to_numpy().sum()
    # node labels carry the counts; the "At risk" target has 2 users
    assert "At risk (2)" in fig.data[0].node.label


def test_state_migration_unchanged_by_the_generic_code():
    # the state migration keeps its shape: all four states as columns even when empty
    df = orders_df([(1, 0, 5.0), (2, 2, 5.0)])
    m = st.migration_table(st.activity_days(to_table(df)), ["2024-01-02", "2024-01-03"])
    mat = st.migration_matrix(m)
    assert list(mat.columns) == ["super-active", "active", "dormant-risk", "churned"]
    assert mat.loc["active", "active"] == 1 and mat.loc["(new)", "active"] == 1

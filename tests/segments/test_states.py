"""Rule health states, migration and retention: engine vs pandas reference and by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_helpers.segments import states as st
from crm_helpers.segments.reference import reference_rule_states
from tests.segments.conftest import orders_df, to_table

RULES = st.HealthRules(dormant_after_days=10, churned_after_days=20, active_window_days=10,
                       super_active_min_days=3)  # fmt: skip
# user 1: active on days 25, 27, 29 (super-active at day 30); 2: last on day 15 (dormant);
# 3: last on day 5 (churned); 4: day 28 only (active); 5: refund only (never active)
ROWS = [(1, 25, 5.0), (1, 27, 5.0), (1, 29, 5.0), (2, 2, 9.0), (2, 15, 9.0), (3, 5, 1.0),
        (4, 28, 0.0), (5, 12, -4.0)]  # fmt: skip
AS_OF = "2024-01-31"  # day 30


def test_rule_states_by_hand_and_reference(con):
    df = orders_df(ROWS)
    act = st.activity_days(to_table(df, con))
    got = (
        st.rule_states(act, AS_OF, RULES).to_pandas().sort_values("user_id").reset_index(drop=True)
    )
    assert got["state"].tolist() == ["super-active", "dormant-risk", "churned", "active"]
    assert got["days_since"].tolist() == [1, 15, 25, 2]
    ref = reference_rule_states(df, AS_OF, **RULES.__dict__)
    pd.testing.assert_frame_equal(got, ref, check_dtype=False)


def test_state_counts_and_empty_dates():
    act = st.activity_days(to_table(orders_df(ROWS)))
    c = st.state_counts(st.rule_states(act, AS_OF, RULES)).set_index("state")
    assert c["users"].tolist() == [1, 1, 1, 1] and c["share"].sum() == pytest.approx(1)
    before = st.state_counts(st.rule_states(act, "2023-01-01", RULES))
    assert before["users"].sum() == 0 and before["share"].isna().all()


def test_bad_health_rules():
    with pytest.raises(ValueError, match="greater than"):
        st.HealthRules(dormant_after_days=30, churned_after_days=30)
    with pytest.raises(ValueError, match="whole number"):
        st.HealthRules(active_window_days=0)


def test_migration_by_hand():
    act = st.activity_days(to_table(orders_df(ROWS)))
    m = st.migration_table(act, ["2024-01-16", AS_OF], RULES)
    # day 15: users 2 (idle 0 days) and 3 (idle 10, not > 10) are active; 1 and 4 not yet seen.
    # day 30: 2 idle 15 -> dormant-risk, 3 idle 25 -> churned, 1 super-active, 4 active (new)
    mat = st.migration_matrix(m)
    assert mat.loc["active", "dormant-risk"] == 1  # user 2
    assert mat.loc["active", "churned"] == 1  # user 3
    assert mat.loc["(new)", "super-active"] == 1 and mat.loc["(new)", "active"] == 1
    assert mat.to_numpy().sum() == 4
    flows = st.churn_flows(m)
    assert flows["into_churned"].tolist() == [1] and flows["into_dormant_risk"].tolist() == [1]
    shares = m[m["from_state"] == "active"]["share"]
    assert shares.sum() == pytest.approx(1.0)


def test_month_ends():
    ends = st.month_ends("2024-01-10", "2024-03-15")
    assert [e.date().isoformat() for e in ends] == ["2024-01-31", "2024-02-29", "2024-03-15"]
    assert st.month_ends("2024-03-01", "2024-01-01") == []


def test_retention_by_hand():
    # cohort Jan: users 1 (Jan, Mar), 2 (Jan); cohort Feb: user 3 (Feb, Feb, Mar)
    df = orders_df([(1, 0, 5.0), (1, 65, 5.0), (2, 3, 5.0), (3, 35, 5.0), (3, 40, 5.0),
                    (3, 61, 5.0), (4, 70, -5.0)])  # fmt: skip
    r = st.retention_table(to_table(df))
    got = {(c.strftime("%Y-%m"), p): (s, n) for c, p, s, n in
           zip(r["cohort"], r["period"], r["cohort_size"], r["retained"], strict=True)}  # fmt: skip
    assert got == {("2024-01", 0): (2, 2), ("2024-01", 2): (2, 1), ("2024-02", 0): (1, 1),
                   ("2024-02", 1): (1, 1)}  # fmt: skip
    with pytest.raises(ValueError, match="users table"):
        st.retention_table(to_table(df), by="signup")


def test_retention_by_group():
    import ibis

    df = orders_df([(1, 0, 5.0), (1, 65, 5.0), (2, 3, 5.0), (3, 35, 5.0), (3, 61, 5.0)])
    groups = ibis.memtable(pd.DataFrame({"user_id": [1, 2, 3], "group": ["A", "B", "A"]}))
    r = st.retention_table(to_table(df), groups=groups)
    got = {(g, c.strftime("%Y-%m"), p): (s, n) for g, c, p, s, n in
           zip(r["group"], r["cohort"], r["period"], r["cohort_size"], r["retained"], strict=True)}  # fmt: skip
    assert got == {("A", "2024-01", 0): (1, 1), ("A", "2024-01", 2): (1, 1),
                   ("A", "2024-02", 0): (1, 1), ("A", "2024-02", 1): (1, 1),
                   ("B", "2024-01", 0): (1, 1)}  # fmt: skip


def test_pooled_retention_by_group_counts_only_old_enough_cohorts():
    from crm_helpers.segments.narrative import retention_by_group

    r = pd.DataFrame({
        "group": ["A"] * 4,
        "cohort": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01", "2024-02-01"]),
        "period": [0, 1, 0, 1],
        "cohort_size": [10, 10, 30, 30],
        "retained": [10, 5, 30, 3],
    })  # fmt: skip
    got = retention_by_group(r, max_period=3).loc["A"]
    assert got[0] == 1.0 and got[1] == pytest.approx(8 / 40)
    # the data reach March (February + 1): January is old enough for period 2 (nobody
    # retained, no row), no cohort for period 3
    assert got[2] == 0.0 and np.isnan(got[3])


def test_states_over_time_from_migration():
    act = st.activity_days(to_table(orders_df(ROWS)))
    m = st.migration_table(act, ["2024-01-16", AS_OF], RULES)
    s = st.states_over_time(m)
    first = s[s["period_end"] == pd.Timestamp("2024-01-16")].set_index("state")["users"]
    assert first.to_dict() == {"active": 2}
    last = s[s["period_end"] == pd.Timestamp(AS_OF)].set_index("state")["users"]
    assert last.sum() == 4 and last["churned"] == 1

"""Journeys keyed by ``(user_id, session)`` with NULL session keys (events outside any
session, e.g. push opens), and logs without a session column: every analysis that joins or
groups on the journey keys equals the brute-force reference, where a null session is one
journey of its user. Also the paths between a start and an end event."""

from __future__ import annotations

from collections import Counter

import ibis
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_helpers.journeys import (
    JourneySpec,
    between,
    conformance,
    node_reach,
    paths,
    prepare,
    step_matrix,
    transitions,
)
from crm_helpers.journeys import analysis as A
from crm_helpers.journeys import reference as R

EVENTS = "abcp"
row_st = st.tuples(
    st.integers(1, 3),  # user
    st.sampled_from(EVENTS),
    st.integers(0, 9),  # seconds: ties are common
    st.one_of(st.none(), st.integers(1, 2)),  # session key, often null
)


def _frame(jx, rows) -> pd.DataFrame:
    df = jx.events_df([(u, e, s) for u, e, s, _ in rows])
    return df.assign(session_id=pd.array([k for *_, k in rows], dtype="Int64"))


def _check_all(df: pd.DataFrame, spec: JourneySpec, cached: bool | str) -> None:
    prep = prepare(ibis.memtable(df), spec)
    if cached:  # True: cached with positions; "no positions": cached without
        prep = prep.cache(positions=cached is True)
    ref = R.reference_journeys(df, spec)
    steps = sorted({s for j in ref.values() for _, s in j})
    if not steps:
        return
    # transitions and reach (journeys per step counted with null sessions as one journey)
    t = transitions(prep, timings=False)
    assert dict(zip(zip(t.source, t.target, strict=True), t["count"], strict=True)) == {
        k: len(v) for k, v in R.reference_transitions(ref).items()
    }
    reach = node_reach(prep).set_index("step")
    ref_j = Counter(s for j in ref.values() for s in {s for _, s in j})
    assert reach["journeys"].to_dict() == dict(ref_j)
    assert reach["users"].to_dict() == R.reference_reach(ref)
    anchor, goal = steps[0], steps[-1]
    for direction in ("after", "before"):
        got = paths(prep, anchor, 2, direction)
        assert Counter(dict(zip(got["path"], got["journeys"], strict=True))) == (
            R.reference_paths(ref, anchor, 2, direction)
        )
    got = between(prep, anchor, goal, 2)
    assert Counter(
        {
            (p, r, lg): n
            for p, r, lg, n in zip(got.path, got.reached, got.longer, got.journeys, strict=True)
        }
    ) == R.reference_between(ref, anchor, goal, 2)
    # converters vs drop-outs: step matrix, transitions per group, restrict, conformance
    groups = A.converter_groups(prep, goal, 0.0001)
    group_of = {
        k: "converters" if R.reference_converted(j, goal, 0.0001) else "drop-outs"
        for k, j in ref.items()
    }
    sm = step_matrix(prep, 3, groups=groups)
    assert {(r.group, r.position, r.step): r.journeys for r in sm.itertuples()} == (
        R.reference_step_matrix(ref, 3, group_of)
    )
    sm = step_matrix(prep, 3, groups=groups, until=goal)  # before each journey's goal
    assert {(r.group, r.position, r.step): r.journeys for r in sm.itertuples()} == (
        R.reference_step_matrix(ref, 3, group_of, until=goal)
    )
    ct = A.compare_transitions(prep, groups, "drop-outs", "converters", min_transitions=1)
    for g, col in (("drop-outs", "count_a"), ("converters", "count_b")):
        sub = {k: j for k, j in ref.items() if group_of[k] == g}
        want = {k: len(v) for k, v in R.reference_transitions(sub).items()}
        got = {(r.source, r.target): getattr(r, col) for r in ct.itertuples()}
        assert {k: v for k, v in got.items() if v} == want
    conv = A.restrict(prep, groups.filter(groups.group == "converters"))
    t = transitions(conv, timings=False)
    sub = {k: j for k, j in ref.items() if group_of[k] == "converters"}
    assert dict(zip(zip(t.source, t.target, strict=True), t["count"], strict=True)) == {
        k: len(v) for k, v in R.reference_transitions(sub).items()
    }
    intended = [anchor, goal]
    conf = conformance(prep, intended, groups=groups)
    want: Counter = Counter()
    for k, j in ref.items():
        for (m, nxt), n in R.reference_conformance({k: j}, intended).items():
            want[(group_of[k], m, None if m == len(intended) else nxt)] += n
    got = Counter({(r.group, r.matched, r.next_step): r.journeys for r in conf.itertuples()})
    assert got == want


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(row_st, min_size=1, max_size=14),
    cached=st.sampled_from([False, True, "no positions"]),
)
def test_null_session_keys_equal_the_reference(rows, cached, jx):
    df = _frame(jx, rows)
    _check_all(df, JourneySpec(session_column="session_id"), cached)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(row_st, min_size=1, max_size=14),
    cached=st.sampled_from([False, True, "no positions"]),
)
def test_no_session_column_equals_the_reference(rows, cached, jx):
    df = _frame(jx, rows).drop(columns="session_id")
    _check_all(df, JourneySpec(session_gap_minutes=4 / 60, start_end=True), cached)
    _check_all(df, JourneySpec(), cached)


def test_null_session_journey_is_not_dropped(jx):
    # user 2's push open ("p") has no session: it is its own journey in every analysis
    rows = [(1, "a", 0, 7), (1, "c", 10, 7), (2, "a", 0, 8), (2, "p", 50, None)]
    df = _frame(jx, rows)
    prep = prepare(ibis.memtable(df), JourneySpec(session_column="session_id")).cache()
    groups = A.converter_groups(prep, "c")
    sm = step_matrix(prep, 2, groups=groups)
    assert sm.groupby("group")["group_journeys"].first().to_dict() == {
        "converters": 1,
        "drop-outs": 2,
    }
    assert paths(prep, "p", 1)["journeys"].tolist() == [1]
    conf = conformance(prep, ["p"], groups=groups)
    assert conf[conf["matched"] == 1]["journeys"].sum() == 1


def test_between_paths_reach_and_cut(jx):
    # u1: a b c (reaches c in 2); u2: a b b b c (reaches, longer than depth 2); u3: a b
    rows = [(1, "a", 0), (1, "b", 1), (1, "c", 2)]
    rows += [(2, "a", 0), (2, "b", 1), (2, "b", 2), (2, "b", 3), (2, "c", 4)]
    rows += [(3, "a", 0), (3, "b", 1), (4, "b", 0)]
    prep = prepare(ibis.memtable(jx.events_df(rows)))
    got = between(prep, "a", "c", 2)
    assert got[["path", "reached", "longer", "journeys"]].values.tolist() == [
        [("a", "b", "b", "…", "c"), True, True, 1],
        [("a", "b", "c"), True, False, 1],
        [("a",), False, False, 1],
    ]
    assert got["share"].sum() == pytest.approx(1.0)
    assert between(prep, "c", "a", 2)[["reached", "journeys"]].values.tolist() == [[False, 2]]
    with pytest.raises(ValueError, match="not a journey step"):
        between(prep, "a", "zzz")

"""The journey kernel (sorted arrays) equals the Ibis path and the brute-force reference.

Random small logs and specs of ``test_properties`` (ties, repeats, mappings, patterns,
step rules on a property, collapsing, gap sessions, start/end/churn nodes, date ranges),
plus a session COLUMN whose sessions interleave in time; each analysis with a kernel is
computed on both paths and the frames compared (same columns, dtypes and rows; float
times to 1e-9 relative), and against :mod:`crm_helpers.journeys.reference`.
"""

from __future__ import annotations

from collections import Counter

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from crm_helpers.journeys import (
    JourneySpec,
    flow,
    loops_table,
    node_reach,
    node_users,
    paths,
    prepare,
    transitions,
)
from crm_helpers.journeys import kernel as K
from crm_helpers.journeys import reference as R
from crm_helpers.store.arrays import from_frame
from crm_helpers.store.paths import paths_used, reset_paths
from tests.journeys.test_properties import _with_kind, rows_st, spec_st

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    # no shrinking: each example runs ~40 engine queries, shrinking one takes minutes
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _both(df: pd.DataFrame, spec: JourneySpec, columns=("kind",)):
    events = ibis.memtable(df)
    ibis_prep = prepare(events, spec)
    kern_prep = prepare(events, spec, arrays=from_frame(df, columns=list(columns)))
    assert K.of(ibis_prep) is None and K.of(kern_prep) is not None
    return ibis_prep, kern_prep


def _eq(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-9)


def _compare_all(ibis_prep, kern_prep, ref, depth: int, k: int) -> None:
    reset_paths()
    kern = [transitions(kern_prep, timings=timings) for timings in (True, False)]
    assert paths_used() == {"journeys": ["kernel"]}
    for got, timings in zip(kern, (True, False), strict=True):
        _eq(got, transitions(ibis_prep, timings=timings))
    assert paths_used() == {"journeys": ["ibis", "kernel"]}
    got = transitions(kern_prep)
    want = R.reference_transitions(ref)
    assert dict(zip(zip(got.source, got.target, strict=True), got["count"], strict=True)) == {
        e: len(v) for e, v in want.items()
    }
    for r in got.itertuples():
        assert r.median_seconds == pytest.approx(np.quantile(want[(r.source, r.target)], 0.5))
        assert r.p90_seconds == pytest.approx(np.quantile(want[(r.source, r.target)], 0.9))
    reach = node_reach(kern_prep)
    _eq(reach, node_reach(ibis_prep))
    assert dict(zip(reach["step"], reach["users"], strict=True)) == R.reference_reach(ref)
    _eq(loops_table(kern_prep), loops_table(ibis_prep))
    steps = sorted({s for j in ref.values() for _, s in j})
    for anchor in {steps[k % len(steps)], *steps[:2]} if steps else ():
        for direction in ("after", "before"):
            got = paths(kern_prep, anchor, depth, direction)
            _eq(got, paths(ibis_prep, anchor, depth, direction))
            assert Counter(dict(zip(got["path"], got["journeys"], strict=True))) == (
                R.reference_paths(ref, anchor, depth, direction)
            )
            fk, fi = (
                flow(kern_prep, anchor, depth, direction),
                flow(ibis_prep, anchor, depth, direction),
            )
            _eq(fk.transitions, fi.transitions)
            _eq(fk.paths, fi.paths)
            nu = node_users(kern_prep, anchor, depth, direction)
            _eq(nu, node_users(ibis_prep, anchor, depth, direction))
            assert {(int(r.level), r.step): int(r.users) for r in nu.itertuples()} == (
                R.reference_node_users(ref, anchor, depth, direction)
            )
    # a step of the vocabulary that no journey has: empty on both paths
    absent = [s for s in kern_prep.steps if s not in steps]
    for anchor in absent[:1]:
        _eq(paths(kern_prep, anchor, depth), paths(ibis_prep, anchor, depth))


@SETTINGS
@given(rows=rows_st, spec=spec_st(), depth=st.integers(1, 3), k=st.integers(1, 4))
def test_kernel_equals_ibis_and_reference(rows, spec, depth, k, jx):
    df = _with_kind(jx.events_df(rows))
    present = set(df["event"])
    if "rules" in spec:
        spec["rules"] = [r for r in spec["rules"] if r["event"] in present] or None
    spec = JourneySpec(**spec)
    ibis_prep, kern_prep = _both(df, spec)
    if k % 2:
        ibis_prep, kern_prep = ibis_prep.cache(), kern_prep.cache()
        assert K.of(kern_prep) is not None  # caching keeps the arrays
    _compare_all(ibis_prep, kern_prep, R.reference_journeys(df, spec), depth, k)


@SETTINGS
@given(
    rows=rows_st,
    sessions=st.lists(st.sampled_from(["s1", "s2", None]), min_size=40, max_size=40),
    collapse=st.booleans(),
    start_end=st.booleans(),
    churn=st.booleans(),
    depth=st.integers(1, 3),
)
def test_kernel_session_column_equals_ibis_and_reference(
    rows, sessions, collapse, start_end, churn, depth, jx
):
    df = jx.events_df(rows)
    df["sess"] = sessions[: len(df)]  # sessions interleave in time, missing ones included
    spec = JourneySpec(
        session_column="sess",
        collapse_repeats=collapse,
        start_end=start_end,
        churn_days=(3 / 86_400) if (start_end and churn) else None,
    )
    ref = R.reference_journeys(df, spec)
    if spec.churn_days is not None:
        # two journeys of a user starting at one time: which is "next" is not defined (the
        # engine's LEAD over the first times picks either), so the end node is not either
        firsts = Counter((u, j[0][0]) for (u, _), j in ref.items())
        assume(max(firsts.values(), default=1) == 1)
    ibis_prep, kern_prep = _both(df, spec, columns=("sess",))
    _compare_all(ibis_prep, kern_prep, ref, depth, len(rows))


def test_churn_is_measured_to_the_last_event_before_collapsing(jx):
    # found by hypothesis: user 3's repeated c at 8 s is collapsed away, yet it is the data's
    # last event time, so user 1's s1 journey (b at 4 s) was silent 4 s >= 3 s: churned
    rows = [
        (1, "a", 3),
        (1, "b", 4),
        (2, "x", 0),
        (2, "b", 0),
        (2, "x", 1),
        (3, "c", 5),
        (3, "c", 8),
    ]
    df = jx.events_df(rows)
    df["sess"] = [None, "s1", "s1", "s1", None, None, None]
    spec = JourneySpec(
        session_column="sess", collapse_repeats=True, start_end=True, churn_days=3 / 86_400
    )
    ibis_prep, kern_prep = _both(df, spec, columns=("sess",))
    got = transitions(kern_prep, timings=False)
    assert ("b", "[churned]") in set(zip(got.source, got.target, strict=True))
    _compare_all(ibis_prep, kern_prep, R.reference_journeys(df, spec), 3, len(rows))


def test_ties_follow_the_step_code_not_the_event_code(jx):
    # raw names z < ... in event order, but the mapping names them so that step order flips
    df = jx.events_df([(1, "a", 0), (1, "b", 0), (1, "c", 0), (2, "b", 1), (2, "a", 1)])
    spec = JourneySpec(mapping={"a": "zeta", "b": "alpha", "c": "mid"})
    kj = K.build(from_frame(df), spec)
    assert [kj.vocab[c] for c in kj.code] == ["alpha", "mid", "zeta", "alpha", "zeta"]
    assert kj.offsets.tolist() == [0, 3, 5]
    got = transitions(prepare(ibis.memtable(df), spec, arrays=from_frame(df)))
    # user 1: alpha -> mid -> zeta; user 2: alpha -> zeta (by count, then source, target)
    assert list(zip(got.source, got.target, got["count"], strict=True)) == [
        ("alpha", "mid", 1),
        ("alpha", "zeta", 1),
        ("mid", "zeta", 1),
    ]


def test_tiny_log_with_sessions_collapse_and_ends(jx):
    # user 1: a a b | (20 min silence) b ; gap 10 min -> two journeys
    df = jx.events_df([(1, "a", 0), (1, "a", 60), (1, "b", 120), (1, "b", 1320)])
    spec = JourneySpec(session_gap_minutes=10, collapse_repeats=True, start_end=True)
    kj = K.build(from_frame(df), spec)
    names = [kj.vocab[c] for c in kj.code]
    assert names == ["[start]", "a", "b", "[end]", "[start]", "b", "[end]"]
    assert kj.offsets.tolist() == [0, 4, 7]
    assert (kj.t[[0, 3, 4, 6]] - kj.t[0]).tolist() == [0, 120_000_000, 1_320_000_000, 1_320_000_000]


def test_rules_on_a_column_the_arrays_lack_fall_back_to_ibis(jx):
    df = _with_kind(jx.events_df([(1, "a", 0), (1, "b", 1)]))
    spec = JourneySpec(rules=[{"step": "a-p", "event": "a", "where": {"kind": "p"}}])
    reset_paths()
    prep = prepare(ibis.memtable(df), spec, arrays=from_frame(df))  # no "kind" column
    assert K.of(prep) is None
    transitions(prep)
    assert paths_used() == {"journeys": ["ibis"]}
    with pytest.raises(K.NotCovered):
        K.build(from_frame(df), spec)


@pytest.mark.parametrize("span_days", [1, 3_000])
def test_many_step_names_take_the_sorting_branch_with_the_same_times(span_days, jx):
    # 300 names: pair codes do not fit 16 bits (sorted by a combined key); a span of
    # 3,000 days: the times do not fit beside the pair code either (lexsort)
    rng = np.random.default_rng(span_days)
    n = 3_000
    rows = zip(
        rng.integers(0, 200, n).tolist(),
        [f"e{i:03d}" for i in rng.integers(0, 300, n)],
        (rng.integers(0, span_days * 86_400, n) // 7 * 7).tolist(),  # ties
        strict=True,
    )
    df = jx.events_df(rows)
    ibis_prep, kern_prep = _both(df, JourneySpec(start_end=True), columns=())
    assert len(kern_prep.vocab) ** 2 > 65_535
    got = transitions(kern_prep)
    _eq(got, transitions(ibis_prep))
    want = R.reference_transitions(R.reference_journeys(df, JourneySpec(start_end=True)))
    for r in got.sample(50, random_state=0).itertuples():
        assert r.median_seconds == pytest.approx(np.quantile(want[(r.source, r.target)], 0.5))
        assert r.p90_seconds == pytest.approx(np.quantile(want[(r.source, r.target)], 0.9))

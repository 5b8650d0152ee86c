"""Property tests: the DuckDB journey engine equals the brute-force reference EXACTLY.

Random small logs (1-3 users, <= 12 events each from a small alphabet, integer seconds on
a short span so ties and repeats are common) and random specs (mapping / patterns with
each unmapped policy, collapsing, inactivity sessions, start/end and churn nodes, date
ranges). Compared: transition counts and times, node reach, paths before/after an anchor,
variants with conversion, step matrices and conformance.
"""

from __future__ import annotations

from collections import Counter

import ibis
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_helpers.journeys import (
    JourneySpec,
    conformance,
    flow,
    node_reach,
    node_users,
    paths,
    prepare,
    step_matrix,
    transitions,
    variants,
)
from crm_helpers.journeys import analysis as A
from crm_helpers.journeys import reference as R

EVENTS = "aabbccxy"
SPAN_S = 12

user_rows_st = st.lists(
    st.tuples(st.sampled_from(EVENTS), st.integers(0, SPAN_S - 1)), min_size=1, max_size=12
)
rows_st = st.lists(user_rows_st, min_size=1, max_size=3).map(
    lambda users: [(u, *r) for u, rows in enumerate(users, 1) for r in rows]
)


RULES = [
    {"step": "a-p", "event": "a", "where": {"kind": "p"}},
    {"step": "x-pq", "event": "x", "where": {"kind": ["p", "q"]}},
    {"step": "b-none", "event": "b", "where": {"kind": None}},
    {"step": "any-c", "event": "c"},
    {"step": "a-all", "event": "a"},  # overlaps a-p: the first rule listed wins
]


def _with_kind(df):
    """A property column: ``kind`` from the second (p, q or empty), so filters have ties."""
    sec = ((df["ts"] - df["ts"].min()).dt.total_seconds()).astype(int)
    df["kind"] = [("p", "q", None)[(s + u) % 3] for s, u in zip(sec, df["user_id"], strict=True)]
    return df


@st.composite
def spec_st(draw) -> dict:
    kw: dict = {}
    if draw(st.integers(0, 2)) == 0:
        kw["rules"] = draw(st.lists(st.sampled_from(RULES), min_size=1, max_size=4, unique_by=str))
    how = draw(st.sampled_from(["raw", "raw", "mapping", "patterns"]))
    if how == "mapping":
        kw["mapping"] = {"a": "A", "b": "A", "c": "c"}
    elif how == "patterns":
        kw["patterns"] = [("^[ab]$", "ab"), ("x|y", "xy")]
    if how != "raw":
        kw["unmapped"] = draw(st.sampled_from(["keep", "drop", "other"]))
    kw["collapse_repeats"] = draw(st.booleans())
    if draw(st.integers(0, 2)) == 0:
        kw["session_gap_minutes"] = draw(st.sampled_from([2, 3, 5])) / 60
    kw["start_end"] = draw(st.booleans())
    if kw["start_end"] and draw(st.booleans()):
        kw["churn_days"] = draw(st.sampled_from([2, 4, 8])) / 86_400
    if draw(st.integers(0, 3)) == 0:
        s = draw(st.integers(0, 6))
        kw["start"] = f"2024-03-01 00:00:{s:02d}"
        kw["end"] = f"2024-03-01 00:00:{s + draw(st.integers(1, 6)):02d}"
    return kw


def _engine_transitions(prep) -> dict:
    df = transitions(prep)
    return {(r.source, r.target): r for r in df.itertuples()}


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rows=rows_st, spec=spec_st(), depth=st.integers(1, 3), k=st.integers(1, 4))
def test_engine_equals_reference(rows, spec, depth, k, jx):
    df = _with_kind(jx.events_df(rows))
    present = set(df["event"])
    if "rules" in spec:  # a rule names an event of the data (else it is an error, tested apart)
        spec["rules"] = [r for r in spec["rules"] if r["event"] in present] or None
    spec = JourneySpec(**spec)
    prep = prepare(ibis.memtable(df), spec)
    if k % 2:  # half the examples on the cached, positioned table the notebook uses
        prep = prep.cache()
    ref = R.reference_journeys(df, spec)

    # transitions: counts exact, times to float precision
    eng = _engine_transitions(prep)
    rt = R.reference_transitions(ref)
    assert {e: r.count for e, r in eng.items()} == {e: len(v) for e, v in rt.items()}
    for e, secs in rt.items():
        assert eng[e].median_seconds == pytest.approx(np.quantile(secs, 0.5), abs=1e-9)
        assert eng[e].p90_seconds == pytest.approx(np.quantile(secs, 0.9), abs=1e-9)
        assert eng[e].share_of_source == pytest.approx(
            len(secs) / sum(len(v) for (a, _), v in rt.items() if a == e[0])
        )

    # the same journeys in stages (a mapping of the steps), transitions and reach
    stage_map = {s: ("S" if s < "b" else "T") for s in prep.steps if s != "c"}
    staged = A.stage_journeys(prep, stage_map)
    ref_staged = R.reference_stage_journeys(ref, stage_map)
    got = _engine_transitions(staged)
    assert {e: r.count for e, r in got.items()} == {
        e: len(v) for e, v in R.reference_transitions(ref_staged).items()
    }
    st_reach = node_reach(staged)
    assert dict(zip(st_reach["step"], st_reach["users"], strict=True)) == R.reference_reach(
        ref_staged
    )

    # distinct users at each Sankey node after / before the anchor
    for direction in ("after", "before"):
        for anchor in prep.steps[:2]:
            nu = node_users(prep, anchor, depth, direction)
            got = {(int(r.level), r.step): int(r.users) for r in nu.itertuples()}
            assert got == R.reference_node_users(ref, anchor, depth, direction)

    # node reach
    reach = node_reach(prep)
    assert dict(zip(reach["step"], reach["users"], strict=True)) == R.reference_reach(ref)

    # paths around an anchor that occurs (and one that never does)
    steps = sorted({s for j in ref.values() for _, s in j})
    if steps:
        anchor = steps[k % len(steps)]
        for direction in ("after", "before"):
            want = R.reference_paths(ref, anchor, depth, direction)
            got = paths(prep, anchor, depth, direction)
            assert Counter(dict(zip(got["path"], got["journeys"], strict=True))) == want
            # the same paths and the edge counts from the one-query flow
            fl = flow(prep, anchor, depth, direction)
            assert Counter(dict(zip(fl.paths["path"], fl.paths["journeys"], strict=True))) == (want)
            edges = zip(fl.transitions["source"], fl.transitions["target"], strict=True)
            assert dict(zip(edges, fl.transitions["count"], strict=True)) == {
                e: len(v) for e, v in rt.items()
            }

    # step matrix, variants with a goal, conformance
    sm = step_matrix(prep, max_steps=k + 1)
    got = {(r.group, r.position, r.step): r.journeys for r in sm.itertuples()}
    assert got == R.reference_step_matrix(ref, k + 1)
    if steps:
        goal = steps[-1]
        v = variants(prep, max_steps=k + 1, goal=goal, goal_window_days=depth / 86_400)
        got = {(r.path, r.truncated): (r.journeys, r.converted) for r in v.itertuples()}
        assert got == R.reference_variants(ref, k + 1, goal, depth / 86_400)
        intended = [steps[i % len(steps)] for i in range(k, k + depth)]
        c = conformance(prep, intended)
        got = Counter({(r.matched, r.next_step): r.journeys for r in c.itertuples() if r.journeys})
        assert got == R.reference_conformance(ref, intended)

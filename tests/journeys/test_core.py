"""Journey engine on tiny logs whose answers are obvious; edge cases and errors; pm4py; Spark."""

from __future__ import annotations

from pathlib import Path

import ibis
import pandas as pd
import pytest

from crm_helpers.journeys import (
    JourneySpec,
    conformance,
    flow,
    loops_table,
    node_reach,
    node_users,
    paths,
    prepare,
    step_matrix,
    transitions,
    variants,
)
from crm_helpers.journeys import analysis as A
from crm_helpers.journeys import narrative as N
from crm_helpers.journeys import reference as R

DATA = Path(__file__).parent / "data"

# user 1: a b b c (b twice at the same second), user 2: a c, user 3: one event
ROWS = [(1, "a", 0), (1, "b", 5), (1, "b", 5), (1, "c", 65), (2, "a", 0), (2, "c", 10), (3, "z", 3)]


def _prep(jx, rows=ROWS, **kw):
    return prepare(ibis.memtable(jx.events_df(rows)), JourneySpec(**kw))


def _edges(prep) -> dict:
    t = transitions(prep)
    return dict(zip(zip(t["source"], t["target"], strict=True), t["count"], strict=True))


def test_transitions_counts_shares_and_times(jx):
    t = transitions(_prep(jx)).set_index(["source", "target"])
    assert t["count"].to_dict() == {("a", "b"): 1, ("b", "b"): 1, ("b", "c"): 1, ("a", "c"): 1}
    assert t.loc[("a", "b"), "share_of_source"] == 0.5
    assert t.loc[("b", "c"), "share_of_source"] == 0.5
    assert t["share_of_all"].sum() == pytest.approx(1.0)
    assert t.loc[("b", "b"), "median_seconds"] == 0.0  # a tie: 0 s
    assert t.loc[("b", "c"), "median_seconds"] == 60.0
    assert t.loc[("a", "c"), "median_seconds"] == 10.0


def test_collapse_start_end_and_one_event_users(jx):
    prep = _prep(jx, collapse_repeats=True, start_end=True)
    e = _edges(prep)
    assert ("b", "b") not in e and e[("a", "b")] == 1
    # the one-event user is a journey [start] -> z -> [end]
    assert e[("[start]", "z")] == 1 and e[("z", "[end]")] == 1
    assert e[("[start]", "a")] == 2 and e[("c", "[end]")] == 2
    reach = node_reach(prep).set_index("step")
    assert reach.loc["b", "users"] == 1 and reach.loc["b", "events"] == 1
    assert reach.loc["[start]", "users"] == 3


def test_churned_end_node(jx):
    # user 1 stops at 65 s, the data end at 3 days: churned after 1 day of silence
    rows = [(1, "a", 0), (1, "c", 65), (2, "a", 0), (2, "c", 3 * 86_400)]
    e = _edges(_prep(jx, rows, start_end=True, churn_days=1))
    assert e[("c", "[churned]")] == 1 and e[("c", "[end]")] == 1


def test_sessions_by_gap_and_by_column(jx):
    rows = [(1, "a", 0), (1, "b", 100), (1, "a", 100 + 31 * 60), (1, "c", 100 + 32 * 60)]
    prep = _prep(jx, rows, session_gap_minutes=30)
    e = _edges(prep)
    assert e == {("a", "b"): 1, ("a", "c"): 1}  # no b -> a across the 31-minute silence
    df = jx.events_df(rows).assign(session_id=[7, 7, 7, 8])
    e = _edges(prepare(ibis.memtable(df), JourneySpec(session_column="session_id")))
    assert e == {("a", "b"): 1, ("b", "a"): 1}


def test_long_session_is_one_journey(jx):
    # 500 events one minute apart never exceed a 30-minute gap: one journey, 499 transitions
    rows = [(1, "ab"[i % 2], 60 * i) for i in range(500)]
    e = _edges(_prep(jx, rows, session_gap_minutes=30))
    assert e == {("a", "b"): 250, ("b", "a"): 249}


def test_mapping_patterns_and_unmapped(jx):
    rows = [(1, "view_home", 0), (1, "view_cart", 1), (1, "buy", 2), (1, "ping", 3)]
    kw = {"patterns": [("^view_", "view")], "mapping": {"buy": "purchase"}}
    assert _edges(_prep(jx, rows, **kw, unmapped="keep")) == {
        ("view", "view"): 1,
        ("view", "purchase"): 1,
        ("purchase", "ping"): 1,
    }
    assert _edges(_prep(jx, rows, **kw, unmapped="drop")) == {
        ("view", "view"): 1,
        ("view", "purchase"): 1,
    }
    assert _edges(_prep(jx, rows, **kw, unmapped="other"))[("purchase", "other")] == 1


def test_paths_before_after_and_anchor_that_never_occurs(jx):
    prep = _prep(jx)
    after = paths(prep, "a", 2)
    assert dict(zip(after["path"], after["journeys"], strict=True)) == {
        ("a", "b", "b"): 1,
        ("a", "c"): 1,
    }
    before = paths(prep, "c", 1, "before")
    assert dict(zip(before["path"], before["journeys"], strict=True)) == {
        ("b", "c"): 1,
        ("a", "c"): 1,
    }
    # a step of the data that is outside the date range: defined, no paths
    late = prepare(ibis.memtable(jx.events_df(ROWS)), JourneySpec(end="2024-03-01 00:00:04"))
    assert paths(late, "c", 2).empty
    # a name that is no step at all: a clear error with the closest names
    with pytest.raises(ValueError, match="not a journey step.*closest"):
        paths(prep, "bb", 2)


def test_flow_is_transitions_and_paths_in_one_query(jx):
    prep = _prep(jx)
    f = flow(prep, "a", 2)
    # a -> b, b -> b, b -> c, a -> c; the first a of each journey: a b b and a c
    t = f.transitions
    assert {(r.source, r.target): r.count for r in t.itertuples()} == {
        ("a", "b"): 1,
        ("b", "b"): 1,
        ("b", "c"): 1,
        ("a", "c"): 1,
    }
    assert dict(zip(f.paths["path"], f.paths["journeys"], strict=True)) == {
        ("a", "b", "b"): 1,
        ("a", "c"): 1,
    }
    pd.testing.assert_frame_equal(f.transitions, transitions(prep, timings=False))
    # a repeated anchor: only the journey's first b starts a path (the second b is a step)
    b = flow(prep, "b", 3, "after").paths
    assert dict(zip(b["path"], b["journeys"], strict=True)) == {("b", "b", "c"): 1}
    before = flow(prep, "c", 1, "before")
    assert dict(zip(before.paths["path"], before.paths["journeys"], strict=True)) == {
        ("b", "c"): 1,
        ("a", "c"): 1,
    }
    pd.testing.assert_frame_equal(before.transitions, f.transitions)
    # an anchor outside the date range: the edges, and no paths
    early = prepare(ibis.memtable(jx.events_df(ROWS)), JourneySpec(end="2024-03-01 00:00:06"))
    got = flow(early, "c", 2)
    assert got.paths.empty and list(got.paths.columns) == ["path", "journeys", "share"]
    assert {(r.source, r.target) for r in got.transitions.itertuples()} == {("a", "b"), ("b", "b")}
    with pytest.raises(ValueError, match="not a journey step"):
        flow(prep, "bb", 2)
    with pytest.raises(ValueError, match="direction"):
        flow(prep, "a", 2, "sideways")


def test_sankey_data_and_paths_between(jx):
    after = paths(_prep(jx, start_end=True), "a", 3)
    nodes, links = A.sankey_data(after)
    n = nodes.set_index(["level", "step"])["journeys"]
    assert n[(0, "a")] == 2 and n[(1, "b")] == 1 and n[(1, "c")] == 1
    assert links["journeys"].sum() == sum(len(p) - 1 for p in after["path"])
    between = A.paths_between(after, "c")
    assert dict(zip(between["path"], between["journeys"], strict=True)) == {
        ("a", "b", "b", "c"): 1,
        ("a", "c"): 1,
    }


def test_variants_step_matrix_loops_conformance(jx):
    prep = _prep(jx)
    v = variants(prep, 3, goal="c")
    got = {
        (p, t): (n, c) for p, t, n, c in v[["path", "truncated", "journeys", "converted"]].values
    }
    assert got == {
        (("a", "b", "b"), True): (1, 1),
        (("a", "c"), False): (1, 1),
        (("z",), False): (1, 0),
    }
    sm = step_matrix(prep, 2).set_index(["position", "step"])
    assert sm.loc[(1, "a"), "journeys"] == 2 and sm.loc[(1, "a"), "share"] == pytest.approx(2 / 3)
    loops = loops_table(prep).set_index("step")
    assert loops.loc["b", "repeating_journeys"] == 1 and loops.loc["a", "repeating_journeys"] == 0
    c = conformance(prep, ["a", "c"])
    assert A.conformance_summary(c, 2)["rate"].iloc[0] == pytest.approx(2 / 3)
    dev = A.deviations(c, ["a", "c"])
    assert dev.iloc[0].to_dict() | {"share": 0} == {
        "after_step": None,
        "next_step": None,
        "journeys": 1,
        "share": 0,
    }


def test_differential_step_matrix_against_stats(jx):
    from crm_helpers import stats

    m = pd.DataFrame(
        {
            "group": ["x", "x", "y", "y"],
            "position": [1, 1, 1, 1],
            "step": ["a", "b", "a", "b"],
            "journeys": [80, 20, 50, 50],
            "group_journeys": [100, 100, 100, 100],
        }
    )
    d = A.differential_step_matrix(m, "x", "y").set_index("step")
    ref = stats.two_proportion_test(stats.Proportion(80, 100), stats.Proportion(50, 100))
    assert d.loc["a", "diff"] == pytest.approx(-0.3)
    assert d.loc["a", "p_value"] == pytest.approx(ref.p_value)
    _, q = stats.benjamini_hochberg(d["p_value"].to_numpy())
    assert d["q_value"].to_numpy() == pytest.approx(q)
    assert d["significant"].all()


def test_defaults_and_leak():
    reach = pd.DataFrame(
        {
            "step": ["[start]", "view", "buy", "rare"],
            "users": [10, 10, 4, 1],
            "journeys": [10, 10, 4, 1],
            "events": [10, 900, 90, 5],
            "share_of_users": [1, 1, 0.4, 0.1],
        }
    )
    assert N.default_anchor(reach) == "view"
    assert N.default_goal(reach) == "buy"  # "rare" has under 1% of the events
    edges = pd.DataFrame(
        {"source": ["view", "view", "buy"], "target": ["[end]", "buy", "[end]"], "count": [6, 4, 4]}
    )
    leak = N.biggest_leak(edges, "buy")
    assert leak["step"] == "view" and leak["share"] == pytest.approx(0.6)


def test_step_rules_by_event_and_properties(jx):
    """Rules split one raw event by a property (first rule wins) before mapping/patterns;
    a rule keeps rows of an event that ``unmapped="drop"`` would drop."""
    rows = [(1, "view", 0), (1, "view", 1), (1, "buy", 2), (2, "view", 0), (2, "ping", 1)]
    df = jx.events_df(rows).assign(category=["sports", None, "sports", "home", None])
    rules = [
        {"step": "sports view", "event": "view", "where": {"category": "sports"}},
        {"step": "catalogue view", "event": "view", "where": {"category": ["home", "toys"]}},
        {"step": "never", "event": "view", "where": {"category": "sports"}},  # shadowed
    ]
    spec = JourneySpec(rules=rules, mapping={"buy": "purchase"}, unmapped="drop")
    prep = prepare(ibis.memtable(df), spec)
    assert _edges(prep) == {("sports view", "purchase"): 1}  # user 1's uncategorised view dropped
    assert set(prep.steps) == {"sports view", "catalogue view", "never", "purchase"}
    keep = prepare(ibis.memtable(df), JourneySpec(rules=rules[:1]))
    assert _edges(keep) == {("sports view", "view"): 1, ("view", "buy"): 1, ("view", "ping"): 1}
    ref = R.reference_transitions(R.reference_journeys(df, spec))
    assert _edges(prep) == {k: len(v) for k, v in ref.items()}
    # a filter column the events lack, a rule event that never occurs: clear errors
    with pytest.raises(ValueError, match="filters on column 'colour'"):
        prepare(ibis.memtable(df), JourneySpec(rules=[{"step": "x", "event": "view",
                                                        "where": {"colour": "red"}}]))  # fmt: skip
    with pytest.raises(ValueError, match="event 'vew' does not occur"):
        prepare(ibis.memtable(df), JourneySpec(rules=[{"step": "x", "event": "vew"}]))
    # dataclasses.replace re-validates the normalised rules
    from dataclasses import replace

    assert replace(spec, collapse_repeats=True).rules == spec.rules


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"rules": [{"step": "x"}]}, "a step rule is"),
        ({"rules": [{"step": "x", "event": "a", "when": {}}]}, "unknown keys"),
        ({"rules": [{"step": "[start]", "event": "a"}]}, "reserved"),
        ({"unmapped": "keep-all"}, "unmapped must be one of"),
        ({"session_gap_minutes": 0}, "positive"),
        ({"session_gap_minutes": 5, "session_column": "session_id"}, "not both"),
        ({"churn_days": 3}, "needs start_end"),
        ({"patterns": [("([", "x")]}, "not a valid regular expression"),
        ({"mapping": {"a": "[end]"}}, "reserved"),
        ({"start": "2024-02-01", "end": "2024-01-01"}, "empty date range"),
    ],
)
def test_bad_parameters_give_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        JourneySpec(**kw)


def test_bad_calls_give_clear_errors(jx):
    prep = _prep(jx)
    with pytest.raises(ValueError, match="depth must be"):
        paths(prep, "a", 0)
    with pytest.raises(ValueError, match="direction"):
        paths(prep, "a", 2, "sideways")
    with pytest.raises(ValueError, match="session_column"):
        prepare(ibis.memtable(jx.events_df(ROWS)), JourneySpec(session_column="session_id"))
    with pytest.raises(ValueError, match="missing"):
        prepare(ibis.memtable(pd.DataFrame({"user_id": [1], "event": ["a"]})))


def _running_example() -> pd.DataFrame:
    df = pd.read_csv(DATA / "running_example.csv")
    ts = pd.to_datetime(df["timestamp"], utc=True)
    return pd.DataFrame(
        {
            "user_id": df["case"].astype(str),
            "event": df["activity"],
            "ts": ts.dt.tz_localize(None).astype("datetime64[us]"),
            "ts_utc": ts,
        }
    )


def test_transition_counts_equal_pm4py_dfg():
    pm4py = pytest.importorskip("pm4py")
    df = _running_example()
    dfg, starts, ends = pm4py.discover_dfg(
        df, case_id_key="user_id", activity_key="event", timestamp_key="ts_utc"
    )
    prep = prepare(ibis.memtable(df[["user_id", "event", "ts"]]), JourneySpec(start_end=True))
    e = _edges(prep)
    real = {k: v for k, v in e.items() if "[start]" not in k and "[end]" not in k}
    assert real == dict(dfg) and len(real) == 16
    assert {b: n for (a, b), n in e.items() if a == "[start]"} == dict(starts)
    assert {a: n for (a, b), n in e.items() if b == "[end]"} == dict(ends)


@pytest.mark.spark
def test_spark_equals_duckdb(spark_con, jx):
    df = _running_example()[["user_id", "event", "ts"]]
    spec = JourneySpec(start_end=True, collapse_repeats=True, session_gap_minutes=3 * 24 * 60)
    duck = prepare(ibis.memtable(df), spec)
    spark = prepare(spark_con.create_table("journey_events", df, overwrite=True), spec)
    for f in (
        lambda p: transitions(p),
        lambda p: paths(p, "decide", 3),
        lambda p: flow(p, "decide", 3).transitions,
        lambda p: flow(p, "decide", 3).paths,
        lambda p: flow(p, "check ticket", 2, "before").paths,
        lambda p: step_matrix(p, 5),
        lambda p: conformance(p, ["register request", "decide", "pay compensation"]),
    ):
        a, b = f(duck), f(spark)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    ref = R.reference_transitions(R.reference_journeys(df, spec))
    assert _edges(spark) == {k: len(v) for k, v in ref.items()}


def test_stage_mapping_and_flow(jx):
    m = A.stage_mapping({"acq": ["a"], "act": ["b", "c"]}, known=["a", "b", "c", "z"])
    assert m == {"a": "acq", "b": "act", "c": "act"}
    with pytest.raises(ValueError, match="two stages"):
        A.stage_mapping({"x": ["a"], "y": ["a"]})
    assert set(A.stage_mapping()) >= {"visit", "purchase"}  # the AARRR default
    spec = N.stage_spec(JourneySpec(start_end=True), m)
    prep = prepare(ibis.memtable(jx.events_df(ROWS)), spec)
    # user 1: acq act(b b c collapsed); user 2: acq act; user 3 (z) has no stage: no journey
    assert _edges(prep) == {("[start]", "acq"): 2, ("acq", "act"): 2, ("act", "[end]"): 2}
    reach = node_reach(prep).set_index("step")["users"]
    assert reach["act"] == 2 and "z" not in reach


def test_variants_with_goal_keep_journeys_without_session(jx):
    # user 2's push open has no session: one journey with a null session key; a goal must not
    # drop it (it did when the goal was joined on the keys)
    rows = [(1, "a", 0), (1, "c", 10), (2, "a", 0), (2, "p", 50)]
    df = jx.events_df(rows).assign(session_id=pd.array([7, 7, 8, None], dtype="Int64"))
    prep = prepare(ibis.memtable(df), JourneySpec(session_column="session_id"))
    got = variants(prep, 3, goal="c")
    assert dict(zip(got["path"], got["journeys"], strict=True)) == {
        ("a", "c"): 1,
        ("a",): 1,
        ("p",): 1,
    }
    assert dict(zip(got["path"], got["converted"], strict=True))[("a", "c")] == 1


@pytest.mark.spark
def test_step_rules_on_spark(spark_con, jx):
    rows = [(1, "view", 0), (1, "view", 1), (1, "buy", 2), (2, "view", 0), (2, "ping", 1)]
    df = jx.events_df(rows).assign(category=["sports", None, "sports", "home", None])
    spec = JourneySpec(
        rules=[{"step": "sports view", "event": "view", "where": {"category": ["sports"]}}],
        mapping={"buy": "purchase"},
        unmapped="other",
    )
    duck = prepare(ibis.memtable(df), spec)
    spark = prepare(spark_con.create_table("journey_rules", df, overwrite=True), spec)
    pd.testing.assert_frame_equal(transitions(duck), transitions(spark), check_dtype=False)
    assert _edges(spark) == {
        ("sports view", "other"): 1,
        ("other", "purchase"): 1,
        ("other", "other"): 1,
    }


def test_sankey_users_count_each_user_once(jx):
    """User 1 has two sessions through a -> b, user 2 one: the nodes show 3 journeys, 2 users."""
    rows = [(1, "a", 0), (1, "b", 1), (1, "a", 500), (1, "b", 501), (2, "a", 0), (2, "c", 1)]
    prep = _prep(jx, rows, session_gap_minutes=1)
    nu = node_users(prep, "a", 1)
    assert {(r.level, r.step): r.users for r in nu.itertuples()} == {
        (0, "a"): 2, (1, "b"): 1, (1, "c"): 1
    }  # fmt: skip
    nodes, _ = A.sankey_data(paths(prep, "a", 1), "after", users=nu)
    got = nodes.set_index(["level", "step"])
    assert got.loc[(0, "a"), "journeys"] == 3 and got.loc[(0, "a"), "users"] == 2
    assert got.loc[(1, "b"), "journeys"] == 2 and got.loc[(1, "b"), "user_share"] == 0.5
    from crm_helpers.plots import journeys as plots

    fig = plots.plot_sankey(nodes, _)
    assert "users" in fig.data[0].node.hovertemplate
    with pytest.raises(ValueError, match="not a journey step"):
        node_users(prep, "z", 2)

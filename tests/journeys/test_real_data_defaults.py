"""Journey defaults on data shaped like real exports (issue #21).

A B2B sales pipeline (stages days to weeks apart, text ids, no orders) and a Taobao-style
clickstream (``pv`` / ``cart`` / ``fav`` / ``buy``, seconds to minutes apart), from
:mod:`tests.journeys.real_shapes`, loaded through the CSV readers as a report loads them.
Every number is checked against the brute-force reference (:mod:`crm_helpers.journeys.
reference`) or plain pandas.
"""

from __future__ import annotations

from collections import Counter

import ibis
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.journeys import JourneySpec, node_reach, prepare, step_matrix, transitions
from crm_helpers.journeys import analysis as A
from crm_helpers.journeys import defaults as D
from crm_helpers.journeys import narrative as N
from crm_helpers.journeys import reference as R
from tests.journeys import real_shapes


@pytest.fixture(scope="module")
def b2b(tmp_path_factory):
    return _loaded(tmp_path_factory.mktemp("b2b_leads"), real_shapes.write_b2b_leads)


@pytest.fixture(scope="module")
def taobao(tmp_path_factory):
    return _loaded(tmp_path_factory.mktemp("taobao"), real_shapes.write_taobao_clicks)


def _loaded(d, write):
    frame = write(d)
    return load(d, engine="duckdb"), frame


# --- the session gap ---------------------------------------------------------------------------


def test_median_gap_against_pandas_on_both_shapes(b2b, taobao):
    for data, frame in (b2b, taobao):
        want = R.reference_median_gap_minutes(frame)
        assert D.median_gap_minutes(data) == pytest.approx(want, abs=1e-6)


def test_median_gap_tiny(jx):
    # user 1: gaps 10 and 60 minutes; user 2: 20 minutes; user 3 has one event: median 20
    rows = [(1, "a", 0), (1, "b", 600), (1, "c", 4200), (2, "a", 0), (2, "b", 1200), (3, "a", 9)]
    assert D.median_gap_minutes(ibis.memtable(jx.events_df(rows))) == pytest.approx(20.0)
    assert D.median_gap_minutes(ibis.memtable(jx.events_df([(1, "a", 0)]))) is None


def test_pipeline_days_apart_gets_one_journey_per_user(b2b):
    data, frame = b2b
    med = R.reference_median_gap_minutes(frame)
    assert med > 24 * 60  # days apart
    # what the 30-minute default did: almost every journey a single event
    cut = R.reference_journeys(frame, JourneySpec(session_gap_minutes=30))
    single = sum(len(j) == 1 for j in cut.values()) / len(cut)
    assert single > 0.95
    gap, how = D.choose_session_gap(data)
    assert gap == 0.0
    assert how.startswith("0, one journey per user: the median time between a user's")
    assert D.duration_text(med) in how and "above the default 30 minutes" in how
    # the derived gap gives one journey per lead, as many as leads
    spec = N.spec_from_params(session_gap_minutes=gap)
    prep = prepare(data, spec)
    n_journeys = prep.table.select(*prep.keys).distinct().count().to_pyarrow().as_py()
    assert n_journeys == frame["user_id"].nunique() == 240


def test_clickstream_keeps_the_default_gap(taobao):
    data, frame = taobao
    gap, how = D.choose_session_gap(data)
    med = R.reference_median_gap_minutes(frame)
    assert med < 30
    assert gap == 30.0
    assert how == (
        "the default 30 minutes: the median time between a user's consecutive events is "
        + D.duration_text(med)
    )


def test_session_column_is_used_as_it_is(jx):
    df = jx.events_df([(1, "a", 0), (1, "b", 86_400)])
    gap, how = D.choose_session_gap(ibis.memtable(df), session_column="session_id")
    assert gap == 30.0 and how.startswith("journeys are the events' session_id sessions")


def test_goal_window_follows_the_journeys():
    assert D.choose_goal_window(30.0)[0] == 7.0
    window, how = D.choose_goal_window(0.0)
    assert window is None and how.startswith("none, the goal anywhere in the journey")


# --- the goal ------------------------------------------------------------------------------------


def test_goal_is_the_conversion_on_both_shapes(b2b, taobao):
    for (data, _), want in ((b2b, "won"), (taobao, "buy")):
        reach = node_reach(prepare(data, JourneySpec(start_end=True)))
        goal, how = D.choose_goal(reach)
        assert goal == want
        assert how.startswith("the conversion: the purchase event of the shared vocabulary")


def test_goal_is_the_purchase_even_when_it_is_rare():
    """The synthetic world's shape: purchase has under 1% of the events, so the old rule
    (the rarest step with 1%+ of all events) picked add_to_cart."""
    reach = pd.DataFrame(
        {
            "step": ["[start]", "visit", "product_view", "add_to_cart", "checkout", "purchase"],
            "users": [1000, 1000, 900, 400, 200, 80],
            "journeys": [1000, 1000, 900, 400, 200, 80],
            "events": [1000, 5000, 12000, 1500, 150, 90],
        }
    )
    assert N.default_goal(reach) == "add_to_cart"  # the old rule, still the fallback
    assert D.choose_goal(reach)[0] == "purchase"


def test_goal_without_a_conversion_says_what_it_did():
    reach = pd.DataFrame(
        {"step": ["a", "b", "c"], "users": [10, 4, 1], "journeys": [10, 4, 1],
         "events": [900, 95, 5]}
    )  # fmt: skip
    goal, how = D.choose_goal(reach)
    assert goal == "b" == N.default_goal(reach)  # "c" has under 1% of the events
    assert how.startswith("no purchase event (purchase, buy, order")
    assert how.endswith(
        "the step reached by the fewest users among the steps with 1%+ of all events"
    )


def test_orders_table_joins_the_journeys_when_no_purchase_event(tmp_path, jx):
    ev = jx.events_df([(1, "visit", 0), (1, "view", 60), (2, "visit", 0), (2, "view", 30)])
    ev.to_csv(tmp_path / "events.csv", index=False)
    orders = pd.DataFrame(
        {"order_id": [10], "user_id": [1], "ts": [jx.T0 + pd.Timedelta(seconds=120)],
         "revenue": [9.5]}
    )  # fmt: skip
    orders.to_csv(tmp_path / "orders.csv", index=False)
    data = load(tmp_path, engine="duckdb")
    events, added = D.with_orders(data)
    assert added
    prep = prepare(events, JourneySpec(start_end=True))
    goal, how = D.choose_goal(node_reach(prep), orders_added=True)
    assert goal == D.ORDER_STEP and "orders table" in how
    t = transitions(prep, timings=False)
    assert (
        dict(zip(zip(t.source, t.target, strict=True), t["count"], strict=True))[("view", "order")]
        == 1
    )
    # with a purchase event in the events, orders are not added
    (tmp_path / "events.csv").write_text(
        jx.events_df([(1, "visit", 0), (1, "buy", 60)]).to_csv(index=False)
    )
    assert D.with_orders(load(tmp_path, engine="duckdb"))[1] is False


# --- converters vs drop-outs --------------------------------------------------------------------


def _converters(data, gap: float, goal: str, window):
    spec = N.spec_from_params(session_gap_minutes=gap)
    prep = prepare(data, spec).cache()
    groups = A.converter_groups(prep, goal, window)
    return prep, groups


@pytest.mark.parametrize(("shape", "gap", "goal", "window"), [
    ("b2b", 0.0, "won", None), ("taobao", 30.0, "buy", 7.0),
])  # fmt: skip
def test_matrix_before_the_goal_equals_the_reference(shape, gap, goal, window, request):
    data, frame = request.getfixturevalue(shape)
    prep, groups = _converters(data, gap, goal, window)
    spec = N.spec_from_params(session_gap_minutes=gap)
    ref = R.reference_journeys(frame, spec)
    group_of = {
        k: "converters" if R.reference_converted(j, goal, window) else "drop-outs"
        for k, j in ref.items()
    }
    sm = step_matrix(prep, 8, groups=groups, until=goal)
    assert {(r.group, r.position, r.step): r.journeys for r in sm.itertuples()} == (
        R.reference_step_matrix(ref, 8, group_of, until=goal)
    )
    assert goal not in set(sm["step"])
    sizes = sm.drop_duplicates("group").set_index("group")["group_journeys"].to_dict()
    assert sizes == dict(Counter(group_of.values()))  # every journey counts in its group
    m = A.converter_step_matrix(prep, groups, goal, 8)
    assert not set(m["step"]) & {goal, "[end]", "[churned]"}
    diff = A.differential_step_matrix(m, "drop-outs", "converters")
    row, n_sig = N.first_difference(diff, goal)
    assert row is not None and n_sig > 0 and row["step"] != goal
    sig = diff[diff["significant"] & ~diff["step"].str.startswith("[")]
    assert row["position"] == sig["position"].min()


def test_headline_never_names_the_goal(jx):
    """Converters have the goal by definition: the full matrix's biggest difference is the
    goal itself; the headline names the first difference before it."""
    rows = []
    for u in range(60):  # converters: a -> b -> buy; drop-outs: a -> c
        conv = u % 2 == 0
        rows += [(u, "a", 0), (u, "b" if conv else "c", 10)]
        if conv:
            rows.append((u, "buy", 20))
    prep = prepare(ibis.memtable(jx.events_df(rows)), JourneySpec(start_end=True))
    groups = A.converter_groups(prep, "buy")
    full = A.differential_step_matrix(
        step_matrix(prep, 6, groups=groups), "drop-outs", "converters"
    )
    assert "buy" in set(full.loc[full["significant"], "step"])  # what the old headline could pick
    diff = A.differential_step_matrix(
        A.converter_step_matrix(prep, groups, "buy", 6), "drop-outs", "converters"
    )
    assert set(diff["step"]) == {"[start]", "a", "b", "c"}
    lines = N.journey_summary(
        goal="buy", to_goal=pd.DataFrame(), leak=None, differential=diff, conformance_rate=None
    )
    head = lines[-1]
    assert "first differ from drop-outs' at step 3, before the goal" in head
    assert "<code>buy</code>" not in head
    assert "100.0% of converters vs 0.0% of drop-outs are on <code>b</code>" in head


def test_leak_says_what_its_share_is_of(jx):
    edges = pd.DataFrame(
        {"source": ["view", "view", "buy"], "target": ["[end]", "buy", "[end]"], "count": [6, 4, 4]}
    )
    leak = N.biggest_leak(edges, "buy")
    (line,) = N.journey_summary(
        goal="buy", to_goal=pd.DataFrame(), leak=leak, differential=None, conformance_rate=None
    )[1:]
    assert "6 journeys end there, 60.0% of the 10 transitions out of <code>view</code>" in line


# --- AARRR ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("names", "want"), [
    (["pv", "cart", "fav", "buy"],
     {"pv": "activation", "cart": "activation", "fav": "activation", "buy": "revenue"}),
    (["page_view", "add_to_cart", "purchase"],
     {"page_view": "acquisition", "add_to_cart": "activation", "purchase": "revenue"}),
    (["visit", "signup", "order"],
     {"visit": "acquisition", "signup": "activation", "order": "revenue"}),
    (["Visit", "SignUp", "Order"],
     {"Visit": "acquisition", "SignUp": "activation", "Order": "revenue"}),
])  # fmt: skip
def test_aarrr_recognises_common_vocabularies(names, want):
    assert D.aarrr_mapping(names) == (want, [])
    assert A.stage_mapping(known=names) == want


def test_aarrr_names_what_it_left_unmapped(b2b):
    data, _ = b2b
    reach = node_reach(prepare(data, JourneySpec(start_end=True)))
    mapping, unmapped = D.aarrr_mapping(reach["step"].tolist())
    assert mapping == {"lead_created": "acquisition", "won": "revenue"}
    assert unmapped == ["contacted", "lost", "proposal", "qualified"]


def test_aarrr_default_world_vocabulary_unchanged():
    """The synthetic world's events keep their stages (listing_view is now activation)."""
    names = ["app_open", "visit", "product_view", "add_to_cart", "checkout", "purchase",
             "search", "wishlist_add", "review", "push_open", "listing_view"]  # fmt: skip
    mapping, unmapped = D.aarrr_mapping(names)
    assert unmapped == []
    old = {"acquisition": ["app_open", "visit"],
           "activation": ["product_view", "search", "add_to_cart", "wishlist_add"],
           "revenue": ["checkout", "purchase"], "retention": ["push_open"],
           "referral": ["review"]}  # fmt: skip
    assert {e: s for s, evs in old.items() for e in evs} == {
        e: s for e, s in mapping.items() if e != "listing_view"
    }
    assert mapping["listing_view"] == "activation"


# --- Spark ---------------------------------------------------------------------------------------


@pytest.mark.spark
def test_spark_equals_duckdb_and_the_reference(spark_con, taobao):
    _, frame = taobao
    spark = spark_con.create_table("taobao_clicks", frame, overwrite=True)
    assert D.median_gap_minutes(spark) == pytest.approx(
        R.reference_median_gap_minutes(frame), abs=1e-6
    )
    spec = JourneySpec(session_gap_minutes=30, start_end=True)
    out = []
    for events in (ibis.memtable(frame), spark):
        prep = prepare(events, spec)
        groups = A.converter_groups(prep, "buy", 7.0)
        out.append(A.converter_step_matrix(prep, groups, "buy", 8))
    pd.testing.assert_frame_equal(out[0], out[1], check_dtype=False)

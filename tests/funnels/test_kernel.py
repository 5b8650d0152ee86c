"""The sorted-array funnel kernel (crm_helpers.funnels.kernel) equals the Ibis path and the
brute-force reference EXACTLY.

Random small logs and specs (the strategies of test_properties.py: ties, same-time steps,
windows of 0..10 s so chains end exactly at W, per-step gaps, exclusions, attempts, property
filters, entry ranges): every per-unit column equals the brute force (300 logs) and the Ibis
path, with its dtypes (40 logs), and ``funnel_table(..., arrays=)`` the Ibis path's table;
the hand-checked cases of conftest.py; tiny inline cases; coverage and fallback.
The synthetic world: tests/funnels/test_kernel_world.py.
"""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from crm_helpers.funnels import Exclusion, FunnelSpec, Step, funnel_table, kernel, user_funnel
from crm_helpers.funnels.reference import reference_user_funnel
from crm_helpers.store import from_frame
from crm_helpers.store.paths import paths_used, reset_paths
from tests.funnels.test_properties import rows_st, spec_st


def _settings(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@_settings(300)
@given(rows=rows_st, spec=spec_st())
def test_kernel_equals_reference(rows, spec, fx):
    df = fx.events_df(rows, props=("cat",))
    got = kernel.user_funnel_frame(from_frame(df, ["cat"]), spec)
    fx.assert_same_users(got, reference_user_funnel(df, spec))


@_settings(40)
@given(rows=rows_st, spec=spec_st())
def test_kernel_equals_engine(rows, spec, fx):
    df = fx.events_df(rows, props=("cat",))
    arrays = from_frame(df, ["cat"])
    t = ibis.memtable(df)
    got = kernel.user_funnel_frame(arrays, spec)
    engine = user_funnel(t, spec, check_events=False).to_pandas()
    fx.assert_same_users(got, engine)
    assert got.dtypes.to_dict() == engine.dtypes.to_dict()
    reset_paths()
    tab = funnel_table(t, spec, arrays=arrays, check_events=False)
    assert paths_used() == {"funnel": ["kernel"]}
    want = funnel_table(t, spec, check_events=False)
    assert paths_used() == {"funnel": ["ibis", "kernel"]}
    pd.testing.assert_frame_equal(tab, want, check_exact=False, rtol=1e-12, atol=0)


def test_hand_cases_kernel(hand_case, fx):
    df, spec, reached, values = hand_case
    props = [c for c in df.columns if c not in ("user_id", "event", "ts")]
    out = kernel.user_funnel_frame(from_frame(df, props), spec)
    fx.check_hand_case(out, spec, reached, values)
    fx.assert_same_users(out, reference_user_funnel(df, spec))


# --- tiny inline cases with obvious answers ---------------------------------------------------


def test_window_exactly_w_and_ties(fx):
    # 1: b exactly W after a (inside); 2: one second late; 3: a and b tie
    # (one moment: no step 2), then b 5 s later; 4: a, b, c all at one instant
    df = fx.events_df(
        [(1, "a", 0), (1, "b", 10), (2, "a", 0), (2, "b", 11)]
        + [(3, "a", 0), (3, "b", 0), (3, "b", 5), (4, "a", 7), (4, "b", 7), (4, "c", 7)]
    )
    spec = FunnelSpec(["a", "b", "c"], conversion_window_days=10 / 86_400)
    out = kernel.user_funnel_frame(from_frame(df), spec).set_index("user_id")
    assert out["steps_reached"].to_dict() == {1: 2, 2: 1, 3: 2, 4: 1}
    assert out.loc[3, "step_2_from_prev_s"] == 5.0
    assert out.loc[1, "step_2_from_start_s"] == 10.0


def test_attempts_and_exclusion(fx):
    # attempts: a(0) b(3) | a(5) b(6) c(7): two attempts, 2 and 3 steps
    # exclusion x between steps 1 and 2: user 2's x at 1 breaks a(0)->b(2), a(3)->b(4) holds
    df = fx.events_df(
        [(1, "a", 0), (1, "b", 3), (1, "a", 5), (1, "b", 6), (1, "c", 7)]
        + [(2, "a", 0), (2, "x", 1), (2, "b", 2), (2, "a", 3), (2, "b", 4)]
    )
    att = kernel.user_funnel_frame(from_frame(df), FunnelSpec(["a", "b", "c"], count="attempts"))
    u1 = att[att.user_id == 1]
    assert u1["attempt"].tolist() == [1, 2]
    assert u1["steps_reached"].tolist() == [2, 3]
    spec = FunnelSpec(["a", "b"], exclusions=[Exclusion("x", from_step=1, to_step=2)])
    ex = kernel.user_funnel_frame(from_frame(df), spec).set_index("user_id")
    assert ex.loc[2, "steps_reached"] == 2
    assert ex.loc[2, "entry_at"] == fx.T0 + pd.Timedelta(seconds=3)
    assert ex.loc[2, "step_2_from_prev_s"] == 1.0


def test_min_gap_and_date_range(fx):
    df = fx.events_df([(1, "a", 0), (1, "a", 4), (1, "b", 5), (2, "a", 20), (2, "b", 30)])
    spec = FunnelSpec(["a", Step("b", min_seconds_from_previous=3)])
    out = kernel.user_funnel_frame(from_frame(df), spec).set_index("user_id")
    # a(4)->b(5) is too quick; a(0)->b(5) takes 5 s
    assert out.loc[1, "step_2_from_prev_s"] == 5.0
    ranged = FunnelSpec(["a", "b"], start=fx.T0 + pd.Timedelta(seconds=10))
    out = kernel.user_funnel_frame(from_frame(df), ranged)
    assert out["user_id"].tolist() == [2]


# --- coverage and fallback --------------------------------------------------------------------


def test_uncovered_specs_take_the_ibis_path(fx):
    df = fx.events_df([(1, "a", 0, "p"), (1, "b", 1, "p"), (2, "a", 0, "q")], props=("cat",))
    spec = FunnelSpec(["a", Step("b", where={"cat": "p"})])
    bare = from_frame(df)  # no property columns: the filter cannot run on the arrays
    assert kernel.uncovered(spec, bare) is not None
    assert kernel.uncovered(spec, from_frame(df, ["cat"])) is None
    assert kernel.uncovered(FunnelSpec(["a"]), bare, extra_partition="cat") == "extra_partition"
    assert kernel.needed_columns(spec) == ("cat",)
    reset_paths()
    tab = funnel_table(ibis.memtable(df), spec, arrays=bare)
    assert paths_used() == {"funnel": ["ibis"]}
    assert tab["users"].tolist() == [2, 1]
    with pytest.raises(ValueError, match="does not cover"):
        kernel.compute(bare, spec)


def test_unknown_event_still_raises_on_the_kernel_path(fx):
    df = fx.events_df([(1, "a", 0), (1, "b", 1)])
    with pytest.raises(ValueError, match="zzz"):
        funnel_table(ibis.memtable(df), FunnelSpec(["a", "zzz"]), arrays=from_frame(df))


def test_empty_and_no_entries(fx):
    df = fx.events_df([(1, "b", 0), (2, "c", 3)])
    out = kernel.user_funnel_frame(from_frame(df), FunnelSpec(["a", "b"]))
    assert len(out) == 0
    engine = user_funnel(ibis.memtable(df), FunnelSpec(["a", "b"]), check_events=False)
    assert out.dtypes.to_dict() == engine.to_pandas().dtypes.to_dict()
    kf = kernel.compute(from_frame(df), FunnelSpec(["b", "c"], mode="any_order"))
    assert np.asarray(kf.steps_reached).tolist() == [1, 1]


def test_prepared_arrays_follows_the_store(fx, monkeypatch):
    from crm_helpers import store
    from crm_helpers.funnels import analysis

    df = fx.events_df([(1, "a", 0, "p"), (1, "b", 1, "p"), (2, "a", 0, "q")], props=("cat",))
    spec = FunnelSpec(["a", Step("b", where={"cat": "p"})])
    monkeypatch.delattr(store, "event_arrays", raising=False)
    assert analysis.prepared_arrays(df, spec) is None  # no store yet: the Ibis path
    seen = {}

    def event_arrays(data, columns=()):
        seen["columns"] = tuple(columns)
        return from_frame(data, columns)

    monkeypatch.setattr(store, "event_arrays", event_arrays, raising=False)
    arrays = analysis.prepared_arrays(df, spec)
    assert seen["columns"] == ("cat",)
    reset_paths()
    tab = funnel_table(ibis.memtable(df), spec, arrays=arrays)
    assert paths_used() == {"funnel": ["kernel"]}
    assert tab["users"].tolist() == [2, 1]


def test_many_distinct_steps_with_ties(fx):
    # ten distinct step events (moment flags packed in 64-bit words): user 1 does them one a
    # second (9 s from entry to step 10: exactly W), user 2 likewise but 10 s, user 3 in
    # pairs at one instant (a with b at 0, c with d at 1, ...: b shares a's moment)
    names = "abcdefghij"
    rows = [(1, e, k) for k, e in enumerate(names)]
    rows += [(2, e, k + (k == 9)) for k, e in enumerate(names)]
    rows += [(3, e, k // 2) for k, e in enumerate(names)]
    df = fx.events_df(rows)
    spec = FunnelSpec(list(names), conversion_window_days=9 / 86_400)
    got = kernel.user_funnel_frame(from_frame(df), spec)
    assert got.set_index("user_id")["steps_reached"].to_dict() == {1: 10, 2: 9, 3: 1}
    fx.assert_same_users(got, reference_user_funnel(df, spec))


def test_where_on_numeric_and_missing_properties(fx):
    # an integer property (with a missing value) filtered by equality, membership and None
    df = fx.events_df(
        [(1, "a", 0, 1), (1, "b", 1, 2), (2, "a", 0, 1), (2, "b", 1, None), (3, "a", 0, 3)]
        + [(3, "b", 2, 5)],
        props=("n",),
    )
    df["n"] = df["n"].astype("Int64")
    arrays = from_frame(df, ["n"])
    for where, reached in (
        ({"n": 2}, {1: 2, 2: 1, 3: 1}),
        ({"n": [2, 5]}, {1: 2, 2: 1, 3: 2}),
        ({"n": None}, {1: 1, 2: 2, 3: 1}),
    ):
        spec = FunnelSpec(["a", Step("b", where=where)])
        got = kernel.user_funnel_frame(arrays, spec)
        assert got.set_index("user_id")["steps_reached"].to_dict() == reached, where
        engine = user_funnel(ibis.memtable(df), spec, check_events=False).to_pandas()
        fx.assert_same_users(got, engine)
        fx.assert_same_users(got, reference_user_funnel(df, spec))


def test_any_order_windows_start_only_at_matching_rows(fx):
    # found by hypothesis: c at 1 s fails its filter, so it is no moment and no window
    # starts there; the only step moments (a at 0 and 2) lie outside the entry range [1, 2)
    df = fx.events_df([(1, "a", 0, None), (1, "a", 2, None), (1, "c", 1, None)], props=("cat",))
    spec = FunnelSpec(
        ["a", Step("b", where={"cat": "p"}), Step("c", where={"cat": "p"})],
        mode="any_order",
        conversion_window_days=10 / 86_400,
        start=fx.T0 + pd.Timedelta(seconds=1),
        end=fx.T0 + pd.Timedelta(seconds=2),
    )
    got = kernel.user_funnel_frame(from_frame(df, ["cat"]), spec)
    assert len(got) == 0
    fx.assert_same_users(got, reference_user_funnel(df, spec))

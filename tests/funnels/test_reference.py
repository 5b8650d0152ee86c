"""The brute-force reference itself, on tiny hand-checked cases (the answers are obvious)."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_helpers.funnels import Exclusion, FunnelSpec, Step
from crm_helpers.funnels.reference import (
    reference_funnel_counts,
    reference_funnel_table,
    reference_user_funnel,
)


def test_hand_cases(hand_case, fx):
    df, spec, reached, values = hand_case
    fx.check_hand_case(reference_user_funnel(df, spec), spec, reached, values)


def test_counts_four_users(fx):
    df = fx.events_df(
        [(1, "a", 0), (1, "b", 1), (1, "c", 2), (2, "a", 0), (2, "b", 1), (3, "a", 0)]
        + [(3, "b", 1), (3, "c", 2), (4, "a", 0)]
    )
    assert reference_funnel_counts(df, FunnelSpec(["a", "b", "c"])) == [4, 3, 2]


def test_table_quantiles_linear(fx):
    # step-2 gaps 1, 2, 3, 10 seconds -> numpy linear quantiles
    df = fx.events_df(
        [(u, e, s) for u, g in enumerate([1, 2, 3, 10], 1) for e, s in (("a", 0), ("b", g))]
    )
    tab = reference_funnel_table(df, FunnelSpec(["a", "b"]))
    row = tab.set_index("step").loc[2]
    assert row["count"] == 4
    assert row["median"] == pytest.approx(2.5)
    assert row["p25"] == pytest.approx(1.75)
    assert row["p90"] == pytest.approx(3 + 0.7 * 7)


def test_columns_match_engine_contract(fx):
    df = fx.events_df([(1, "a", 0), (1, "b", 1)])
    out = reference_user_funnel(df, FunnelSpec(["a", "b", "c"], count="attempts"))
    assert list(out.columns) == [
        "user_id", "attempt", "steps_reached", "entry_at", "step_1_at", "step_2_at",
        "step_3_at", "step_2_from_prev_s", "step_3_from_prev_s", "step_2_from_start_s",
        "step_3_from_start_s",
    ]  # fmt: skip


def test_exclusion_only_binds_covered_steps(fx):
    # exclusion between steps 2 and 3: an x between 1 and 2 does not matter
    df = fx.events_df([(1, "a", 0), (1, "x", 1), (1, "b", 2), (1, "c", 3)])
    spec = FunnelSpec(["a", "b", "c"], exclusions=[Exclusion("x", from_step=2, to_step=3)])
    assert reference_funnel_counts(df, spec) == [1, 1, 1]
    df2 = fx.events_df([(1, "a", 0), (1, "b", 2), (1, "x", 2.5), (1, "c", 3)])
    assert reference_funnel_counts(df2, spec) == [1, 1, 0]


def test_strict_gap_and_window_together(fx):
    df = fx.events_df([(1, "a", 0), (1, "b", 4), (1, "c", 9)])
    spec = FunnelSpec(
        ["a", "b", Step("c", max_seconds_from_previous=5)],
        mode="strict",
        conversion_window_days=9 / 86_400,
    )
    assert reference_funnel_counts(df, spec) == [1, 1, 1]
    spec_short = FunnelSpec(["a", "b", "c"], mode="strict", conversion_window_days=8 / 86_400)
    assert reference_funnel_counts(df, spec_short) == [1, 1, 0]


def test_extra_partition_splits_users(fx):
    df = fx.events_df([(1, "a", 0, "s1"), (1, "b", 1, "s2"), (1, "a", 2, "s2")], props=("sess",))
    out = reference_user_funnel(df, FunnelSpec(["a", "b"]), extra_partition="sess")
    got = {r["sess"]: r["steps_reached"] for r in out.to_dict("records")}
    assert got == {"s1": 1, "s2": 1}
    assert pd.Timestamp(out.set_index("sess").loc["s2", "step_1_at"]) == fx.T0 + pd.Timedelta(
        seconds=2
    )

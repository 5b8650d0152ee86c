"""core.period_step_counts (every period's funnel in one query) equals the brute-force
reference run once per period, exactly, on random logs spanning several periods.

Each random log spans about three periods on a coarse time grid (so ties, events exactly at
a period start and steps exactly one window after their entry are common); the window is
shorter or longer than the period; steps may have per-step gaps and property filters; the
spec may restrict the entry dates. Both forms of the pruned step are checked (DuckDB's ASOF
join and the RANGE window that Spark runs), and Spark itself on one case.
"""

from __future__ import annotations

import random
from dataclasses import replace
from unittest.mock import patch

import ibis
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_helpers.funnels import Exclusion, FunnelSpec, Step, core
from crm_helpers.funnels import analysis as A
from crm_helpers.funnels.core import period_step_counts, supports_period_counts
from crm_helpers.funnels.reference import reference_user_funnel

T0 = {"day": "2024-03-01", "week": "2024-03-04", "month": "2024-01-01"}  # period starts
PERIOD_S = {"day": 86_400, "week": 7 * 86_400, "month": 30 * 86_400}
FREQ = {"day": "D", "week": "W-SUN", "month": "M"}  # pandas periods: weeks from Monday


def random_log(seed: int, period: str) -> tuple[pd.DataFrame, FunnelSpec]:
    rng = random.Random(seed)
    p = PERIOD_S[period]
    grid = p // 8  # coarse grid: ties, period starts and window edges are hit exactly
    t0 = pd.Timestamp(T0[period])
    rows = []
    for u in range(1, rng.randint(1, 5) + 1):
        for _ in range(rng.randint(2, 14)):
            sec = rng.randint(-2, 26) * grid + rng.choice([0, 0, 0, 1, -1])
            rows.append((u, rng.choice("aabbcx"), t0 + pd.Timedelta(seconds=sec), rng.choice("pq")))
    df = pd.DataFrame(rows, columns=["user_id", "event", "ts", "cat"])
    df["ts"] = df["ts"].astype("datetime64[us]")
    n = rng.choice([1, 2, 3, 3, 4])
    steps = []
    for k in range(n):
        lo = hi = None
        if k and rng.random() < 0.3:
            lo = rng.choice([None, 0, grid])
            hi = rng.choice([None, 2 * grid, 6 * grid])
        where = rng.choice([None, None, {"cat": "p"}])
        ev = rng.choice("abc")
        steps.append(Step(ev, where, min_seconds_from_previous=lo, max_seconds_from_previous=hi))
    window_days = rng.choice([0.25, 0.5, 1.0, 1.5, 3.0]) * p / 86_400
    start = end = None
    if rng.random() < 0.3:
        start = t0 + pd.Timedelta(seconds=rng.randint(0, 12) * grid)
        end = start + pd.Timedelta(seconds=rng.randint(1, 16) * grid)
    spec = FunnelSpec(steps, conversion_window_days=window_days, start=start, end=end)
    return df, spec


def reference_counts(df: pd.DataFrame, spec: FunnelSpec, period: str) -> pd.DataFrame:
    """The brute-force reference, once per period of entry (entry restricted to the period)."""
    n = spec.n_steps
    starts = pd.period_range(df["ts"].min(), df["ts"].max(), freq=FREQ[period])
    rows = []
    for per in starts:
        lo, hi = per.start_time, (per + 1).start_time
        if spec.start is not None:
            lo = max(lo, spec.start)
        if spec.end is not None:
            hi = min(hi, spec.end)
        if lo >= hi:
            continue
        ref = reference_user_funnel(df, replace(spec, start=lo, end=hi))
        counts = {f"n_{k}": int((ref["steps_reached"] >= k).sum()) for k in range(1, n + 1)}
        if counts["n_1"]:
            rows.append({"period": per.start_time, **counts})
    out = pd.DataFrame(rows, columns=["period"] + [f"n_{k}" for k in range(1, n + 1)])
    out["period"] = pd.to_datetime(out["period"]).astype("datetime64[us]")
    return out.astype({f"n_{k}": "int64" for k in range(1, n + 1)})


def engine_counts(events: ibis.Table, spec: FunnelSpec, period: str, **kw) -> pd.DataFrame:
    got = period_step_counts(events, spec, period, check_events=False, **kw).to_pandas()
    got["period"] = pd.to_datetime(got["period"]).astype("datetime64[us]")
    return got.astype({c: "int64" for c in got.columns if c.startswith("n_")})


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
@pytest.mark.parametrize("period", ["day", "week", "month"])
@pytest.mark.parametrize("path", ["asof", "window"])
def test_period_counts_equal_reference_per_period(path, period, seed):
    df, spec = random_log(seed, period)
    with patch.object(core, "ASOF_BACKENDS", core.ASOF_BACKENDS if path == "asof" else set()):
        got = engine_counts(ibis.memtable(df), spec, period)
    pd.testing.assert_frame_equal(got, reference_counts(df, spec, period))


def test_periods_subset_and_hand_checked_week():
    """Hand-checked: a step in the next week still converts an entry of this week, and
    feeds both weeks' funnels when both entries are inside the window."""
    t0 = pd.Timestamp("2024-03-04")  # Monday
    h = pd.Timedelta(hours=1)
    rows = [
        (1, "a", t0 + 6 * 24 * h),  # Sunday of week 1
        (1, "a", t0 + 7 * 24 * h + h),  # Monday of week 2
        (1, "b", t0 + 7 * 24 * h + 2 * h),  # serves both entries (window 2 days)
        (2, "a", t0 + 24 * h),  # week 1, b too late (3 days)
        (2, "b", t0 + 4 * 24 * h),
    ]
    df = pd.DataFrame(rows, columns=["user_id", "event", "ts"]).astype({"ts": "datetime64[us]"})
    spec = FunnelSpec(["a", "b"], conversion_window_days=2)
    got = engine_counts(ibis.memtable(df), spec, "week")
    assert got["period"].tolist() == [t0, t0 + pd.Timedelta(weeks=1)]
    assert got[["n_1", "n_2"]].values.tolist() == [[2, 1], [1, 1]]
    only = engine_counts(ibis.memtable(df), spec, "week", periods=[t0 + pd.Timedelta(weeks=1)])
    assert only[["n_1", "n_2"]].values.tolist() == [[1, 1]]


def test_unsupported_specs_fall_back_to_one_query_per_period():
    """strict / exclusions / attempts are not one-pass: period_step_counts refuses them and
    trend_table gives the per-period funnels (checked against the reference)."""
    df, _ = random_log(5, "week")
    strict = FunnelSpec(["a", "b"], mode="strict", conversion_window_days=7)
    excl = FunnelSpec(["a", "c"], exclusions=[Exclusion("b")], conversion_window_days=7)
    for spec in (strict, excl, FunnelSpec(["a", "b"], count="attempts")):
        assert not supports_period_counts(spec)
        with pytest.raises(ValueError, match="ordered funnel without exclusions"):
            period_step_counts(ibis.memtable(df), spec, "week")
    for spec in (strict, excl):
        trend = A.trend_table(ibis.memtable(df), spec, "week")
        wide = trend.pivot(index="period", columns="step", values="users")
        ref = reference_counts(df, spec, "week").set_index("period")
        assert wide.values.tolist() == ref.values.tolist()


@pytest.mark.spark
def test_period_counts_on_spark_equal_duckdb(spark_con):
    for seed, period in [(11, "week"), (12, "month"), (13, "day")]:
        df, spec = random_log(seed, period)
        t = spark_con.create_view(f"periods_{period}", ibis.memtable(df), overwrite=True)
        pd.testing.assert_frame_equal(
            engine_counts(t, spec, period), reference_counts(df, spec, period)
        )

"""Integer-valued metrics are summed as integers in the engine: exactly the brute-force sums
(numpy, int64) and the same totals as the DECIMAL path (exact_sum) they replaced."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd

from crm_helpers.experiments import core

METRICS = ["conversion", "orders", "event:visit", "event_count:visit"]


def _per_user(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 2_000_000, n)  # squares up to 4e12
    return pd.DataFrame(
        {
            "user_id": np.arange(n),
            "variant": rng.choice(["a", "b"], n),
            "orders": rng.integers(0, 4, n),
            "pre_orders": rng.integers(0, 3, n),
            "ev0": big,
            "pre_ev0": rng.integers(0, 2_000_000, n) * (rng.random(n) < 0.7),
        }
    )


def test_integer_sums_equal_brute_force_exactly():
    df = _per_user()
    got = core.sufficient_stats(ibis.memtable(df), METRICS, all_events=["visit"])
    for (variant, metric), row in got.set_index(["variant", "metric"]).iterrows():
        g = df[df["variant"] == variant]
        col = {"conversion": "orders", "orders": "orders"}.get(metric, "ev0")
        y, x = g[col].to_numpy(np.int64), g[f"pre_{col}"].to_numpy(np.int64)
        if metric in ("conversion", "event:visit"):
            y, x = (y > 0).astype(np.int64), (x > 0).astype(np.int64)
        want = [len(g), y.sum(), (y * y).sum(), x.sum(), (x * x).sum(), (x * y).sum()]
        have = row[["n", "sum", "sum_sq", "pre_sum", "pre_sum_sq", "cross_sum"]].tolist()
        assert have == [float(v) for v in want], (variant, metric)


def test_integer_sums_equal_the_decimal_path():
    df = _per_user(seed=1)
    t = ibis.memtable(df)
    fast = core.sufficient_stats(t, METRICS, all_events=["visit"])
    # a cap no value reaches sends a metric down the DECIMAL (exact_sum) path unchanged
    slow = core.sufficient_stats(t, METRICS, all_events=["visit"], caps={m: 1e15 for m in METRICS})
    pd.testing.assert_frame_equal(fast, slow, rtol=0, atol=0)

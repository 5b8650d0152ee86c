"""Correctness (not timing) of bench_funnel.py's kernel rows: the arrays it prepares equal
:func:`crm_helpers.store.from_frame`, and its numpy floor and the helper on those arrays
give the plain-Python state machine's counts (random logs with ties and exact 7-day
boundaries, from test_funnel_impls.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_funnel as B  # noqa: E402
import funnel_impls as F  # noqa: E402

from crm_helpers.store import from_frame  # noqa: E402
from tests.benchmarks.test_funnel_impls import (  # noqa: E402
    random_log,
    reference_counts,
    write_log,
)


@pytest.mark.parametrize("seed", [0, 1])
def test_floor_and_helper_kernel_agree_with_state_machine(tmp_path, seed):
    user, ts, event = random_log(seed)
    steps = ["a", "b", "c", "d"]
    expected = reference_counts(user.tolist(), ts.tolist(), event.tolist(), steps)
    d = write_log(tmp_path, user, ts, event)
    arrays = B.prepare_arrays(d).check()
    df = pd.read_parquet(d / "events.parquet")
    df["ts"] = df["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    ref = from_frame(df)
    for name in ("user", "t", "event", "offsets", "user_ids"):
        np.testing.assert_array_equal(getattr(arrays, name), getattr(ref, name), err_msg=name)
    assert arrays.event_names == ref.event_names
    assert B.floor_kernel(arrays, steps) == expected


def test_worker_kernel_row(tmp_path, monkeypatch):
    user, ts, event = random_log(3)
    event = np.array(["visit", "product_view", "add_to_cart", "purchase", "x", "y"])[
        np.searchsorted(["a", "b", "c", "d", "x", "y"], event)
    ]
    expected = reference_counts(user.tolist(), ts.tolist(), event.tolist(), list(F.STEPS))
    d = write_log(tmp_path, user, ts, event)
    out = B._worker_kernel({"impl": "helper_kernel", "times": [], "cpu": [], "extra": {}}, d, 1)
    assert out["counts"] == expected
    assert set(out["extra"]) == {"kernel_compute", "arrays_floor", "arrays_prepare"}

"""The sorted-array layout: tiny frames whose arrays are obvious."""

import numpy as np
import pandas as pd
import pytest

from crm_helpers.store.arrays import from_frame


def _frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "event", "ts", "category"])


def test_codes_order_and_offsets_of_a_tiny_frame():
    df = _frame(
        [
            ("b", "view", "2026-01-01 00:00:02", "x"),
            ("a", "view", "2026-01-01 00:00:01", None),
            ("b", "buy", "2026-01-01 00:00:02", "y"),
            ("a", "cart", "2026-01-01 00:00:00.0000015", "z"),
            (None, "view", "2026-01-01", "w"),
        ]
    )
    df["ts"] = pd.to_datetime(df["ts"], format="ISO8601")
    a = from_frame(df, columns=["category"])
    assert list(a.user_ids) == ["a", "b"]
    assert a.event_names == ("buy", "cart", "view")
    assert a.user.tolist() == [0, 0, 1, 1]
    assert a.event.tolist() == [1, 2, 0, 2]  # b's tie at 00:00:02: buy before view
    base = 1767225600 * 1_000_000
    assert a.t.tolist() == [base + 1, base + 1_000_000, base + 2_000_000, base + 2_000_000]
    assert a.offsets.tolist() == [0, 2, 4]
    assert a.columns["category"].tolist() == ["z", None, "y", "x"]
    assert a.event_code("view") == 2 and a.event_code("nope") is None


def test_row_order_of_the_input_does_not_change_the_arrays():
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, 40, n),
            "event": rng.choice(["a", "b", "c"], n),
            "ts": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 50, n), unit="s"),
        }
    )
    x, y = from_frame(df), from_frame(df.sample(frac=1, random_state=1))
    for f in ("user", "t", "event", "offsets", "user_ids"):
        np.testing.assert_array_equal(getattr(x, f), getattr(y, f))


def test_tz_aware_times_are_utc_and_check_catches_a_broken_layout():
    df = pd.DataFrame(
        {
            "user_id": [1],
            "event": ["e"],
            "ts": pd.to_datetime(["2026-01-01 01:00"]).tz_localize("Europe/Paris"),
        }
    )
    a = from_frame(df)
    assert a.t.tolist() == [1767225600 * 1_000_000]
    broken = type(a)(a.user, a.t, a.event, np.array([0, 2]), a.user_ids, a.event_names)
    with pytest.raises(ValueError, match="offsets"):
        broken.check()


def test_paths_used_records_each_analysis_path():
    from crm_helpers.store.paths import paths_used, record_path, reset_paths

    reset_paths()
    record_path("funnel", "kernel")
    record_path("funnel", "ibis")
    record_path("journeys", "kernel")
    assert paths_used() == {"funnel": ["ibis", "kernel"], "journeys": ["kernel"]}
    with pytest.raises(ValueError):
        record_path("funnel", "numpy")
    reset_paths()
    assert paths_used() == {}

"""Correctness (not timing) of the funnel benchmark's reference implementations.

Every implementation in ``benchmarks/funnel_impls.py`` must give the same per-step counts
as the plain-Python state machine (the semantics' definition), as the brute-force
reference in ``crm_helpers.funnels.reference`` when present, and as the project helper
``crm_helpers.funnels.funnel_table`` when present, on small random logs with ties and
window-boundary cases, and on tiny hand-checked logs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import funnel_impls as F  # noqa: E402

HOUR_US = 3_600 * 1_000_000
DAY_US = 24 * HOUR_US
T0 = F._T0_US
FAST = ["duckdb_sql", "duckdb_sql_windows", "polars", "pandas", "numpy"]


def write_log(tmp_path: Path, user, ts_us, event) -> Path:
    """Write an events + users Parquet pair (the benchmark's schema) and return the dir."""
    user = np.asarray(user, dtype=np.int64)
    events = pa.table(
        {
            "user_id": pa.array(user),
            "event": pa.array(list(event), type=pa.string()),
            "ts": pa.array(np.asarray(ts_us, dtype=np.int64), type=pa.timestamp("us", tz="UTC")),
        }
    )
    uniq = np.unique(user)
    users = pa.table(
        {
            "user_id": pa.array(uniq),
            "signup_at": pa.array(np.full(len(uniq), T0), type=pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(events, tmp_path / "events.parquet")
    pq.write_table(users, tmp_path / "users.parquet")
    return tmp_path


def all_counts(data_dir: Path, steps, helper: bool = True) -> dict[str, list[int]]:
    out = {name: F.IMPLEMENTATIONS[name](data_dir, steps) for name in FAST}
    if helper and F.helper_available():
        out["helper"] = F.funnel_helper(data_dir, steps)
    return out


def reference_counts(user, ts_us, event, steps) -> list[int]:
    return F.funnel_state_machine(user, ts_us, event, steps, F.window_us())


# --- tiny hand-checked logs -----------------------------------------------------------------

# 4 users, steps a -> b -> c, 7-day window:
#   u1: a, b (+1h), c (+2h)                    -> reaches c
#   u2: a, b (+1d), c (+8d: 8 days after a)    -> reaches b only (c is out of the window)
#   u3: a and b at the same instant, c (+1h)   -> reaches a only (a tie is one moment)
#   u4: a, x (+1h), b (+2h), c (+7d exactly)   -> reaches c (window inclusive, x in between)
HAND = [
    (1, 0, "a"),
    (1, HOUR_US, "b"),
    (1, 2 * HOUR_US, "c"),
    (2, 0, "a"),
    (2, DAY_US, "b"),
    (2, 8 * DAY_US, "c"),
    (3, 0, "a"),
    (3, 0, "b"),
    (3, HOUR_US, "c"),
    (4, 0, "a"),
    (4, HOUR_US, "x"),
    (4, 2 * HOUR_US, "b"),
    (4, 7 * DAY_US, "c"),
]


def _cols(rows):
    user, ts, event = zip(*rows, strict=True)
    return list(user), [T0 + t for t in ts], list(event)


def test_hand_checked_case(tmp_path):
    user, ts, event = _cols(HAND)
    assert reference_counts(user, ts, event, "abc") == [4, 3, 2]
    d = write_log(tmp_path, user, ts, event)
    for name, counts in all_counts(d, ["a", "b", "c"]).items():
        assert counts == [4, 3, 2], name
        assert [c / counts[0] for c in counts] == [1.0, 0.75, 0.5], name


def test_later_start_and_repeated_steps(tmp_path):
    # u1: a(0) b(1d) a(5d) b(6d) c(10d): the chain from the *second* a fits (5 days)
    # u2: a(0) c(1d) b(2d): c before b does not count -> reaches b
    # u3: b(0) a(1d) a(1d) b(1d) c(2d): a and b tie at 1d -> only a
    # u4: a(0) b(0) b(1h) c(1h) c(2h): b at 1h (after a), c at 2h -> reaches c
    rows = [
        (1, 0, "a"),
        (1, DAY_US, "b"),
        (1, 5 * DAY_US, "a"),
        (1, 6 * DAY_US, "b"),
        (1, 10 * DAY_US, "c"),
        (2, 0, "a"),
        (2, DAY_US, "c"),
        (2, 2 * DAY_US, "b"),
        (3, 0, "b"),
        (3, DAY_US, "a"),
        (3, DAY_US, "a"),
        (3, DAY_US, "b"),
        (3, 2 * DAY_US, "c"),
        (4, 0, "a"),
        (4, 0, "b"),
        (4, HOUR_US, "b"),
        (4, HOUR_US, "c"),
        (4, 2 * HOUR_US, "c"),
    ]
    user, ts, event = _cols(rows)
    assert reference_counts(user, ts, event, "abc") == [4, 3, 2]
    d = write_log(tmp_path, user, ts, event)
    for name, counts in all_counts(d, ["a", "b", "c"]).items():
        assert counts == [4, 3, 2], name


def test_no_step_events(tmp_path):
    # (the helper rejects step names absent from the data, by design: not run here)
    d = write_log(tmp_path, [1, 2], [T0, T0 + HOUR_US], ["x", "y"])
    for name, counts in all_counts(d, ["a", "b", "c"], helper=False).items():
        assert counts == [0, 0, 0], name


# --- random logs ----------------------------------------------------------------------------


def random_log(seed: int, n_users: int = 300, n_events: int = 4_000):
    """Events on an hourly grid over 20 days: many ties and exact 7-day boundaries."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, n_events) * 7 + 3  # sparse, non-zero-based ids
    ts = T0 + rng.integers(0, 20 * 24, n_events) * HOUR_US
    event = rng.choice(["a", "b", "c", "d", "x", "y"], n_events, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    return user, ts, event


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_logs_agree(tmp_path, seed):
    user, ts, event = random_log(seed)
    steps = ["a", "b", "c", "d"]
    expected = reference_counts(user.tolist(), ts.tolist(), event.tolist(), steps)
    assert expected[0] > expected[-1] > 0  # the log exercises every step
    d = write_log(tmp_path, user, ts, event)
    for name, counts in all_counts(d, steps).items():
        assert counts == expected, name


def test_matches_crm_helpers_brute_force_reference(tmp_path):
    reference = pytest.importorskip("crm_helpers.funnels.reference")
    import pandas as pd

    from crm_helpers.funnels import FunnelSpec

    user, ts, event = random_log(7, n_users=150, n_events=1_500)
    steps = ["a", "b", "c", "d"]
    events = pd.DataFrame({"user_id": user, "event": event, "ts": pd.to_datetime(ts, unit="us")})
    spec = FunnelSpec(steps, mode="ordered", conversion_window_days=7)
    brute = reference.reference_funnel_counts(events, spec)
    d = write_log(tmp_path, user, ts, event)
    for name, counts in all_counts(d, steps).items():
        assert counts == [int(c) for c in brute], name


def brute_force_max_step(moments: dict, steps, window) -> int:
    """Exhaustive search over all strictly increasing chains of moments (tiny users only)."""
    times = sorted(moments)
    best = 0

    def extend(i: int, k: int, t1) -> None:
        nonlocal best
        best = max(best, k)
        if k == len(steps):
            return
        for j in range(i + 1, len(times)):
            t = times[j]
            if t - t1 <= window and steps[k] in moments[t]:
                extend(j, k + 1, t1)

    for i, t in enumerate(times):
        if steps[0] in moments[t]:
            extend(i, 1, t)
    return best


@pytest.mark.parametrize("seed", [10, 11])
def test_state_machine_matches_exhaustive_search(seed):
    # 400 users x ~10 events on a 2-day grid over 24 days: ties, repeats, window edges
    rng = np.random.default_rng(seed)
    steps, window = ["a", "b", "c", "d"], 7 * DAY_US
    user = rng.integers(0, 400, 4_000)
    ts = rng.integers(0, 12, 4_000) * 2 * DAY_US
    event = rng.choice(["a", "b", "c", "d", "x"], 4_000)
    by_user: dict = {}
    for u, t, e in zip(user.tolist(), ts.tolist(), event.tolist(), strict=True):
        by_user.setdefault(u, {}).setdefault(t, set()).add(e)
    brute = [0] * len(steps)
    for moments in by_user.values():
        for k in range(brute_force_max_step(moments, steps, window)):
            brute[k] += 1
    assert brute[-1] > 0
    sm = F.funnel_state_machine(user.tolist(), ts.tolist(), event.tolist(), steps, window)
    assert sm == brute
    code = np.array([steps.index(e) if e in steps else -1 for e in event])
    assert F.numpy_kernel(user, ts, code, len(steps), window) == brute


def test_numpy_kernel_sparse_ids_and_microseconds():
    # ids spread over 2^44 and microsecond jitter: users x time overflows int64 unless the
    # kernel ranks the user ids; the step code no longer fits in the key's low bits either
    user, ts, event = random_log(3)
    rng = np.random.default_rng(4)
    ts = ts + rng.integers(0, 3, len(ts))  # a few microseconds: ties survive, some split
    steps = ["a", "b", "c", "d"]
    code = np.array([steps.index(e) if e in steps else -1 for e in event])
    expected = reference_counts(user.tolist(), ts.tolist(), event.tolist(), steps)
    assert F.numpy_kernel(user, ts, code, 4, F.window_us()) == expected
    assert F.numpy_kernel(user * 2**44, ts, code, 4, F.window_us()) == expected


# --- data generator -------------------------------------------------------------------------


def test_generator_schema_shape_and_seed(tmp_path):
    d = F.ensure_data(500, 5_000, seed=3, data_dir=tmp_path)
    events = pq.read_table(d / "events.parquet")
    assert events.num_rows == 5_000
    assert events.schema.field("user_id").type == pa.int64()
    assert events.schema.field("event").type == pa.string()
    assert events.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    counts = events.group_by("event").aggregate([("event", "count")]).to_pydict()
    n = dict(zip(counts["event"], counts["event_count"], strict=True))
    assert n["visit"] > n["product_view"] > n["add_to_cart"] > n["purchase"] > 0
    assert set(n) - set(F.STEPS)  # other event names present
    ts = events.column("ts").cast(pa.timestamp("us")).to_numpy().astype(np.int64)
    assert np.all(np.diff(ts) >= 0)  # log order
    span_days = (ts.max() - ts.min()) / DAY_US
    assert 80 < span_days <= 90
    # same seed -> same file contents; the directory is reused
    again, _ = F.generate_events(500, 5_000, seed=3)
    assert again.equals(events)
    assert F.ensure_data(500, 5_000, seed=3, data_dir=tmp_path) == d


def test_generated_data_loads_with_crm_helpers(tmp_path):
    import crm_helpers

    d = F.ensure_data(200, 2_000, seed=1, data_dir=tmp_path)
    data = crm_helpers.load(d, validate=False)
    assert data.row_counts() == {"users": 200, "events": 2_000}

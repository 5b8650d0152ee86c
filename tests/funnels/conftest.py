"""Helpers for the funnel engine tests: tiny event logs and exact engine-vs-reference checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import ibis
import numpy as np
import pandas as pd
import pytest

T0 = pd.Timestamp("2024-03-01 00:00:00")


def events_df(rows: Iterable[Sequence], props: Sequence[str] = ()) -> pd.DataFrame:
    """Rows ``(user_id, event, seconds_after_T0, *props)`` -> events frame (``ts`` naive UTC)."""
    rows = list(rows)
    cols = ["user_id", "event", "sec", *props]
    df = pd.DataFrame(rows, columns=cols)
    df["user_id"] = df["user_id"].astype("int64")
    df["event"] = df["event"].astype(object)
    df["ts"] = (T0 + pd.to_timedelta(df["sec"].astype(float), unit="s")).astype("datetime64[us]")
    for p in props:
        df[p] = df[p].astype(object)
    return df[["user_id", "event", "ts", *props]]


def to_table(df: pd.DataFrame, con=None, name: str | None = None) -> ibis.Table:
    """An Ibis table of ``df``: a memtable (DuckDB default) or a table on ``con``."""
    mt = ibis.memtable(df)
    if con is None:
        return mt
    return con.create_table(name or "funnel_events", mt, overwrite=True)


def _norm_value(v):
    if v is None:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp | np.datetime64):
        ts = pd.Timestamp(v)
        if pd.isna(ts):
            return None
        return int((ts - pd.Timestamp(0)) // pd.Timedelta(microseconds=1))
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def normalise(df: pd.DataFrame) -> list[dict]:
    """Rows as dicts with timestamps as epoch microseconds and nulls as None, sorted by keys."""
    keys = [c for c in ("user_id", "attempt") if c in df.columns]
    out = [{k: _norm_value(v) for k, v in row.items()} for row in df.to_dict("records")]
    return sorted(out, key=lambda r: tuple((r[k] is None, r[k]) for k in keys))


def assert_same_users(engine: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Exact equality of per-user funnels (columns, rows, every value)."""
    assert list(engine.columns) == list(ref.columns)
    a, b = normalise(engine), normalise(ref)
    assert len(a) == len(b), f"{len(a)} engine rows vs {len(b)} reference rows\n{a}\n{b}"
    for ra, rb in zip(a, b, strict=True):
        assert ra == rb, f"engine {ra}\n   ref {rb}"


@pytest.fixture
def duck():
    from crm_helpers.engine import connect

    return connect("duckdb")


# --- tiny hand-checked cases (used by test_reference.py and test_core.py) ---------------------
# Each case: rows (user, event, seconds after T0[, cat]), spec kwargs, expected steps_reached per
# key (user, or (user, attempt)); keys absent from `reached` must be absent from the output;
# `values` pins other columns (seconds for *_s, seconds-after-T0 for *_at).

DAY = 86_400


def _case(cid, rows, spec, reached, values=None, props=()):
    return pytest.param(
        {"rows": rows, "spec": spec, "reached": reached, "values": values or {}, "props": props},
        id=cid,
    )


def _spec(steps, **kw):
    from crm_helpers.funnels import FunnelSpec

    return lambda: FunnelSpec(steps, **kw)


def _hand_cases():
    from crm_helpers.funnels import Exclusion, Step

    return [
        _case(
            "four_users_075_050",
            [
                (1, "a", 0),
                (1, "b", 10),
                (1, "c", 20),
                (2, "a", 0),
                (2, "b", 5),
                (3, "a", 0),
                (3, "b", 1),
                (3, "c", 2),
                (4, "a", 0),
                (5, "x", 0),
            ],
            _spec(["a", "b", "c"]),
            {1: 3, 2: 2, 3: 3, 4: 1},  # user 5 has no funnel events: absent
            {
                1: {
                    "step_2_at": 10,
                    "step_3_at": 20,
                    "step_3_from_prev_s": 10.0,
                    "step_3_from_start_s": 20.0,
                    "entry_at": 0,
                }
            },
        ),
        _case(
            "window_boundary_inclusive",
            [(1, "a", 0), (1, "b", DAY), (2, "a", 0), (2, "b", DAY + 1)],
            _spec(["a", "b"], conversion_window_days=1),
            {1: 2, 2: 1},
        ),
        _case(
            "ties_are_one_moment",
            [(1, "a", 0), (1, "b", 0), (2, "a", 0), (2, "a", 5), (2, "b", 5)],
            _spec(["a", "b"]),
            {1: 1, 2: 2},
            {2: {"step_2_from_prev_s": 5.0, "entry_at": 0}},
        ),
        _case(
            "file_order_irrelevant",
            [(1, "c", 20), (1, "b", 10), (1, "a", 0), (2, "b", 10), (2, "a", 30)],
            _spec(["a", "b", "c"]),
            {1: 3, 2: 1},
        ),
        _case(
            "step_never_matches",
            [(1, "a", 0, "p"), (1, "b", 1, "p"), (1, "c", 2, "p"), (2, "a", 0, "q")],
            _spec(["a", Step("b", where={"cat": "zzz"}), "c"]),
            {1: 1, 2: 1},
            {1: {"step_2_at": None, "step_3_at": None, "step_2_from_prev_s": None}},
            props=("cat",),
        ),
        _case(
            "single_step",
            [(1, "a", 3), (1, "a", 1), (2, "b", 0)],
            _spec(["a"]),
            {1: 1},
            {1: {"step_1_at": 1, "entry_at": 1}},
        ),
        _case(
            "repeated_step_needs_two_moments",
            [
                (1, "a", 0),
                (1, "b", 5),
                (2, "a", 0),
                (2, "a", 3),
                (2, "b", 5),
                (3, "a", 0),
                (3, "a", 0),
                (3, "b", 5),
            ],
            _spec(["a", "a", "b"]),
            {1: 1, 2: 3, 3: 1},  # 3: two rows at the same moment are one moment
            {2: {"step_2_at": 3, "step_3_from_prev_s": 2.0, "step_3_from_start_s": 5.0}},
        ),
        _case(
            "strict_broken_by_unrelated_event",
            [
                (1, "a", 0),
                (1, "x", 1),
                (1, "b", 2),
                (2, "a", 0),
                (2, "b", 2),
                (3, "a", 0),
                (3, "x", 2),
                (3, "b", 2),
                (4, "a", 0),
                (4, "x", 1),
                (4, "a", 2),
                (4, "b", 3),
            ],
            _spec(["a", "b"], mode="strict"),
            {1: 1, 2: 2, 3: 2, 4: 2},  # 3: x at the same moment as b is not "between"
            {4: {"step_2_from_prev_s": 1.0, "entry_at": 2}},
        ),
        _case(
            "strict_gap_limits_inclusive",
            [(1, "a", 0), (1, "b", 2), (2, "a", 0), (2, "b", 1), (3, "a", 0), (3, "b", 3)]
            + [(4, "a", 0), (4, "b", 4)],
            _spec(
                ["a", Step("b", min_seconds_from_previous=2, max_seconds_from_previous=3)],
                mode="strict",
            ),
            {1: 2, 2: 1, 3: 2, 4: 1},
        ),
        _case(
            "ordered_ignores_unrelated_event",
            [(1, "a", 0), (1, "x", 1), (1, "b", 2)],
            _spec(["a", "b"]),
            {1: 2},
        ),
        _case(
            "exclusion_inside_vs_outside",
            [
                (1, "a", 0),
                (1, "x", 1),
                (1, "b", 2),
                (1, "c", 3),
                (2, "a", 0),
                (2, "b", 1),
                (2, "x", 2),
                (2, "c", 3),
                (3, "x", 0),
                (3, "a", 0),
                (3, "b", 1),
                (4, "a", 0),
                (4, "x", 1),
                (4, "b", 1),
                (5, "a", 0),
                (5, "x", 1),
                (5, "a", 2),
                (5, "b", 3),
            ],
            _spec(["a", "b", "c"], exclusions=[Exclusion("x", from_step=1, to_step=2)]),
            # 1: x between a and b; 2: x after b (outside 1..2); 3: x at a's moment (not
            # counted); 4: x at b's moment (counted); 5: re-entry after the exclusion
            {1: 1, 2: 3, 3: 2, 4: 1, 5: 2},
            {5: {"entry_at": 2, "step_2_from_start_s": 1.0}},
        ),
        _case(
            "exclusion_default_to_last_step",
            [
                (1, "a", 0),
                (1, "b", 1),
                (1, "x", 2),
                (1, "c", 3),
                (2, "a", 0),
                (2, "b", 1),
                (2, "c", 3),
                (2, "x", 4),
            ],
            _spec(["a", "b", "c"], exclusions=[Exclusion("x")]),
            {1: 2, 2: 3},
        ),
        _case(
            "per_step_min_max_gap",
            [
                (1, "a", 0),
                (1, "b", 1),
                (2, "a", 0),
                (2, "b", 2),
                (3, "a", 0),
                (3, "b", 5),
                (4, "a", 0),
                (4, "b", 6),
                (5, "a", 0),
                (5, "a", 4),
                (5, "b", 6),
                (6, "a", 0),
                (6, "b", 1),
                (6, "b", 3),
            ],
            _spec(["a", Step("b", min_seconds_from_previous=2, max_seconds_from_previous=5)]),
            {1: 1, 2: 2, 3: 2, 4: 1, 5: 2, 6: 2},
            {
                5: {"step_2_at": 6, "step_2_from_prev_s": 2.0, "entry_at": 4},
                6: {"step_2_at": 3, "step_2_from_prev_s": 3.0},
            },
        ),
        _case(
            "attempts_count_reentries",
            [
                (1, "a", 0),
                (1, "b", 1),
                (1, "a", 2),
                (1, "b", 3),
                (2, "a", 0),
                (2, "a", 2),
                (2, "b", 3),
                (3, "b", 0),
            ],
            _spec(["a", "b"], count="attempts"),
            {(1, 1): 2, (1, 2): 2, (2, 1): 1, (2, 2): 2},
            {(2, 2): {"step_2_from_prev_s": 1.0, "entry_at": 2}},
        ),
        _case(
            "where_equality_and_membership",
            [
                (1, "view", 0, "sports"),
                (1, "buy", 1, "sports"),
                (2, "view", 0, "books"),
                (2, "buy", 1, "books"),
                (3, "view", 0, "books"),
                (3, "view", 2, "sports"),
                (3, "buy", 3, "toys"),
                (4, "view", 0, "sports"),
                (4, "buy", 1, None),
            ],
            _spec(
                [
                    Step("view", where={"cat": "sports"}),
                    Step("buy", where={"cat": ["sports", "toys"]}),
                ]
            ),
            {1: 2, 3: 2, 4: 1},
            {3: {"step_1_at": 2, "step_2_from_prev_s": 1.0}},
            props=("cat",),
        ),
        _case(
            "any_order",
            [
                (1, "c", 0),
                (1, "a", 1),
                (1, "b", 2),
                (2, "b", 0),
                (2, "a", 10),
                (3, "a", 0),
                (3, "b", 0),
                (4, "c", 0),
                (4, "c", 2),
                (4, "a", 4),
                (4, "b", 7),
                (4, "b", 9),
            ],
            _spec(["a", "b", "c"], mode="any_order", conversion_window_days=5 / DAY),
            # 4: the window from c@0 misses b@7 (7 > 5); the one from c@2 has c, a@4, b@7
            {1: 3, 2: 1, 3: 2, 4: 3},
            {
                1: {"step_3_at": 2, "entry_at": 0, "step_3_from_start_s": 2.0},
                3: {"step_2_at": 0, "step_2_from_prev_s": 0.0},
                4: {"step_2_at": 4, "step_3_at": 7, "entry_at": 2, "step_3_from_prev_s": 3.0},
            },
        ),
        _case(
            "time_to_convert_latest_entry",
            [
                (1, "a", 0),
                (1, "a", 10),
                (1, "b", 15),
                (2, "a", 0),
                (2, "b", 3),
                (2, "a", 4),
                (2, "b", 8),
            ],
            _spec(["a", "b"]),
            {1: 2, 2: 2},
            {
                1: {"step_2_from_prev_s": 5.0, "step_2_from_start_s": 5.0, "entry_at": 10},
                2: {"step_2_at": 3, "step_2_from_prev_s": 3.0, "entry_at": 0},
            },
        ),
        _case(
            "date_range_on_entry",
            [(1, "a", 3), (1, "b", 6), (2, "a", 7), (2, "b", 20), (3, "a", 10), (3, "b", 11)],
            _spec(
                ["a", "b"], start=T0 + pd.Timedelta(seconds=5), end=T0 + pd.Timedelta(seconds=10)
            ),
            {2: 2},
            {2: {"step_2_at": 20}},
        ),
    ]


@pytest.fixture(params=_hand_cases())
def hand_case(request):
    """One hand-checked case: (events frame, spec, expected reached, expected values)."""
    c = request.param
    df = events_df(c["rows"], props=c["props"])
    return df, c["spec"](), c["reached"], c["values"]


def check_hand_case(out: pd.DataFrame, spec, reached: dict, values: dict) -> None:
    """Compare a per-user output with a hand-checked expectation."""
    by_key = {}
    for row in normalise(out):
        key = (row["user_id"], row["attempt"]) if "attempt" in row else row["user_id"]
        by_key[key] = row
    assert {k: v["steps_reached"] for k, v in by_key.items()} == reached
    t0 = _norm_value(T0)
    for key, cols in values.items():
        for col, want in cols.items():
            got = by_key[key][col]
            if want is not None and col.endswith("_at"):
                want = t0 + int(want * 1_000_000)
            assert got == want, f"{key} {col}: got {got}, want {want}"


class _Helpers:
    """Namespace of the helpers above, handed to tests by the ``fx`` fixture (the test
    directories are not packages, so tests cannot import this conftest by name)."""

    T0 = T0
    DAY = DAY
    events_df = staticmethod(events_df)
    to_table = staticmethod(to_table)
    normalise = staticmethod(normalise)
    assert_same_users = staticmethod(assert_same_users)
    check_hand_case = staticmethod(check_hand_case)


@pytest.fixture(scope="session")
def fx() -> type[_Helpers]:
    """Funnel test helpers: ``fx.events_df``, ``fx.assert_same_users``, ``fx.T0`` ..."""
    return _Helpers

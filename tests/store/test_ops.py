"""Sorted-array primitives (crm_helpers.store.ops) against plain pandas on random logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_helpers.store import ops
from crm_helpers.store.arrays import from_frame

T0 = pd.Timestamp("2024-03-01")

rows_st = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from("abcd"), st.integers(0, 40)),
    min_size=0,
    max_size=40,
)


def _arrays(rows):
    df = pd.DataFrame(rows, columns=["user_id", "event", "minute"])
    df["user_id"] = df["user_id"].astype("int64")
    df["event"] = df["event"].astype(object)
    df["ts"] = (T0 + pd.to_timedelta(df["minute"].astype(float), unit="min")).astype(
        "datetime64[us]"
    )
    a = from_frame(df)
    # the same rows, sorted as the arrays are, in plain pandas
    s = pd.DataFrame(
        {
            "user": a.user,
            "event": a.event,
            "t": a.t,
        }
    )
    return a, s


@settings(max_examples=60, deadline=None)
@given(rows=rows_st, gap=st.sampled_from([0.5, 1, 3, 7.5]))
def test_sessionize_equals_pandas(rows, gap):
    a, s = _arrays(rows)
    got = ops.sessionize(a.user, a.t, gap)
    prev = s.groupby("user")["t"].shift(1)
    new = prev.isna() | ((s["t"] - prev) > round(gap * 60e6))
    assert got.tolist() == (new.cumsum() - 1).astype("int64").tolist()
    assert got.dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(rows=rows_st, code=st.integers(0, 3))
def test_first_last_equals_pandas(rows, code):
    a, s = _arrays(rows)
    fl = ops.first_last(a.user, a.event, a.t, code, a.n_users)
    hit = s[s["event"] == code].reset_index()
    first = hit.groupby("user").first()
    last = hit.groupby("user").last()
    for u in range(a.n_users):
        if u in first.index:
            assert fl.has[u]
            assert fl.first_row[u] == first.loc[u, "index"] and fl.first_t[u] == first.loc[u, "t"]
            assert fl.last_row[u] == last.loc[u, "index"] and fl.last_t[u] == last.loc[u, "t"]
        else:
            assert not fl.has[u] and fl.first_row[u] == -1 and fl.last_row[u] == -1


@settings(max_examples=60, deadline=None)
@given(rows=rows_st)
def test_event_counts_dense_and_sparse_equal_pandas(rows):
    a, s = _arrays(rows)
    n_e = len(a.event_names)
    want = (
        pd.crosstab(s["user"], s["event"])
        .reindex(index=range(a.n_users), columns=range(n_e), fill_value=0)
        .to_numpy()
    )
    dense = ops.event_counts(a.user, a.event, a.n_users, n_e)
    assert isinstance(dense, np.ndarray) and (dense == want).all()
    sparse = ops.event_counts(a.user, a.event, a.n_users, n_e, dense_limit=0)
    assert isinstance(sparse, ops.SparseCounts)
    assert (sparse.to_dense() == want).all() and (sparse.count > 0).all()


@settings(max_examples=60, deadline=None)
@given(rows=rows_st, k=st.integers(-4, 4))
def test_shift_equals_groupby_shift(rows, k):
    a, s = _arrays(rows)
    got = ops.shift(a.event, a.user, k, fill=-1)
    want = s.groupby("user")["event"].shift(-k).fillna(-1).astype("int64")
    assert got.tolist() == want.tolist()
    # by sessions as segments, on times
    sess = ops.sessionize(a.user, a.t, 2)
    got = ops.shift(a.t, sess, k, fill=-1)
    want = s.assign(sess=sess).groupby("sess")["t"].shift(-k).fillna(-1).astype("int64")
    assert got.tolist() == want.tolist()


def test_tiny_inline_cases():
    seg = np.array([0, 0, 0, 1, 1, 2])
    t = np.array([0, 60, 300, 0, 30, 5]) * 1_000_000  # seconds
    assert ops.segment_offsets(seg).tolist() == [0, 3, 5, 6]
    assert ops.segment_offsets(np.zeros(0, int)).tolist() == [0]
    # a silence of exactly the gap stays in the session; longer starts a new one
    assert ops.sessionize(seg, t, 1).tolist() == [0, 0, 1, 2, 2, 3]
    v = np.array([10, 11, 12, 20, 21, 30])
    assert ops.shift(v, seg, 1).tolist() == [11, 12, -1, 21, -1, -1]
    assert ops.shift(v, seg, -2).tolist() == [-1, -1, 10, -1, -1, -1]
    assert ops.shift(v, seg, 9).tolist() == [-1] * 6
    ev = np.array([1, 0, 1, 0, 0, 1])
    fl = ops.first_last(seg, ev, t, 1, 3)
    assert fl.first_row.tolist() == [0, -1, 5] and fl.last_row.tolist() == [2, -1, 5]
    assert fl.first_t.tolist() == [0, 0, 5_000_000] and fl.last_t.tolist() == [
        300_000_000,
        0,
        5_000_000,
    ]
    assert ops.event_counts(seg, ev, 3, 2).tolist() == [[1, 2], [2, 0], [0, 1]]
    with pytest.raises(ValueError, match="positive"):
        ops.sessionize(seg, t, 0)

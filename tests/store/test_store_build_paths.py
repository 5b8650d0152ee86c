"""The store's in-memory build path equals its DuckDB path and the plain reference.

* :mod:`crm_helpers.store.memsort` piece by piece against independent references: numpy's
  ``unique``/``lexsort`` and DuckDB's own ``SELECT DISTINCT ... ORDER BY ... NULLS LAST``;
* whole stores: ``build_store(in_memory_rows=huge)`` (numpy) and ``in_memory_rows=0``
  (DuckDB) write the same files (same rows, same order, same types) and both read back as
  :func:`~crm_helpers.store.arrays.from_frame` of the cleaned events gives them, on the
  synthetic world, foreign shapes (string ids, tz-aware timestamps, ties, NULLs, exact
  duplicates dropped by validation) and hypothesis logs.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_helpers.data import load
from crm_helpers.store import load_arrays
from crm_helpers.store.build import build_store, property_columns
from crm_helpers.store.memsort import code_sorted, resolve_ties, sort_order
from tests.store.test_store_build import _events, _write, assert_same, reference


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CRM_STORE_DIR", raising=False)


# --- the pieces ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-(2**40), 2**40), max_size=60)
    | st.lists(st.integers(-5, 40), max_size=60)
    | st.lists(st.text(max_size=4), max_size=60)
)
def test_code_sorted_is_the_rank_among_sorted_distinct_values(values):
    typ = pa.array(values).type if values else pa.int64()
    col = pa.chunked_array([pa.array(values[:7], typ), pa.array(values[7:], typ)], type=typ)
    codes, uniques = code_sorted(col)
    expected = sorted(set(values))
    assert uniques.to_pylist() == expected
    assert uniques.type == col.type
    assert codes.dtype == np.int32
    assert codes.tolist() == [expected.index(v) for v in values]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 70_000), st.integers(-3, 3), st.integers(0, 4)),
        max_size=80,
    ),
    st.booleans(),
)
def test_sort_order_is_a_stable_sort_by_user_time_event(rows, wide_time):
    user = np.array([r[0] for r in rows], dtype=np.int32)
    t = np.array([r[1] for r in rows], dtype=np.int64)
    if wide_time and len(t):  # a time range whose int64 key would overflow: lexsort
        t = t * (2**61)
    event = np.array([r[2] for r in rows], dtype=np.int32)
    order = sort_order(user, t, event, 5)
    np.testing.assert_array_equal(order, np.lexsort((event, t, user)))  # lexsort is stable


def _distinct_sorted(tbl: pa.Table, props: list[str], dedupe: bool) -> pa.Table:
    """DuckDB's own answer: ORDER BY every column NULLS LAST (and SELECT DISTINCT)."""
    order = ", ".join(["u", "t", "e", *[f'"{p}" ASC NULLS LAST' for p in props]])
    pick = "SELECT DISTINCT *" if dedupe else "SELECT *"
    con = duckdb.connect()
    con.register("tbl", tbl)
    out = con.sql(f"SELECT * FROM ({pick} FROM tbl) ORDER BY {order}").to_arrow_table()
    return out.cast(tbl.schema)


_prop = st.one_of(st.none(), st.sampled_from([1.5, -2.0, 0.0, float("nan")]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 2),
            st.integers(0, 1),
            _prop,
            st.one_of(st.none(), st.sampled_from(["a", "b", "é", ""])),
        ),
        max_size=50,
    ),
    st.booleans(),
    st.booleans(),
)
def test_resolve_ties_matches_duckdb_order_and_distinct(rows, dedupe, with_props):
    tbl = pa.table(
        {
            "u": pa.array([r[0] for r in rows], pa.int32()),
            "t": pa.array([r[1] for r in rows], pa.int64()),
            "e": pa.array([r[2] for r in rows], pa.int32()),
            "x": pa.array([r[3] for r in rows], pa.float64()),
            "s": pa.array([r[4] for r in rows], pa.string()),
        }
    )
    props = ["x", "s"] if with_props else []
    tbl = tbl.select(["u", "t", "e", *props])
    user, t, event = (tbl.column(c).to_numpy() for c in ("u", "t", "e"))
    order = sort_order(user, t, event, 2)
    order = resolve_ties(order, user, t, event, tbl.select(props), dedupe)
    got = tbl.take(pa.array(order, pa.int64())).to_pandas()
    want = _distinct_sorted(tbl, props, dedupe).to_pandas()
    # without properties, tied rows keep the input order; the reference sorts them alike
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


# --- whole stores: both paths and the reference -------------------------------------------


def _same_store(data, tmp_path) -> None:
    mem = build_store(data, tmp_path / "mem", in_memory_rows=10**12, rows_per_part=150)
    ddb = build_store(data, tmp_path / "ddb", in_memory_rows=0, rows_per_part=150)
    assert mem["build_path"] == "memory" and ddb["build_path"] == "duckdb"
    skip = {"built_at", "build_seconds", "build_steps", "build_path", "files", "users_file"}
    assert {k: v for k, v in mem.items() if k not in skip} == {
        k: v for k, v in ddb.items() if k not in skip
    }
    strip = [{k: v for k, v in f.items() if k != "bytes"} for f in mem["files"]]
    assert strip == [{k: v for k, v in f.items() if k != "bytes"} for f in ddb["files"]]
    for f in mem["files"]:
        a, b = (
            pq.read_table(tmp_path / "mem" / f["path"]),
            pq.read_table(tmp_path / "ddb" / f["path"]),
        )
        assert a.schema.equals(b.schema), f["path"]
        assert a.equals(b), f["path"]
    ua, ub = (
        pq.read_table(tmp_path / "mem" / "users.parquet"),
        pq.read_table(tmp_path / "ddb" / "users.parquet"),
    )
    assert ua.column("user_id").to_pylist() == ub.column("user_id").to_pylist()
    assert ua.column("n").to_pylist() == ub.column("n").to_pylist()
    props = property_columns(data.events)
    ref = reference(data)
    assert_same(load_arrays(tmp_path / "mem", props), ref)
    assert_same(load_arrays(tmp_path / "ddb", props), ref)


def test_both_paths_on_the_synthetic_world(small_world, tmp_path):
    _same_store(load(small_world), tmp_path)


def test_exact_duplicates_and_nulls_dropped_alike(tmp_path):
    df = _events(n=500, seed=21)
    dup = pd.concat([df, df.iloc[::7], df.iloc[::11]], ignore_index=True)
    dup.loc[[3, 500], "user_id"] = None  # anonymous events (validation keeps them): left out
    data = load(_write(tmp_path / "dups", dup))
    assert data.quality.cleaning["events"].get("distinct")  # the rule the build rewrites
    _same_store(data, tmp_path)
    n = build_store(data, tmp_path / "again")["n_events"]
    assert n == len(dup.dropna(subset=["user_id"]).drop_duplicates()) < len(dup) - 2


def test_tz_aware_and_integer_ids(tmp_path):
    df = _events(n=400, seed=22, ids="int")
    table = pa.table(
        {
            "user_id": df["user_id"],
            "event": df["event"],
            "ts": pa.array(
                df["ts"].dt.tz_localize("America/New_York"),
                pa.timestamp("us", tz="America/New_York"),
            ),
            "amount": df["amount"],
        }
    )
    _same_store(load(_write(tmp_path / "tz", table)), tmp_path)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["u1", "u2", "U3", "ü4", "u10"]),
            st.sampled_from(["view", "buy", "Cart", "é"]),
            st.integers(0, 4),
            st.one_of(st.none(), st.sampled_from(["x", "y"])),
            st.one_of(st.none(), st.integers(0, 2)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_hypothesis_logs_both_paths_equal_the_reference(tmp_path_factory, rows):
    tmp = tmp_path_factory.mktemp("hyp")
    # one row with a quantity: an all-NULL integer column reads back as float NaN from the
    # store but as None from the reference (a known difference of read.py, not of the build)
    rows = [("u1", "view", 0, None, 1), *rows]
    df = pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "event": [r[1] for r in rows],
            "ts": pd.Timestamp("2024-05-01") + pd.to_timedelta([r[2] for r in rows], unit="s"),
            "channel": pd.array([r[3] for r in rows], dtype=object),
            "qty": pd.array([r[4] for r in rows], dtype="Int64"),
        }
    )
    _same_store(load(_write(tmp / "d", df)), tmp)

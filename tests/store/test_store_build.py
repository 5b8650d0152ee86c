"""The store read back equals the plain pandas builder (from_frame) on the synthetic world and
on foreign shapes; parts hold whole users; the store is None where it does not apply.

The reference is ``from_frame`` of ``data.events.to_pandas()`` with the rows first sorted by
the property columns (nulls last, stable): the store orders rows tied on (user, t, event) by
their properties, and from_frame keeps the input order within such ties.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm_helpers.data import load
from crm_helpers.store import (
    ensure_store,
    event_arrays,
    from_frame,
    load_arrays,
    supports_store,
)
from crm_helpers.store.build import build_store, property_columns


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CRM_STORE_DIR", raising=False)


def reference(data, columns=None):
    df = data.events.to_pandas()
    cols = property_columns(data.events) if columns is None else list(columns)
    props = property_columns(data.events)
    if props:
        df = df.sort_values(props, na_position="last", kind="stable")
    return from_frame(df, cols)


def assert_same(a, b):
    for f in ("user", "t", "event", "offsets"):
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype, f
        np.testing.assert_array_equal(x, y, err_msg=f)
    assert list(a.user_ids) == list(b.user_ids)
    assert a.event_names == b.event_names
    assert sorted(a.columns) == sorted(b.columns)
    for c in a.columns:
        x, y = a.columns[c], b.columns[c]
        if x.dtype == object or y.dtype == object:
            assert list(x) == list(y), c
        else:
            assert x.dtype == y.dtype, c
            np.testing.assert_array_equal(x, y, err_msg=c)


def test_synthetic_world_equals_from_frame(small_world):
    data = load(small_world)
    a = event_arrays(data, property_columns(data.events))
    assert a is not None
    a.check()
    ref = reference(data)
    assert a.n_events == ref.n_events > 10_000
    assert_same(a, ref)
    # without columns: the core arrays only
    core = event_arrays(data)
    assert core.columns == {}
    np.testing.assert_array_equal(core.t, ref.t)


def test_parts_hold_whole_users_and_one_row_group(small_world, tmp_path):
    data = load(small_world)
    m = build_store(data, tmp_path / "s", rows_per_part=5_000)
    assert len(m["files"]) > 3
    firsts = [f["first_user"] for f in m["files"]]
    lasts = [f["last_user"] for f in m["files"]]
    assert firsts[0] == 0 and lasts[-1] == m["n_users"] - 1
    assert all(firsts[i + 1] == lasts[i] + 1 for i in range(len(firsts) - 1))
    start = 0
    for f in m["files"]:
        # a part starts at the first user whose first row is at or beyond a multiple of 5,000
        assert int(Path(f["path"]).stem.split("-")[1]) == start // 5_000
        start += f["rows"]
        meta = pq.read_metadata(tmp_path / "s" / f["path"])
        assert meta.num_row_groups == 1 and meta.num_rows == f["rows"]
        user = pq.read_table(tmp_path / "s" / f["path"], columns=["user"])["user"].to_numpy()
        assert user.min() == f["first_user"] and user.max() == f["last_user"]
    assert_same(load_arrays(tmp_path / "s", property_columns(data.events)), reference(data))


# --- foreign shapes ---------------------------------------------------------------------------


def _write(d: Path, frame: pd.DataFrame | pa.Table, name="events.parquet") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(frame, pa.Table):
        pq.write_table(frame, d / name)
    elif name.endswith(".csv"):
        frame.to_csv(d / name, index=False)
    else:
        frame.to_parquet(d / name, index=False)
    return d


def _events(n=400, seed=3, ids="str"):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 37, n)
    base = pd.Timestamp("2024-03-04 08:00")
    # whole seconds, so that some rows of a user tie on (t, event) with other properties
    ts = base + pd.to_timedelta(rng.integers(0, 600, n), unit="s")
    uid = [f"u{u:03d}" for u in users] if ids == "str" else users.astype(np.int64) * 1000 + 7
    return pd.DataFrame(
        {
            "user_id": uid,
            "event": rng.choice(["pv", "cart", "buy", "Zoom", "é-mail"], n),
            "ts": ts,
            "amount": np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 9, n).astype(float)),
            "page": pd.array(
                np.where(rng.random(n) < 0.2, None, rng.choice(["a", "b", "c"], n)), dtype=object
            ),
        }
    )


def test_string_ids_with_null_properties_and_ties(tmp_path):
    df = _events(ids="str")
    d = _write(tmp_path / "shape", df)
    data = load(d)
    a = event_arrays(data, ["amount", "page"])
    ref = reference(data)
    assert a.user_ids.dtype == object and a.user_ids[0] == "u000"
    assert any(v is None for v in a.columns["page"])
    assert np.isnan(a.columns["amount"]).any()
    # ties on (user, t, event) exist, so the tie order is tested
    key = pd.DataFrame({"u": a.user, "t": a.t, "e": a.event})
    assert key.duplicated().any()
    assert_same(a, ref)


def test_integer_ids_and_a_subset_of_columns(tmp_path):
    df = _events(ids="int", seed=5)
    d = _write(tmp_path / "ints", df)
    data = load(d)
    a = event_arrays(data, ["page"])
    assert a.user_ids.dtype == np.int64
    assert list(a.columns) == ["page"]
    assert_same(a, reference(data, ["page"]))
    with pytest.raises(KeyError, match="no column"):
        event_arrays(data, ["nope"])


def test_tz_aware_parquet_timestamps_are_utc(tmp_path):
    df = _events(seed=9)
    paris = df["ts"].dt.tz_localize("Europe/Paris")
    table = pa.table(
        {
            "user_id": df["user_id"],
            "event": df["event"],
            "ts": pa.array(paris, type=pa.timestamp("us", tz="Europe/Paris")),
        }
    )
    d = _write(tmp_path / "tz", table)
    data = load(d)
    a = event_arrays(data)
    assert_same(a, reference(data))
    # 08:00 Paris in March (UTC+1) is 07:00 UTC
    expected = (paris.dt.tz_convert("UTC").dt.tz_localize(None) - pd.Timestamp(0)) // pd.Timedelta(
        "1us"
    )
    assert a.t.min() == expected.min() and a.t.max() == expected.max()


def test_csv_text_ids_and_offset_timestamps(tmp_path):
    df = _events(seed=13)
    df["ts"] = df["ts"].dt.strftime("%Y-%m-%d %H:%M:%S") + "+02:00"
    d = _write(tmp_path / "csv", df[["user_id", "event", "ts", "page"]], "events.csv")
    data = load(d)
    a = event_arrays(data, ["page"])
    assert_same(a, reference(data))
    first = pd.Timestamp(df["ts"].min()).tz_convert("UTC").tz_localize(None)
    assert a.t.min() == (first - pd.Timestamp(0)) // pd.Timedelta("1us")


def test_no_rows_and_one_user(tmp_path):
    one = pd.DataFrame(
        {"user_id": ["x", "x"], "event": ["b", "a"], "ts": pd.to_datetime(["2024-01-02"] * 2)}
    )
    data = load(_write(tmp_path / "one", one))
    a = event_arrays(data)
    assert a.offsets.tolist() == [0, 2] and a.event.tolist() == [0, 1]
    assert_same(a, reference(data))


def test_not_applicable_off_the_embedded_files(tmp_path):
    d = _write(tmp_path / "d", _events(seed=1))
    data = load(d)
    assert supports_store(data)

    class Elsewhere:  # what a warehouse or a Spark load looks like to the store
        engine, location, data_dir, files, tables = "pyspark", None, d, data.files, data.tables

    assert event_arrays(Elsewhere()) is None
    Elsewhere.engine, Elsewhere.location = "duckdb", "duckdb:///w.db"
    assert event_arrays(Elsewhere()) is None
    with pytest.raises(ValueError):
        ensure_store(Elsewhere())


@pytest.mark.spark
def test_none_on_spark(tmp_path, spark_con):
    d = _write(tmp_path / "d", _events(seed=2))
    data = load(d, engine=spark_con)
    assert event_arrays(data) is None


def test_manifest_records_counts_codes_and_columns(tmp_path):
    d = _write(tmp_path / "m", _events(seed=4))
    data = load(d)
    p = ensure_store(data)
    m = json.loads((p.path / "manifest.json").read_text())
    ref = reference(data)
    assert m["n_events"] == ref.n_events and m["n_users"] == ref.n_users
    assert tuple(m["event_names"]) == ref.event_names
    assert list(m["columns"]) == ["amount", "page"]
    assert m["data_dir"] == str(d.resolve())
    assert m["source"]["events_files"][0]["name"] == "events.parquet"
    assert isinstance(dt.datetime.fromisoformat(m["built_at"].replace("Z", "+00:00")), dt.datetime)


def test_core_arrays_of_one_part_are_zero_copy_views(tmp_path):
    d = _write(tmp_path / "zc", _events(seed=8))
    a = event_arrays(load(d))
    for name in ("user", "t", "event"):
        arr = getattr(a, name)
        assert not arr.flags.writeable and not arr.flags.owndata, name  # Arrow's buffer


def test_arrays_are_read_once_per_store_version_and_columns_added(tmp_path):
    d = _write(tmp_path / "cache_me", _events(seed=12))
    data = load(d)
    a = event_arrays(data, ["page"])
    b = event_arrays(data, ["amount", "page"])
    assert b.t is a.t and b.columns["page"] is a.columns["page"]  # not read again
    assert list(b.columns) == ["amount", "page"]
    assert list(event_arrays(data).columns) == []
    assert_same(b, reference(data, ["amount", "page"]))
    _write(d, _events(n=300, seed=13))  # new data: a new store, read afresh
    c = event_arrays(load(d), ["page"])
    assert c.t is not a.t and c.n_events == reference(load(d)).n_events

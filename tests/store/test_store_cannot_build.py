"""A store the machine cannot build (memory, disk) sends the analyses to the Ibis path.

Found by the scale curve (benchmarks/README.md): at 50M events the store's build ran out of
DuckDB's default memory limit, and the funnel report failed with it although its Ibis path
(which spills) computes the funnel. Now the build's out-of-memory or I/O failure is a warning
and the analyses compute as before the store existed; other errors are still raised.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import crm_helpers.store.prepare as prep
from crm_helpers import store
from crm_helpers.data import load
from crm_helpers.funnels import analysis, funnel_table
from crm_helpers.funnels.core import FunnelSpec
from crm_helpers.segments import clusters, kernel
from crm_helpers.store.paths import paths_used, reset_paths
from tests.engine_errors import real_out_of_memory


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CRM_STORE_DIR", raising=False)


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(3)
    n = 3_000
    d = tmp_path / "data"
    d.mkdir()
    pd.DataFrame(
        {
            "user_id": rng.integers(0, 300, n),
            "event": rng.choice(["view", "cart", "purchase"], n, p=[0.6, 0.25, 0.15]),
            "ts": pd.Timestamp("2024-05-01") + pd.to_timedelta(rng.integers(0, 30 * 86400, n), "s"),
        }
    ).to_parquet(d / "events.parquet", index=False)
    return load(d)


def _out_of_memory(*args, **kwargs):
    raise duckdb.OutOfMemoryException(
        "Out of Memory Error: failed to allocate data of size 16.0 MiB"
    )


def test_out_of_memory_in_the_build_gives_the_ibis_path_and_the_same_funnel(data, monkeypatch):
    spec = FunnelSpec(steps=("view", "cart", "purchase"), conversion_window_days=7)
    expected = funnel_table(data, spec)  # the Ibis path
    monkeypatch.setattr(prep, "build_store", _out_of_memory)
    reset_paths()
    with pytest.warns(RuntimeWarning, match="could not be built .*OutOfMemoryException.*Ibis"):
        arrays = analysis.prepared_arrays(data, spec)
    assert arrays is None
    got = funnel_table(data, spec, arrays=arrays)
    pd.testing.assert_frame_equal(got, expected)
    assert paths_used() == {"funnel": ["ibis"]}


def test_the_segment_features_too(data, monkeypatch):
    monkeypatch.setattr(prep, "build_store", _out_of_memory)
    with pytest.warns(RuntimeWarning, match="could not be built"):
        assert kernel.prepared_inputs(data) is None
    as_of = pd.Timestamp("2024-06-01")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no second store warning
        table = clusters.feature_table(as_of=as_of, events=data.events, prepared=None)
    assert len(table) == data.events.user_id.nunique().to_pyarrow().as_py()


def test_a_real_out_of_memory_of_duckdb_is_one_it_catches(data, monkeypatch):
    exc = real_out_of_memory()  # DuckDB's own exception, as a build at 50M events raised it

    def build(*args, **kwargs):
        raise exc

    real_build = prep.build_store
    monkeypatch.setattr(prep, "build_store", build)
    with pytest.warns(RuntimeWarning, match="Out of Memory Error"):
        assert store.try_ensure_store(data) is None
    monkeypatch.setattr(prep, "build_store", real_build)
    assert store.try_ensure_store(data) is not None  # and builds once the memory is there


def test_other_errors_are_raised(data, monkeypatch):
    def bug(*args, **kwargs):
        raise ValueError("a bug in the build")

    monkeypatch.setattr(prep, "build_store", bug)
    with pytest.raises(ValueError, match="a bug in the build"):
        store.event_arrays(data)


def test_nothing_is_left_in_the_cache_by_a_failed_build(data, monkeypatch, tmp_path):
    monkeypatch.setattr(prep, "build_store", _out_of_memory)
    with pytest.warns(RuntimeWarning):
        store.try_ensure_store(data)
    cache = Path(tmp_path / "cache")
    leftovers = [p for p in cache.rglob("*") if p.is_file() and p.suffix == ".parquet"]
    assert leftovers == []

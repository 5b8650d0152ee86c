"""The parent's side of a run: a fresh store is found without loading the data; a changed
file or mapping loads and rebuilds; stores of vanished data directories are collected."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import crm_helpers.data as data_pkg
from crm_helpers import config
from crm_helpers.report.prepared import prepare_store
from crm_helpers.store import collect_garbage, prepare_data_dir


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CRM_STORE_DIR", raising=False)
    monkeypatch.delenv("CRM_PREPARE_STORE", raising=False)


def _data(d: Path, n=200, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "user_id": rng.integers(0, 15, n),
            "event": rng.choice(["a", "b"], n),
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**5, n), "s"),
        }
    ).to_parquet(d / "events.parquet", index=False)
    return d


def test_a_fresh_store_is_found_without_loading_the_data(tmp_path, monkeypatch):
    d = _data(tmp_path / "d")
    first = prepare_data_dir(d)
    assert first.status == "built"

    def no_load(*a, **k):
        raise AssertionError("the data were loaded")

    monkeypatch.setattr(data_pkg, "load", no_load)
    again = prepare_data_dir(d)
    assert again.status == "fresh" and again.manifest_sha256 == first.manifest_sha256
    _data(d, n=150, seed=1)  # changed: must load (and here, fails loudly)
    with pytest.raises(AssertionError, match="loaded"):
        prepare_data_dir(d)
    monkeypatch.undo()
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path / "cache"))
    assert prepare_data_dir(d).manifest["n_events"] == 150


def test_stores_of_vanished_data_are_collected(tmp_path):
    keep, gone = _data(tmp_path / "keep"), _data(tmp_path / "gone", seed=2)
    prepare_data_dir(keep)
    prepare_data_dir(gone)
    shutil.rmtree(gone)
    removed = collect_garbage()
    assert removed == [config.store_dir(gone)]
    assert config.store_dir(keep).is_dir() and not config.store_dir(gone).exists()


def test_prepare_store_records_and_can_be_switched_off(tmp_path, monkeypatch):
    d = _data(tmp_path / "d")
    rec = prepare_store(d, "duckdb")
    assert rec["status"] == "built" and rec["data_dir"] == str(d.resolve())
    assert prepare_store(d, "spark") is None
    failed = prepare_store(tmp_path / "nowhere", None)
    assert failed["status"] == "failed" and "DataContractError" in failed["error"]
    monkeypatch.setenv("CRM_PREPARE_STORE", "0")
    assert prepare_store(d, "duckdb") is None

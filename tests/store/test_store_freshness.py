"""Freshness of the store: reused while the source is unchanged, rebuilt when the data change
or the store is stale or corrupt (never used), built once by two processes at the same time,
atomic when a build fails, never written inside the data directory; the cache's location."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_helpers import config
from crm_helpers.data import load
from crm_helpers.store import StoreInsideData, ensure_store, event_arrays, store_path
from crm_helpers.store import build as build_mod
from crm_helpers.store.manifest import FORMAT_VERSION

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CRM_STORE_DIR", raising=False)


def _frame(n=300, seed=0, users=20):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, users, n),
            "event": rng.choice(["view", "cart", "buy"], n),
            "ts": pd.Timestamp("2024-05-01") + pd.to_timedelta(rng.integers(0, 10**6, n), "s"),
            "platform": rng.choice(["ios", "web"], n),
        }
    )


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    _frame().to_parquet(d / "events.parquet", index=False)
    return d


def _snapshot(d: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
    }


def test_reused_while_fresh_rebuilt_when_the_data_change(data_dir):
    first = ensure_store(load(data_dir))
    assert first.status == "built" and first.reason == "missing"
    again = ensure_store(load(data_dir))
    assert again.status == "fresh" and again.manifest_sha256 == first.manifest_sha256
    # altered content: fewer rows
    _frame(n=250, seed=1).to_parquet(data_dir / "events.parquet", index=False)
    changed = ensure_store(load(data_dir))
    assert changed.status == "built" and changed.reason == "the source data changed"
    assert changed.manifest["n_events"] == 250
    assert event_arrays(load(data_dir)).n_events == 250
    # touched only (new mtime, same bytes): rebuilt too (the key is stat-based)
    st = (data_dir / "events.parquet").stat()
    os.utime(data_dir / "events.parquet", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert ensure_store(load(data_dir)).status == "built"
    assert ensure_store(load(data_dir)).status == "fresh"


def test_same_size_rewrite_with_the_mtime_restored_is_seen(tmp_path):
    d = tmp_path / "csv"
    d.mkdir()
    p = d / "events.csv"
    _frame(n=200).to_csv(p, index=False)
    ensure_store(load(d))
    st = p.stat()
    text = p.read_text()
    p.write_text(text.replace(",view,", ",veiw,", 1))  # same size, other content
    assert p.stat().st_size == st.st_size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = ensure_store(load(d))
    assert again.status == "built" and "veiw" in again.manifest["event_names"]


def test_a_mapping_change_rebuilds(data_dir):
    ensure_store(load(data_dir))
    (data_dir / "schema.yaml").write_text("columns:\n  events:\n    user_id: platform\n")
    # platform becomes the user id: other users, the store must follow
    pd.read_parquet(data_dir / "events.parquet").drop(columns="user_id").to_parquet(
        data_dir / "events.parquet", index=False
    )
    p = ensure_store(load(data_dir))
    assert p.status == "built" and p.manifest["n_users"] == 2


def _corrupt_manifest_missing(store: Path) -> None:
    (store / "manifest.json").unlink()


def _corrupt_manifest_garbled(store: Path) -> None:
    (store / "manifest.json").write_text('{"format_version": 1, "source_ha')


def _corrupt_truncated_part(store: Path) -> None:
    part = store / "events" / "part-00000.parquet"
    part.write_bytes(part.read_bytes()[:-100])


def _corrupt_truncated_same_size(store: Path) -> None:  # footer zeroed, size kept
    part = store / "events" / "part-00000.parquet"
    b = bytearray(part.read_bytes())
    b[-200:] = bytes(200)
    part.write_bytes(bytes(b))


def _corrupt_row_count(store: Path) -> None:
    m = json.loads((store / "manifest.json").read_text())
    m["files"][0]["rows"] += 1
    m["n_events"] += 1
    (store / "manifest.json").write_text(json.dumps(m))


def _corrupt_format_version(store: Path) -> None:
    m = json.loads((store / "manifest.json").read_text())
    m["format_version"] = FORMAT_VERSION + 1
    (store / "manifest.json").write_text(json.dumps(m))


def _corrupt_users_file_missing(store: Path) -> None:
    (store / "users.parquet").unlink()


@pytest.mark.parametrize(
    "corrupt",
    [
        _corrupt_manifest_missing,
        _corrupt_manifest_garbled,
        _corrupt_truncated_part,
        _corrupt_truncated_same_size,
        _corrupt_row_count,
        _corrupt_format_version,
        _corrupt_users_file_missing,
    ],
)
def test_a_corrupt_store_is_rebuilt_not_used(data_dir, corrupt):
    data = load(data_dir)
    good = event_arrays(data, ["platform"])
    store = ensure_store(data).path
    corrupt(store)
    again = ensure_store(data)
    assert again.status == "built" and again.reason.startswith("corrupt")
    a = event_arrays(data, ["platform"])
    np.testing.assert_array_equal(a.t, good.t)
    assert list(a.columns["platform"]) == list(good.columns["platform"])


def test_a_failed_build_leaves_the_old_store_and_no_temporary(data_dir, monkeypatch):
    first = ensure_store(load(data_dir))
    _frame(n=200, seed=2).to_parquet(data_dir / "events.parquet", index=False)

    def boom(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build_mod, "_write_part", boom)  # both build paths write through it
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_store(load(data_dir))
    siblings = sorted(p.name for p in first.path.parent.iterdir())
    assert siblings == [first.path.name, f"{first.path.name}.lock"]
    # the old store is intact (stale for the new data, so not used, but not half-written)
    assert json.loads((first.path / "manifest.json").read_text())["n_events"] == 300
    monkeypatch.undo()
    monkeypatch.setenv("CRM_CACHE_DIR", str(first.path.parent.parent))
    assert ensure_store(load(data_dir)).manifest["n_events"] == 200


def test_never_writes_inside_the_data_directory(data_dir, monkeypatch):
    before = _snapshot(data_dir)
    p = ensure_store(load(data_dir))
    assert data_dir.resolve() not in p.path.resolve().parents
    event_arrays(load(data_dir))
    assert _snapshot(data_dir) == before
    monkeypatch.setenv("CRM_CACHE_DIR", str(data_dir / "cache"))
    with pytest.raises(StoreInsideData, match="inside the data directory"):
        ensure_store(load(data_dir))
    assert _snapshot(data_dir) == before


_CHILD = """
import json, sys
from crm_helpers.data import load
from crm_helpers.store import ensure_store, load_arrays
data = load(sys.argv[1])
p = ensure_store(data)
a = load_arrays(p.path, ["platform"])
print(json.dumps({"status": p.status, "sha": p.manifest_sha256, "n": a.n_events,
                  "t": int(a.t.sum())}))
"""


def test_two_processes_build_once_and_read_the_same_store(tmp_path):
    d = tmp_path / "big"
    d.mkdir()
    _frame(n=300_000, seed=4, users=5_000).to_parquet(d / "events.parquet", index=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CRM_CACHE_DIR": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(d)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o["status"] for o in outs) == ["built", "fresh"]
    # (cleaning drops the few exact duplicate rows of the random log)
    assert outs[0]["sha"] == outs[1]["sha"] and outs[0]["n"] == outs[1]["n"] > 299_000
    assert outs[0]["t"] == outs[1]["t"]


def test_cache_root_and_store_dir(tmp_path):
    env = {"CRM_CACHE_DIR": str(tmp_path / "c")}
    assert config.cache_root(env) == (tmp_path / "c").resolve()
    assert config.cache_root({}, root=ROOT) == ROOT / ".cache"
    site = tmp_path / "site-packages"
    site.mkdir()
    assert (
        config.cache_root({"XDG_CACHE_HOME": str(tmp_path / "x")}, root=site)
        == (tmp_path / "x" / "crm-workbench").resolve()
    )
    a, b = tmp_path / "one" / "data", tmp_path / "two" / "data"
    assert config.store_dir(a, env) != config.store_dir(b, env)
    assert config.store_dir(a, env).parent == (tmp_path / "c" / "stores").resolve()
    assert config.store_dir(a, env) == config.store_dir(
        tmp_path / "one" / ".." / "one" / "data", env
    )


def test_the_store_env_var_is_used_only_for_its_own_data(data_dir, tmp_path, monkeypatch):
    p = ensure_store(load(data_dir), tmp_path / "elsewhere" / "store")
    monkeypatch.setenv("CRM_STORE_DIR", str(p.path))
    assert store_path(data_dir) == p.path
    other = tmp_path / "other"
    other.mkdir()
    assert store_path(other) == config.store_dir(other)


def test_a_directory_of_parts_is_keyed_by_each_part(tmp_path):
    d = tmp_path / "parts"
    (d / "events").mkdir(parents=True)
    df = _frame(n=400, seed=6)
    df.iloc[:200].to_parquet(d / "events" / "a.parquet", index=False)
    df.iloc[200:].to_parquet(d / "events" / "b.parquet", index=False)
    p = ensure_store(load(d))
    names = [f["name"] for f in p.manifest["source"]["events_files"]]
    assert names == ["a.parquet", "b.parquet"]
    assert p.manifest["n_events"] == len(load(d).events.to_pandas())
    df.iloc[200:350].to_parquet(d / "events" / "b.parquet", index=False)
    again = ensure_store(load(d))
    assert again.status == "built" and again.manifest["n_events"] < p.manifest["n_events"]

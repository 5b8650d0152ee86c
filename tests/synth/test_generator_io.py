"""The generator's speed work changes no row: a fingerprint of main's rows, and the threads.

``generate`` builds each chunk's events table on a second thread and keeps event codes in
narrow dtypes; ``write_world`` / ``generate_to`` write tables (and, streamed, the previous
chunk) on background threads. None of it may change a row, and errors in a thread must
reach the caller.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import crm_helpers.synth.io as synth_io
from crm_helpers.synth import SynthConfig, generate, generate_to, write_world
from crm_helpers.synth.browse import _event_dtypes
from crm_helpers.synth.tables import _strings

#: sha256 (first 16 hex) of ``df.to_csv(index=False)`` of every table of
#: ``SynthConfig(n_users=2_000, seed=13, chunk_size=700, dirt=True)``, first recorded with
#: main's generator before the speed work (2026-11-27, b189dd9); re-recorded deliberately for
#: issue #22 (fatigue, a push series, per-channel best send hours, the promo_email_holdout
#: experiment: new messages, assignments, and the events/orders they cause; users unchanged).
#: Update only with an intended change of the generated rows, and say so in the commit.
FINGERPRINT = {
    "users": (2000, "b16616b7f88701c6"),
    "events": (60615, "2a21b46b4f679e1a"),
    "orders": (215, "db79c7cda0e50030"),
    "messages": (12177, "6aaa46add41798ec"),
    "assignments": (2299, "27841d0d8e4739d2"),
    "truth_users": (2000, "38cfdb4b8215f865"),
    "truth_assignments": (2323, "6bd9a39def38d673"),
}
CFG = SynthConfig(n_users=2_000, seed=13, chunk_size=700, dirt=True)


def _digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def world():
    return generate(CFG)


def test_rows_are_main_generators_rows(world):
    frames = {**world.tables(), **{f"truth_{k}": v for k, v in world.truth.items()}}
    got = {name: (len(df), _digest(df)) for name, df in frames.items()}
    assert got == FINGERPRINT


def test_streamed_files_equal_in_memory_files(world, tmp_path):
    """Threaded streaming (3 chunks, dirt) writes the same tables as write_world."""
    generate_to(CFG, tmp_path / "s")
    write_world(world, tmp_path / "m")
    for f in sorted((tmp_path / "m").rglob("*.parquet")):
        other = tmp_path / "s" / f.relative_to(tmp_path / "m")
        assert pq.read_table(other).equals(pq.read_table(f)), f.name
        assert pq.ParquetFile(other).num_row_groups == 3  # one row group per chunk


def test_error_while_generating_reaches_the_caller(tmp_path, monkeypatch):
    real = synth_io.iter_chunks

    def broken(cfg, gl):
        it = real(cfg, gl)
        yield next(it)
        raise RuntimeError("chunk 1 failed")

    monkeypatch.setattr(synth_io, "iter_chunks", broken)
    with pytest.raises(RuntimeError, match="chunk 1 failed"):
        generate_to(CFG, tmp_path / "s")
    # chunk 0 was written in full and the files were closed
    assert pq.read_table(tmp_path / "s" / "users.parquet").num_rows == 700


def test_error_in_a_writer_thread_reaches_the_caller(world, tmp_path, monkeypatch):
    real = synth_io.to_arrow

    def broken(df, name):
        if name == "messages":
            raise OSError("disk full")
        return real(df, name)

    monkeypatch.setattr(synth_io, "to_arrow", broken)
    with pytest.raises(OSError, match="disk full"):
        write_world(world, tmp_path / "m")
    with pytest.raises(OSError, match="disk full"):
        generate_to(CFG, tmp_path / "s")


def test_narrow_event_codes():
    assert _event_dtypes(10, 10)["key"] is np.int32
    assert _event_dtypes(10, 2**31)["key"] is np.int64
    assert _event_dtypes(2**31, 10)["uidx"] is np.int64
    assert _event_dtypes(10, 10)["event"] is np.int8
    for dtype in (np.int8, np.int32, np.int64):
        s = _strings(np.array([1, -1, 0], dtype=dtype), ("a", "b"))
        assert s.dtype == "str" and s.isna().tolist() == [False, True, False]
        assert s.tolist()[::2] == ["b", "a"]

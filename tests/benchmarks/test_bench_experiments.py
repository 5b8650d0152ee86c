"""Smoke test of benchmarks/bench_experiments.py: it runs at a tiny size and the helper's
sufficient statistics equal the hand-written DuckDB SQL's."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_experiments  # noqa: E402


def test_bench_experiments_runs_and_agrees(tmp_path, capsys):
    assert (
        bench_experiments.main(
            ["--users", "3000", "--events-per-user", "4", "--data", str(tmp_path)]
        )
        == 0
    )
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("| helper") or ln.startswith("| sql")]
    assert len(rows) == 2 and all(r.rstrip(" |").endswith("True") for r in rows)


def test_generation_is_streamed_in_parts_and_cached(tmp_path):
    import pyarrow.parquet as pq

    out = bench_experiments.generate(tmp_path / "g", 250, 3, chunk=100)
    for name in ("assignments", "orders", "events"):
        assert len(list((out / name).glob("*.parquet"))) == 3  # 100 + 100 + 50 users
    users = pq.read_table(out / "assignments").column("user_id").to_pylist()
    assert sorted(users) == list(range(250))
    assert set(pq.read_table(out / "events").column("event").to_pylist()) <= set(
        bench_experiments.EVENTS
    )
    first = bench_experiments.ensure_data(200, 2, root=tmp_path)
    assert first.name == "experiments_u200_e2_s1" and (first / ".complete").exists()
    stamp = (first / "events" / "part-00000.parquet").stat().st_mtime_ns
    assert bench_experiments.ensure_data(200, 2, root=tmp_path) == first  # reused
    assert (first / "events" / "part-00000.parquet").stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob(".experiments_*"))  # no half-written folder left

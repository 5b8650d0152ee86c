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

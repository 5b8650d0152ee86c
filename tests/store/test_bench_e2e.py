"""Smoke tests of benchmarks/bench_e2e.py: at a tiny size every implementation runs in its
worker and agrees (exit 0); a disagreeing or failed implementation fails the table (the
numbers themselves are measured by running the script, not here)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_e2e  # noqa: E402


def test_bench_e2e_runs_agrees_and_prints_its_tables(tmp_path, capsys):
    argv = ["--events", "20000", "--users", "500", "--data-dir", str(tmp_path)]
    assert bench_e2e.main(argv) == 0
    out = capsys.readouterr().out
    for label in ("helper e2e", "helper e2e validated", "helper from store", "pandas"):
        assert f"| {label} |" in out
    assert "funnel, 20,000 events" in out and "journeys, 20,000 events" in out
    assert "| NO |" not in out and "error" not in out


def _row(impl, counts, wall=1.0, cpu=1.0):
    return {
        "impl": impl,
        "load1": 0.0,
        "wall_s": wall,
        "cpu_s": cpu,
        "counts": counts,
        "peak_bytes": 1e8,
    }


def test_table_flags_disagreement_and_errors():
    rows = [_row("duckdb_sql", [3, 2]), _row("pandas", [3, 2], wall=0.5, cpu=2.0)]
    text, agree = bench_e2e.table("funnel", 10, [*rows, _row("helper e2e", [3, 1], wall=2.0)])
    assert not agree and "| NO |" in text
    assert "| helper e2e | 0.0 | 2.00 | 1.00 | 0.10 GB | 4.00x | 1.00x |" in text
    text, agree = bench_e2e.table("funnel", 10, rows)
    assert agree
    _, agree = bench_e2e.table("funnel", 10, [*rows, {"impl": "polars", "error": "x", "load1": 0}])
    assert not agree

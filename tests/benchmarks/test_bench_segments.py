"""Smoke test of benchmarks/bench_segments.py on the small world: runs, SQL and helper agree."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_segments  # noqa: E402


def test_bench_segments_runs_and_agrees(small_world, capsys):
    assert bench_segments.main(["--data", str(small_world), "--repeat", "1", "--no-features"]) == 0
    out = capsys.readouterr().out
    assert "equal: True" in out and "per 100k customers" in out and "peak RSS" in out


def test_bench_segments_feature_table_sql_equals_helper(small_world, capsys):
    assert bench_segments.main(["--data", str(small_world), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "feature table, hand-written SQL (raw files)" in out and "kernel path" in out
    assert out.count("equal: True") == 2 and "CPU" in out

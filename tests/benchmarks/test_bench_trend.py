"""Smoke test of benchmarks/bench_trend.py: it runs on a small world, both ways agree."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_trend  # noqa: E402


def test_bench_trend_runs_and_both_ways_agree(small_world, capsys):
    assert (
        bench_trend.main(["--data", str(small_world), "--repeat", "1", "--periods", "week,month"])
        == 0
    )
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and "True" in ln]
    assert [r.split("|")[1].strip() for r in rows] == ["week", "month"]

"""Smoke test of benchmarks/bench_store.py at a tiny size: it builds, checks, reads and prints
its table (the numbers themselves are measured by running the script, not here)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_store  # noqa: E402


def test_bench_store_runs_and_prints_its_table(tmp_path, capsys):
    argv = ["--events", "20000", "--users", "500", "--data-dir", str(tmp_path)]
    assert bench_store.main(argv) == 0
    out = capsys.readouterr().out
    # the store's events: the log's 20,000 less the exact duplicates cleaning drops
    row = re.search(r"^\| (19,9\d\d|20,000) \| 500 \| .*\| 1 \| [\d.]+ GB \|$", out, re.M)
    assert row and "build store" in out and "load average" in out

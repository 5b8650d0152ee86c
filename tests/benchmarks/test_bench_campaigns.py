"""Smoke test of benchmarks/bench_campaigns.py on a tiny messages-scale world: the helper's
and the hand-written SQL's counts agree, each worker's peak memory is reported."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_campaigns  # noqa: E402
import campaign_world  # noqa: E402


def test_campaign_world_shapes(tmp_path):
    d = campaign_world.write_world(tmp_path / "w", 500, 20_000, seed=1)
    msgs = pq.read_table(d / "messages.parquet").to_pandas()
    orders = pq.read_table(d / "orders.parquet")
    assert len(msgs) == 20_000 and msgs.message_id.is_unique
    assert (
        msgs.user_id.between(0, 499).all() and pq.read_metadata(d / "users.parquet").num_rows == 500
    )
    assert orders.num_rows == 2 * (20_000 // 100)
    machine = (msgs.opened_at - msgs.sent_at).dt.total_seconds() <= 5
    assert 0.02 < machine.mean() < 0.04  # 10% of the 30% opened
    assert (msgs.clicked_at.isna() | msgs.opened_at.notna()).all()


def test_bench_campaigns_runs_and_agrees(tmp_path, capsys):
    argv = ["--users", "500", "--messages", "20000", "--root", str(tmp_path), "--repeat", "1"]
    assert bench_campaigns.main(argv) == 0
    out = capsys.readouterr().out
    assert "'helper': True" in out and "peak MB" in out and "hand-written DuckDB SQL" in out

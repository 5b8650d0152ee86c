"""Reports on absurd data (issue #23 rows 4, 5, 8).

Each run plants one absurdity into a small synthetic world (1,000 users) and runs a report
through the project's runner; its summary (``metrics.json``) must say what was left out or
cannot be trusted, with the counts of the load's findings. The run's time budget:
tests/report/test_run_time_budget.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from crm_helpers import load

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world_frames():
    from crm_helpers.synth import SynthConfig, generate

    return generate(SynthConfig(n_users=1_000, seed=5)).tables()


def _write(d: Path, frames: dict[str, pd.DataFrame]) -> Path:
    d.mkdir(parents=True)
    for name, df in frames.items():
        df.to_parquet(d / f"{name}.parquet", index=False)
    return d


def _run(notebook, data_dir, out, **parameters):
    from crm_helpers.report.run import run_notebook

    t0 = time.perf_counter()
    res = run_notebook(
        notebook, data_dir=data_dir, out_dir=out, parameters=parameters, update_index=False
    )
    assert res.ok, res.error
    return json.loads(Path(res.metrics).read_text()), time.perf_counter() - t0


def test_segments_with_an_order_of_9999_and_a_message_of_year_1(world_frames, tmp_path):
    frames = {k: v.copy() for k, v in world_frames.items()}
    frames["orders"].loc[0, "ts"] = pd.Timestamp("9999-12-31", tz="UTC")
    frames["messages"].loc[0, "sent_at"] = pd.Timestamp("0001-01-01", tz="UTC")
    data_dir = _write(tmp_path / "data", frames)
    m, seconds = _run("segment_profiling", data_dir, tmp_path / "out")
    assert seconds < 300  # the unguarded run did not finish in 10 minutes
    line = next(s for s in m["summary"] if "implausible dates" in s)
    assert "1 row(s) of orders excluded (ts in the future" in line
    assert r"1 row(s) of messages excluded (sent\_at before 1990-01-01)" in line
    assert load(data_dir).row_counts()["orders"] == len(frames["orders"]) - 1


def test_overview_of_events_from_year_1_and_1969(world_frames, tmp_path):
    frames = {k: v.copy() for k, v in world_frames.items()}
    ev = frames["events"]
    kept = ev.ts.iloc[2:]
    ev.loc[0, "ts"] = pd.Timestamp("0001-01-01", tz="UTC")
    ev.loc[1, "ts"] = pd.Timestamp("1969-12-31 23:00", tz="UTC")
    m, _ = _run("data_overview", _write(tmp_path / "data", frames), tmp_path / "out")
    days = (kept.max().normalize() - kept.min().normalize()).days + 1
    period = next(s for s in m["summary"] if s.startswith("Events run from"))
    assert period.startswith(f"Events run from {kept.min():%Y-%m-%d} to {kept.max():%Y-%m-%d}")
    assert f"({days:,} days); 2 events with implausible dates (before 1990-01-01)" in period
    assert m["metrics"]["n_quality_warnings"] >= 1


def test_funnel_with_every_event_at_one_instant_says_time_order_is_lost(world_frames, tmp_path):
    frames = {k: v.copy() for k, v in world_frames.items()}
    frames["events"]["ts"] = pd.Timestamp("2025-03-01 12:00", tz="UTC")
    data_dir = _write(tmp_path / "data", frames)
    m, _ = _run("funnel_dropoff", data_dir, tmp_path / "out")
    (line,) = [s for s in m["summary"] if "time order is lost" in s]
    (f,) = [f for f in load(data_dir).quality.findings if f.check == "tied_timestamps"]
    assert f"({f.count:,} events)" in line

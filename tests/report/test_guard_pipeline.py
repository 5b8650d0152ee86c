"""A scheduled run on an empty or truncated extract fails and keeps the last good report."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from crm_helpers.cli import main

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from crm_helpers.synth import SynthConfig, generate, write_world

    out = tmp_path_factory.mktemp("guard_world") / "good"
    write_world(generate(SynthConfig(n_users=400, seed=5)), out, fmt="parquet")
    return out


def _variant(world, tmp_path, name, keep_share):
    d = tmp_path / name
    shutil.copytree(world, d)
    events = pd.read_parquet(d / "events.parquet")
    events.head(int(len(events) * keep_share)).to_parquet(d / "events.parquet", index=False)
    return d


def test_empty_and_shrunk_extracts_fail_and_keep_the_last_good_report(world, tmp_path, capsys):
    out = tmp_path / "reports"
    args = ["run", "data_overview", "--out", str(out)]
    assert main([*args, "--data", str(world)]) == 0
    folder = out / "data_overview"
    good_html = (folder / "data_overview.html").read_text()
    good_metrics = (folder / "metrics.json").read_text()
    capsys.readouterr()

    # 1. the events table is empty: failed run, reason in run.json and on the index page
    empty = _variant(world, tmp_path, "empty", 0.0)
    assert main([*args, "--data", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "EmptyExtractError: the events table has no rows" in err
    assert "the last good report is kept" in err
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "failed" and "events table has no rows" in run["error"]
    assert run["last_success"]
    index = (out / "index.html").read_text()
    assert "events table has no rows" in index and "last good report" in index
    assert (folder / "data_overview.html").read_text() == good_html
    assert (folder / "metrics.json").read_text() == good_metrics

    # 2. the extract collapsed to 5% of the last good run: failed, both counts named
    n_good = json.loads(good_metrics)["provenance"]["data"]["fingerprint"]["rows"]["events"]
    small = _variant(world, tmp_path, "small", 0.05)
    n_small = len(pd.read_parquet(small / "events.parquet"))
    assert main([*args, "--data", str(small)]) == 1
    err = capsys.readouterr().err
    assert f"events has {n_small:,} rows, the previous good run" in err
    assert f"had {n_good:,}" in err and "--allow-shrink" in err
    assert (folder / "data_overview.html").read_text() == good_html
    # a lower share threshold accepts 5%; --allow-shrink publishes any drop
    assert main([*args, "--data", str(small), "--shrink-share", "0.01"]) == 0
    capsys.readouterr()
    assert main([*args, "--data", str(world)]) == 0  # back to the full extract: not a shrink
    assert main([*args, "--data", str(small), "--allow-shrink"]) == 0
    rows = json.loads((folder / "metrics.json").read_text())["provenance"]["data"]
    assert rows["fingerprint"]["rows"]["events"] == n_small


def test_funnel_date_range_without_events_fails(world, tmp_path, capsys):
    out = tmp_path / "reports"
    argv = ["run", "funnel_dropoff", "--data", str(world), "--out", str(out)]
    assert main([*argv, "-p", "start_date", "2031-01-01"]) == 1
    err = capsys.readouterr().err
    assert "EmptyExtractError: no events rows from 2031-01-01" in err
    run = json.loads((out / "funnel_dropoff" / "run.json").read_text())
    assert "no events rows from 2031-01-01" in run["error"]
    assert not (out / "funnel_dropoff" / "funnel_dropoff.html").exists()

"""benchmarks/bench_journeys.py: every implementation returns the same transitions and paths,
and they equal the brute-force journey reference, on a small log with ties and duplicates."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_journeys as B  # noqa: E402
import funnel_impls as F  # noqa: E402

from crm_helpers.journeys import reference as R  # noqa: E402


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    return F.ensure_data(300, 4_000, seed=3, data_dir=tmp_path_factory.mktemp("journey_bench"))


def test_all_implementations_equal_the_reference(log):
    pytest.importorskip("polars")
    df = pd.read_parquet(F.events_path(log))
    df["ts"] = df["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    ref = R.reference_journeys(df)
    trans = {k: len(v) for k, v in R.reference_transitions(ref).items()}
    paths = R.reference_paths(ref, B.ANCHOR, B.DEPTH)
    gaps = R.reference_transitions(ref)  # seconds per transition
    assert sum(trans.values()) > 3_000 and sum(paths.values()) > 100
    timed = set()
    for name, fn in B.IMPLEMENTATIONS.items():
        if name == "retentioneering":  # lives in its own venv: test_retentioneering_worker
            continue
        t, p, *more = fn(log)
        assert t == trans, name
        counts_alone = ("floor_dfg", "kernel_dfg", "floor_dfg_times", "kernel_dfg_times")
        assert p == paths or (name in counts_alone and p is None), name
        if more:  # median / p90 transition times (microseconds) against numpy.quantile
            timed.add(name)
            rows = more[0]["timings"]
            assert len(rows) == len(trans), name
            for a, b, med, p90 in rows:
                g = gaps[(a, b)]
                assert med / 1e6 == pytest.approx(np.quantile(g, 0.5), rel=1e-9, abs=1e-6)
                assert p90 / 1e6 == pytest.approx(np.quantile(g, 0.9), rel=1e-9, abs=1e-6)
    assert timed == {"kernel_times", "floor_times", "floor_dfg_times", "kernel_dfg_times"}


def test_every_kernel_row_has_a_floor_of_the_same_output():
    for kernel, floor in B.FLOOR_OF.items():
        assert kernel in B.IMPLEMENTATIONS and floor in B.IMPLEMENTATIONS
        assert kernel in B.SETUP and floor in B.SETUP  # both from the prepared arrays


def test_retentioneering_worker(log):
    """retentioneering's transition counts, run in its own venv as the benchmark runs it."""
    if not Path(B.RETE_PYTHON).exists():
        pytest.skip("no retentioneering venv (bash benchmarks/retentioneering_env.sh)")
    df = pd.read_parquet(F.events_path(log))
    df["ts"] = df["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    trans = {k: len(v) for k, v in R.reference_transitions(R.reference_journeys(df)).items()}
    res = B.run_worker("retentioneering", log, 1, 300)
    assert "error" not in res, res.get("error")
    got = {(a, b): n for a, b, n in res["result"]["transitions"]}
    assert got == trans
    assert res["result"]["paths"] is None and res["prep_s"] > 0


def test_kernel_worker_times_its_floor_alongside(log, capsys):
    """A kernel row's worker also runs its floor, round by round, and checks both agree."""
    B.worker("kernel_dfg_times", log, 2)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    res = json.loads(line[len(B.RESULT_TAG) :])
    assert len(res["times"]) == len(res["cpu"]) == 2 and res["result"]["timings"]
    assert len(res["floor"]["times"]) == len(res["floor"]["cpu"]) == 2
    assert res["floor"]["equal"] is True

"""The journey mapping notebook, run as a report with its defaults on two data shapes.

1. the small synthetic world (all tables; journeys are ``session_id`` sessions);
2. an ``events`` table with only ``user_id`` (text ids), ``event`` and ``ts`` (journeys cut
   at 30 minutes of silence, the derived gap of clicks; sections needing users step aside).

Each run's ``metrics.json`` is checked against the brute-force reference
(:mod:`crm_helpers.journeys.reference`) on the same events: every edge (counts exact,
shares and median times), node reach, the top path variants and the conformance rate.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from crm_helpers import config
from crm_helpers.journeys import JourneySpec
from crm_helpers.journeys import reference as R
from tests.shared_runs import shared_report

pytestmark = [pytest.mark.slow]

NOTEBOOK = config.NOTEBOOKS_DIR / "journey_mapping.ipynb"


def _defaults() -> dict:
    from crm_helpers.report.run import parameters_cell

    return parameters_cell(nbformat.read(str(NOTEBOOK), as_version=4))[1]


def _run(data_dir: Path, out: Path, **params) -> dict:
    from crm_helpers.report.run import run_notebook

    res = run_notebook(
        "journey_mapping", data_dir=data_dir, out_dir=out, parameters=params, update_index=False
    )
    assert res.ok, res.error
    return json.loads(Path(res.metrics).read_text())


@pytest.fixture(scope="module")
def foreign_dir(small_world, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("events_only")
    ev = pd.read_parquet(small_world / "events.parquet", columns=["user_id", "event", "ts"])
    ev["user_id"] = "u" + ev["user_id"].astype(str)
    ev.to_parquet(d / "events.parquet", index=False)
    return d


def test_parameters_cell_and_named_runs_are_valid():
    from crm_helpers.report.run import read_params_file

    p = _defaults()
    assert p["anchor_event"] == "" and p["goal_event"] == "" and p["intended_journey"] == []
    assert p["collapse_repeats"] is False and p["step_mapping"] == {}
    runs = sorted(config.PARAMS_DIR.glob("journey_mapping*.yaml"))
    assert runs, "no named runs"
    for path in runs:
        pf = read_params_file(path)
        assert pf.notebook == "journey_mapping"
        assert set(pf.parameters) <= set(p), f"{path.name}: unknown parameters"


def _check_against_reference(m: dict, events: pd.DataFrame, spec: JourneySpec) -> None:
    metrics, params = m["metrics"], m["provenance"]["parameters"]
    ref = R.reference_journeys(events, spec)
    # every edge between real steps, raw event names (no mapping, no collapsing)
    trans = {
        k: v
        for k, v in R.reference_transitions(ref).items()
        if not any(s.startswith("[") for s in k)
    }
    got = {(e["source"], e["target"]): e for e in metrics["edges"]}
    assert {k: e["count"] for k, e in got.items()} == {k: len(v) for k, v in trans.items()}
    exits: dict[str, int] = {}
    for (a, _), v in trans.items():
        exits[a] = exits.get(a, 0) + len(v)
    for k, v in trans.items():
        assert got[k]["share_of_source"] == pytest.approx(len(v) / exits[k[0]])
        assert got[k]["median_seconds"] == pytest.approx(np.quantile(v, 0.5), abs=1e-6)
    # node reach
    reach = R.reference_reach(ref)
    assert {n["step"]: n["users"] for n in metrics["nodes"]} == reach
    # top variants: counts of the recorded ones equal the reference, and they are the top
    variants = R.reference_variants(
        ref, params["variant_steps"], params["goal_event"], params["goal_window_days"]
    )
    top = metrics["top_paths"]
    assert len(top) == min(params["top_n"], len(variants))
    for v in top:
        assert variants[(tuple(v["path"]), v["truncated"])] == (v["journeys"], v["converted"])
    counts = sorted((n for n, _ in variants.values()), reverse=True)
    assert [v["journeys"] for v in top] == counts[: len(top)]
    # conformance to the (derived) intended journey
    conf = R.reference_conformance(ref, params["intended_journey"])
    n_ok = sum(n for (k, _), n in conf.items() if k == len(params["intended_journey"]))
    assert metrics["conformance_rate"] == pytest.approx(n_ok / sum(conf.values()))
    # paths between the start and end events (default: the anchor and the goal)
    pb = metrics["paths_between"]
    assert (pb["start"], pb["end"]) == (params["anchor_event"], params["goal_event"])
    way = R.reference_between(ref, pb["start"], pb["end"], params["path_depth"])
    n_start = sum(way.values())
    assert pb["journeys_with_start"] == n_start > 0
    reached = sum(n for (_, r, _), n in way.items() if r)
    assert pb["share_reaching_end"] == pytest.approx(reached / n_start)
    # converters' and drop-outs' paths after the anchor, each from its own journeys
    conv = {
        k: j
        for k, j in ref.items()
        if R.reference_converted(j, params["goal_event"], params["goal_window_days"])
    }
    gp = metrics["group_paths"]
    for g, sub in (
        ("converters", conv),
        ("drop-outs", {k: j for k, j in ref.items() if k not in conv}),
    ):
        want = R.reference_paths(sub, params["anchor_event"], params["path_depth"])
        assert bool(gp[g]) == bool(want), g  # empty exactly when no such journey has the anchor
        for e in gp[g]:
            assert want[tuple(e["path"])] == e["journeys"], (g, e)
        assert [e["journeys"] for e in gp[g]] == sorted(want.values(), reverse=True)[: len(gp[g])]
    assert m["summary"] and "derived" in m["provenance"]


def test_default_report_on_the_synthetic_world(small_world, tmp_path_factory):
    # the same run as test_report_browser's (tests/shared_runs.py: one run per session)
    res = shared_report(tmp_path_factory, "journey_mapping", small_world)
    m = json.loads(Path(res.metrics).read_text())
    p = _defaults()
    events = pd.read_parquet(
        small_world / "events.parquet", columns=["user_id", "event", "ts", "session_id"]
    )
    spec = JourneySpec(session_column="session_id", start_end=True, churn_days=p["churn_days"])
    _check_against_reference(m, events, spec)
    assert set(m["provenance"]["derived"]) == {
        "anchor_event",
        "goal_event",
        "goal_window_days",
        "intended_journey",
        "path_start_event",
        "path_end_event",
        "session_gap_minutes",
    }
    params = m["provenance"]["parameters"]
    assert params["goal_event"] == "purchase"  # the conversion, not the rarest frequent event
    assert "differential_cells" in m["metrics"] and m["metrics"]["differential_cells"]


def test_default_report_on_events_only(foreign_dir, tmp_path):
    m = _run(foreign_dir, tmp_path)
    p = _defaults()
    events = pd.read_parquet(foreign_dir / "events.parquet")
    gap = m["provenance"]["parameters"]["session_gap_minutes"]  # derived: clicks, 30 minutes
    assert gap == 30.0 and "session_gap_minutes" in m["provenance"]["derived"]
    spec = JourneySpec(session_gap_minutes=gap, start_end=True, churn_days=p["churn_days"])
    _check_against_reference(m, events, spec)


def test_report_with_step_rules(small_world, tmp_path):
    """Steps by event + property: sports product views become their own step everywhere."""
    rules = [{"step": "sports view", "event": "product_view", "where": {"category": "sports"}}]
    m = _run(small_world, tmp_path, step_rules=rules, anchor_event="sports view")
    p = _defaults()
    events = pd.read_parquet(
        small_world / "events.parquet",
        columns=["user_id", "event", "ts", "session_id", "category"],
    )
    spec = JourneySpec(
        rules=rules, session_column="session_id", start_end=True, churn_days=p["churn_days"]
    )
    _check_against_reference(m, events, spec)
    nodes = {n["step"] for n in m["metrics"]["nodes"]}
    assert {"sports view", "product_view"} <= nodes

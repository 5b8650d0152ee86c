"""The funnel drop-off notebook, run as a report on the small synthetic world.

One papermill run through the project's runner (``crm_helpers.report.run``) is shared by the
assertions: ``metrics.json`` must equal the funnel computed directly with the helpers and the
brute-force reference, be internally consistent (monotone users, rates in [0, 1], CIs around
the rates), and the exported audience must match the recorded sizes. A second run executes
the notebook under nbval (``pytest --nbval-lax``) with ``CRM_DATA_DIR`` set, as an analyst
would run it top to bottom (this one takes the interactive-widgets branch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ibis
import nbformat
import numpy as np
import pandas as pd
import pytest

from crm_helpers import config, load
from crm_helpers.funnels import funnel_table
from crm_helpers.funnels.narrative import spec_from_params
from tests.shared_runs import shared_report

pytestmark = pytest.mark.slow

NOTEBOOK = config.NOTEBOOKS_DIR / "funnel_dropoff.ipynb"
SYNTHETIC_STEPS = ["visit", "product_view", "add_to_cart", "checkout", "purchase"]


def _defaults() -> dict:
    from crm_helpers.report.run import parameters_cell

    return parameters_cell(nbformat.read(str(NOTEBOOK), as_version=4))[1]


@pytest.fixture(scope="module")
def report(small_world, tmp_path_factory):
    # the same run as test_report_browser's and test_postgres's DuckDB report
    # (tests/shared_runs.py: one run per session)
    res = shared_report(tmp_path_factory, "funnel_dropoff", small_world, export=True)
    metrics = json.loads(Path(res.metrics).read_text())
    return {"result": res, "metrics": metrics, "export": Path(res.parameters["export_dir"])}


@pytest.fixture(scope="module")
def direct(small_world):
    """The default funnel computed directly with the helpers (no notebook)."""
    p = _defaults()
    spec = spec_from_params(
        SYNTHETIC_STEPS, mode=p["mode"], conversion_window_days=p["conversion_window_days"]
    )
    data = load(small_world)
    return data, spec, funnel_table(data, spec)


def test_parameters_cell_and_named_runs_are_valid():
    from crm_helpers.report.run import read_params_file

    p = _defaults()
    # data-specific defaults are empty: derived from the data (test_derived_parameters)
    assert p["steps"] == [] and p["breakdown_property"] == "" and p["audience_step"] == 0
    assert p["driver_properties"] == [] and p["driver_prior_events"] == []
    assert p["data_dir"] == "" and p["engine"] == "duckdb"
    runs = sorted(config.PARAMS_DIR.glob("funnel_dropoff*.yaml"))
    assert runs, "no named runs"
    for path in runs:
        pf = read_params_file(path)
        assert pf.notebook == "funnel_dropoff"
        assert set(pf.parameters) <= set(p), f"{path.name}: unknown parameters"


def test_derived_parameters_on_the_synthetic_world(report, direct):
    from crm_helpers.funnels.defaults import choose_audience_step

    prov = report["metrics"]["provenance"]
    used, derived = prov["parameters"], prov["derived"]
    assert used["steps"] == SYNTHETIC_STEPS and "standard shopping" in derived["steps"]
    assert (used["breakdown_property"], used["breakdown_source"]) == ("platform", "first_touch")
    # the step that loses the most users, recomputed from the direct funnel table
    assert used["audience_step"] == choose_audience_step(direct[2])
    steps = direct[2]["users"].tolist()
    losses = [a - b for a, b in zip(steps, steps[1:], strict=False)]
    assert used["audience_step"] == 1 + losses.index(max(losses))
    assert {"device", "country", "acquisition_channel"} <= set(used["driver_properties"])
    assert set(used["driver_prior_events"]).isdisjoint(SYNTHETIC_STEPS)
    assert set(derived) >= {"steps", "breakdown_property", "audience_step", "driver_properties"}
    assert "(derived: " in Path(report["result"].html).read_text()


def test_step_metrics_equal_direct_funnel_table(report, direct):
    _, _, table = direct
    steps = report["metrics"]["metrics"]["steps"]
    assert [s["event"] for s in steps] == list(table["event"])
    assert [s["users"] for s in steps] == [int(u) for u in table["users"]]
    for key in ("conversion_from_previous", "conversion_from_start", "ci_low", "ci_high"):
        np.testing.assert_allclose([s[key] for s in steps], table[key], rtol=0, atol=1e-12)
    got = [s["median_seconds_to_convert"] for s in steps]
    assert got[0] is None
    np.testing.assert_allclose(got[1:], table["median_seconds_to_convert"].iloc[1:], atol=1e-9)


def test_step_users_equal_bruteforce_reference(report, small_world, direct):
    """Exact agreement with the brute-force reference on a user sample (it enumerates chains)."""
    from crm_helpers.funnels.reference import reference_funnel_counts

    _, spec, _ = direct
    events = pd.read_parquet(small_world / "events.parquet", columns=["user_id", "event", "ts"])
    users = np.sort(events["user_id"].dropna().unique())
    sample = np.random.default_rng(0).choice(users, size=min(400, len(users)), replace=False)
    ev = events[events["user_id"].isin(sample)].reset_index(drop=True)
    ts = pd.to_datetime(ev["ts"])
    ev["ts"] = (ts.dt.tz_convert(None) if ts.dt.tz is not None else ts).astype("datetime64[us]")
    ref = reference_funnel_counts(ev, spec)
    engine = funnel_table(ibis.memtable(ev), spec)["users"].astype(int).tolist()
    assert engine == ref
    assert ref[0] > 100 and ref[-1] > 0  # the sample exercises the whole funnel


def test_metrics_are_consistent(report):
    steps = report["metrics"]["metrics"]["steps"]
    users = [s["users"] for s in steps]
    assert users[0] > 0 and all(a >= b for a, b in zip(users, users[1:], strict=False))
    for s in steps:
        for key in ("conversion_from_previous", "conversion_from_start"):
            assert 0.0 <= s[key] <= 1.0
        # 1e-12: the Wilson bound at a rate of exactly 1 comes out as 1 - 1 ulp
        assert s["ci_low"] - 1e-12 <= s["conversion_from_start"] <= s["ci_high"] + 1e-12
        assert s["conversion_from_start"] == pytest.approx(s["users"] / users[0], abs=1e-12)
    assert report["metrics"]["metrics"]["entered"] == users[0]
    assert report["metrics"]["summary"], "no summary recorded"
    assert f"{users[0]:,} users started the funnel" in report["metrics"]["summary"][0]


def test_breakdown_and_trend_tables(report, small_world):
    tables = report["metrics"]["tables"]
    steps = report["metrics"]["metrics"]["steps"]
    b = pd.DataFrame(tables["breakdown"])
    # first-touch platform groups partition the entrants: their users add up per step
    per_step = b.groupby("step")["users"].sum().sort_index().tolist()
    assert per_step == [s["users"] for s in steps]
    assert set(b["group"]) <= {"ios", "android", "web", "other", "(missing)"}
    t = pd.DataFrame(tables["trend"])
    first = t[t["step"] == 1].set_index(pd.to_datetime(t.loc[t["step"] == 1, "period"]))
    # each week is its own funnel: its entrants are the users with a visit in that week
    # (independently, with pandas); a user entering in several weeks counts in each
    ev = pd.read_parquet(small_world / "events.parquet", columns=["user_id", "event", "ts"])
    visits = ev[ev["event"] == "visit"]
    day = pd.to_datetime(visits["ts"]).dt.tz_localize(None).dt.normalize()
    week = day - pd.to_timedelta(day.dt.weekday, unit="D")
    expected = visits.groupby(week.values)["user_id"].nunique()
    assert first["users"].astype(int).to_dict() == expected.astype(int).to_dict()
    assert first["users"].sum() > steps[0]["users"]  # returning users enter again
    assert ((t["ci_low"] <= t["conversion_from_start"] + 1e-12)
            & (t["conversion_from_start"] <= t["ci_high"] + 1e-12)).all()  # fmt: skip


def test_audience_sizing_and_export(report):
    m = report["metrics"]["metrics"]
    steps = m["steps"]
    k = m["audience.step"]
    expected = steps[k - 1]["users"] - steps[k]["users"]
    assert m["audience.size"] == expected
    sizing = pd.DataFrame(report["metrics"]["tables"]["sizing"]).set_index("step")
    assert sizing.loc[k, "audience"] == expected
    exported = pd.read_parquet(m["audience.export"])
    assert Path(m["audience.export"]).parent == report["export"]
    assert len(exported) == expected and exported["user_id"].is_unique


def test_html_report_is_static_and_has_the_figures(report):
    res = report["result"]
    html = Path(res.html).read_text()
    assert res.n_figures >= 7  # funnel, drop-off, time, breakdown, trend, sizing, drivers
    assert "embed-amd.js" not in html and "widget-state+json" not in html
    # no stray widget (e.g. DuckDB's ipywidget progress bar) reached the report
    assert "crm-widget-note" not in html
    assert "Open this notebook in Jupyter" in html
    assert html.index("Summary") < html.index("plotly-graph-div")


def test_notebook_runs_under_nbval(small_world, tmp_path):
    env = {**os.environ, "CRM_DATA_DIR": str(small_world)}
    env.pop("CRM_METRICS_PATH", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
         "-p", "no:randomly", str(NOTEBOOK)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout

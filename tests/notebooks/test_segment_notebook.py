"""The segment profiling notebook as a report: the small synthetic world and orders only.

One papermill run per data set through the project's runner; ``metrics.json`` must equal
the helpers and the plain-pandas reference (RFM segments, states), carry every interface key
(``rfm_segments``, ``states``, ``migration``, ``bgnbd``, ``gamma_gamma``, ``holdout``,
``clusters``), and the orders-only run must build with clusters stepping aside.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from crm_helpers import config
from tests.shared_runs import shared_report

pytestmark = [pytest.mark.slow]

NOTEBOOK = config.NOTEBOOKS_DIR / "segment_profiling.ipynb"
KEYS = ("rfm_segments", "states", "migration", "bgnbd", "gamma_gamma", "holdout", "clusters")


def _run(data_dir, out, **parameters):
    from crm_helpers.report.run import run_notebook

    res = run_notebook(
        "segment_profiling",
        data_dir=data_dir,
        out_dir=out,
        parameters=parameters,
        update_index=False,
    )
    assert res.ok, res.error
    return res, json.loads(Path(res.metrics).read_text())


@pytest.fixture(scope="module")
def report(small_world, tmp_path_factory):
    # the same run as test_report_browser's (tests/shared_runs.py: one run per session)
    res = shared_report(tmp_path_factory, "segment_profiling", small_world, export=True)
    return res, json.loads(Path(res.metrics).read_text())


@pytest.fixture(scope="module")
def orders_only(small_world, tmp_path_factory):
    d = tmp_path_factory.mktemp("orders_only")
    o = pd.read_parquet(
        small_world / "orders.parquet", columns=["order_id", "user_id", "ts", "revenue"]
    )
    o["user_id"] = "u" + o["user_id"].astype(str)  # string ids
    o.to_parquet(d / "orders.parquet", index=False)
    return d, _run(d, tmp_path_factory.mktemp("segment_orders_only"))


def test_parameters_cell_and_named_runs_are_valid():
    from crm_helpers.report.run import parameters_cell, read_params_file

    p = parameters_cell(nbformat.read(str(NOTEBOOK), as_version=4))[1]
    assert p["as_of_date"] == "" and p["calibration_end"] == "" and p["clusters"] == "auto"
    runs = sorted(config.PARAMS_DIR.glob("segment_profiling--*.yaml"))
    assert runs, "no named runs"
    for path in runs:
        pf = read_params_file(path)
        assert pf.notebook == "segment_profiling" and set(pf.parameters) <= set(p)


def test_metrics_equal_the_reference(report, small_world):
    from crm_helpers.segments.reference import reference_rfm, reference_rule_states

    _, m = report
    mm = m["metrics"]
    assert all(k in mm for k in KEYS), sorted(mm)
    as_of = m["provenance"]["parameters"]["as_of_date"]
    o = pd.read_parquet(
        small_world / "orders.parquet", columns=["order_id", "user_id", "ts", "revenue"]
    )
    assert as_of == pd.Timestamp(o["ts"].max()).date().isoformat()  # derived: last order
    assert m["provenance"]["derived"]["as_of_date"] == "the last order's date"
    ref = reference_rfm(o, as_of)
    got = pd.DataFrame(mm["rfm_segments"]).set_index("segment")
    counts = ref["segment"].value_counts()
    for seg, row in got.iterrows():
        assert row["customers"] == counts.get(seg, 0)
        part = ref[ref["segment"] == seg]
        if len(part):
            assert row["revenue_share"] == pytest.approx(
                part["monetary"].sum() / ref["monetary"].sum(), abs=1e-9
            )
            assert row["avg_order_value"] == pytest.approx(
                part["monetary"].sum() / part["frequency"].sum(), abs=1e-9
            )
    ev = pd.read_parquet(small_world / "events.parquet", columns=["user_id", "ts"])
    st = reference_rule_states(o, as_of, events=ev, dormant_after_days=30, churned_after_days=90,
                               active_window_days=30, super_active_min_days=4)  # fmt: skip
    assert (
        mm["states"]
        == st["state"].value_counts().reindex(list(mm["states"])).fillna(0).astype(int).to_dict()
    )


def test_model_holdout_migration_clusters(report):
    _, m = report
    mm = m["metrics"]
    assert set(mm["bgnbd"]) == {"r", "alpha", "a", "b"} and all(v > 0 for v in mm["bgnbd"].values())
    assert set(mm["gamma_gamma"]) == {"p", "q", "v"}
    h = mm["holdout"]
    assert h["calibration_end"] < m["provenance"]["parameters"]["as_of_date"]
    assert sum(b["customers"] for b in h["by_frequency"]) == h["customers"]
    assert h["mae"] >= 0 and h["predicted_total"] > 0
    mig = mm["migration"]
    counts = np.array(mig["counts"])
    assert counts.shape == (len(mig["from_states"]), len(mig["to_states"]))
    # users at the last month end = the states recorded at as_of
    assert dict(zip(mig["to_states"], counts.sum(axis=0).tolist(), strict=True)) == mm["states"]
    # RFM migration: the last month's columns sum to the customers at as_of, by segment
    rm = mm["rfm_migration"]
    rc = np.array(rm["counts"])
    assert rc.shape == (len(rm["from_segments"]), len(rm["to_segments"]))
    by_seg = {r["segment"]: r["customers"] for r in mm["rfm_segments"]}
    assert dict(zip(rm["to_segments"], rc.sum(axis=0).tolist(), strict=True)) == by_seg
    assert rm["lost_segment"] == "Lost" and rm["flows_into_lost"]
    # model state thresholds: per group, with the holdout check of all flagged customers
    tc = h["threshold_check"]
    assert set(tc) == {"churned", "dormant-risk"}
    assert tc["churned"]["all"]["customers"] == h["customers"]
    assert sum(mm["states_model"].values()) == sum(by_seg.values())
    c = mm["clusters"]
    assert sum(c["sizes"]) > 0 and len(c["sizes"]) == c["k"] and -1 <= c["stability_ari"] <= 1


def test_summary_first_and_export(report):
    res, m = report
    assert m["summary"] and "customers as of" in m["summary"][0]
    html = Path(res.html).read_text()
    assert html.index("Summary") < html.index("plotly-graph-div")
    assert res.n_figures >= 8
    path = Path(m["metrics"]["export"])
    seg = m["provenance"]["parameters"]["profile_segment"]
    exported = pd.read_parquet(path)
    assert set(exported["segment"]) == {seg}
    n = {r["segment"]: r["customers"] for r in m["metrics"]["rfm_segments"]}[seg]
    assert len(exported) == n


def test_orders_only_builds_and_steps_aside(orders_only):
    _, (res, m) = orders_only
    mm = m["metrics"]
    assert mm["clusters"] is None
    assert all(k in mm for k in KEYS)
    html = Path(res.html).read_text()
    assert "Skipped: this section needs an events table" in html
    assert sum(r["customers"] for r in mm["rfm_segments"]) > 0


def test_cdnow_through_the_notebook_reproduces_the_published_fits(tmp_path_factory):
    """The notebook itself on the CDNOW sample (orders only), as of the calibration end."""
    from tests.segments.conftest import cdnow_orders

    d = tmp_path_factory.mktemp("cdnow_nb")
    cdnow_orders().to_parquet(d / "orders.parquet", index=False)
    _, m = _run(
        d, tmp_path_factory.mktemp("cdnow_report"), as_of_date="1997-09-30", time_unit_days=7.0
    )
    b, g = m["metrics"]["bgnbd"], m["metrics"]["gamma_gamma"]
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert all(abs(b[k] - v) <= 0.0005 + 1e-9 for k, v in published.items()), b
    assert all(
        abs(g[k] - v) <= 0.005 + 1e-9 for k, v in {"p": 6.25, "q": 3.74, "v": 15.44}.items()
    ), g
    assert m["metrics"]["clusters"] is None


def test_one_order_per_customer_steps_the_model_aside(small_world, tmp_path_factory):
    """Every customer bought once: RFM, states and migration build; the model steps aside."""
    d = tmp_path_factory.mktemp("one_order")
    o = pd.read_parquet(
        small_world / "orders.parquet", columns=["order_id", "user_id", "ts", "revenue"]
    )
    o.sort_values("ts").drop_duplicates("user_id").to_parquet(d / "orders.parquet", index=False)
    res, m = _run(d, tmp_path_factory.mktemp("one_order_report"), export_format="csv")
    mm = m["metrics"]
    assert mm["bgnbd"] is None and mm["holdout"] is None and mm["states_model"] is None
    assert sum(r["customers"] for r in mm["rfm_segments"]) == o["user_id"].nunique()
    assert mm["rfm_migration"]["counts"] and mm["migration"]["counts"]
    assert (
        "Skipped: this section needs customers who bought on two or more days"
        in Path(res.html).read_text()
    )


def test_too_few_active_users_to_cluster_steps_aside(tmp_path):
    """Four users, only one of them active on 3+ days: the cluster section says why in one
    line (and what to change) instead of failing the run."""
    d = tmp_path / "tiny"
    d.mkdir()
    day = pd.Timestamp("2024-03-04 10:00")
    events = [(1, "visit", day + pd.Timedelta(days=k)) for k in range(4)]
    events += [(u, "visit", day + pd.Timedelta(days=1)) for u in (2, 3, 4)]
    pd.DataFrame(events, columns=["user_id", "event", "ts"]).to_csv(d / "events.csv", index=False)
    orders = [(i, u, day + pd.Timedelta(days=i), 10.0 * u) for i, u in enumerate([1, 1, 2, 3, 4])]
    pd.DataFrame(orders, columns=["order_id", "user_id", "ts", "revenue"]).to_csv(
        d / "orders.csv", index=False
    )
    res, m = _run(d, tmp_path / "out")
    assert m["metrics"]["clusters"] is None
    html = Path(res.html).read_text()
    assert "at least 3 users active on 3+ days to cluster (the data have 1 of 4 users)" in html


def test_too_few_to_cluster_is_what_fit_clusters_refuses():
    from crm_helpers.segments import clusters as cl

    f = pd.DataFrame({"user_id": [1, 2, 3, 4], "active_days": [5, 3, 2, 1], "events": [9, 5, 3, 1]})
    assert cl.too_few_to_cluster(f, 3) == (
        "at least 3 users active on 3+ days to cluster (the data have 2 of 4 users)"
    )
    with pytest.raises(ValueError, match="at least 3 users"):
        cl.fit_clusters(f, "auto", min_active_days=3)
    assert cl.too_few_to_cluster(f, 1) == ""

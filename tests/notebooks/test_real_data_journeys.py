"""The journey report with its defaults on data shaped like real exports (issue #21).

1. a B2B sales pipeline (``lead_created`` -> ... -> ``won`` / ``lost`` days apart, text ids,
   no orders): the session gap is derived as one journey per user, the goal is ``won``
   with no window, and the stages name the pipeline steps they leave out;
2. a Taobao-style clickstream (``UserBehavior.csv`` with its own column names and a
   ``schema.yaml``): 30-minute sessions (the median gap is minutes), the goal is ``buy``,
   and ``pv`` / ``cart`` / ``fav`` / ``buy`` all have an AARRR stage.

Each run's ``metrics.json`` is checked against the brute-force reference on the same events
(:func:`tests.notebooks.test_journey_notebook._check_against_reference`), and its summary
never reports the goal itself as the converters' difference. A third run has web events
without a purchase event and an orders table: the orders join the journeys and are the goal.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_helpers.journeys import JourneySpec
from crm_helpers.journeys import defaults as D
from crm_helpers.journeys import reference as R
from tests.journeys import real_shapes
from tests.notebooks.test_journey_notebook import _check_against_reference, _defaults

pytestmark = [pytest.mark.slow]


def _run(data_dir: Path, out: Path) -> dict:
    from crm_helpers.report.run import run_notebook

    res = run_notebook("journey_mapping", data_dir=data_dir, out_dir=out, update_index=False)
    assert res.ok, res.error
    return json.loads(Path(res.metrics).read_text())


def _differs_line(m: dict) -> str:
    (line,) = [s for s in m["summary"] if "Converters' journeys first differ" in s]
    return line


def test_b2b_pipeline_report(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    frame = real_shapes.write_b2b_leads(d)
    m = _run(d, tmp_path / "out")
    params, derived = m["provenance"]["parameters"], m["provenance"]["derived"]
    med = R.reference_median_gap_minutes(frame)
    assert params["session_gap_minutes"] == 0.0
    assert derived["session_gap_minutes"] == (
        f"0, one journey per user: the median time between a user's consecutive events is "
        f"{D.duration_text(med)}, above the default 30 minutes, which would cut most journeys "
        "into single events"
    )
    assert params["goal_event"] == "won"
    assert derived["goal_event"].startswith("the conversion: the purchase event")
    assert params["goal_window_days"] is None
    spec = JourneySpec(start_end=True, churn_days=_defaults()["churn_days"])
    _check_against_reference(m, frame, spec)
    assert len(m["metrics"]["nodes"]) and {n["step"] for n in m["metrics"]["nodes"]} >= {
        "lead_created",
        "won",
    }
    assert m["metrics"]["stages_unmapped"] == ["contacted", "lost", "proposal", "qualified"]
    line = _differs_line(m)
    assert "<code>won</code>" not in line and "before the goal" in line
    assert all(c["step"] != "won" for c in m["metrics"]["differential_cells"])
    (leak,) = [s for s in m["summary"] if s.startswith("The biggest leak")]
    assert "transitions out of" in leak


def test_taobao_clickstream_report(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    frame = real_shapes.write_taobao_clicks(d)
    m = _run(d, tmp_path / "out")
    params, derived = m["provenance"]["parameters"], m["provenance"]["derived"]
    assert params["session_gap_minutes"] == 30.0
    assert derived["session_gap_minutes"].startswith("the default 30 minutes: the median time")
    assert params["goal_event"] == "buy" and params["goal_window_days"] == 7.0
    spec = JourneySpec(session_gap_minutes=30, start_end=True, churn_days=_defaults()["churn_days"])
    _check_against_reference(m, frame, spec)
    assert m["metrics"]["stages_unmapped"] == []
    line = _differs_line(m)
    assert "<code>buy</code>" not in line
    assert all(c["step"] != "buy" for c in m["metrics"]["differential_cells"])


def test_orders_are_the_goal_when_events_have_no_purchase(tmp_path):
    """Web events without a purchase event plus an orders table (a shop's two exports):
    the orders join the journeys as the step ``order``, which is the goal."""
    rng = np.random.default_rng(4)
    rows, orders = [], []
    t0 = pd.Timestamp("2024-04-01 09:00")
    for u in range(80):
        t = t0 + pd.Timedelta(minutes=int(rng.integers(0, 20 * 24 * 60)))
        for e in ("visit", "product_view", "product_view"):
            rows.append((f"c{u:03d}", e, t))
            t += pd.Timedelta(seconds=int(rng.integers(20, 300)))
        if u % 3 == 0:
            rows.append((f"c{u:03d}", "search", t))
            t += pd.Timedelta(seconds=int(rng.integers(20, 300)))
            orders.append((1000 + u, f"c{u:03d}", t, 20.0))
    d = tmp_path / "data"
    d.mkdir()
    events = pd.DataFrame(rows, columns=["user_id", "event", "ts"])
    events.to_csv(d / "events.csv", index=False)
    o = pd.DataFrame(orders, columns=["order_id", "user_id", "ts", "revenue"])
    o.to_csv(d / "orders.csv", index=False)
    m = _run(d, tmp_path / "out")
    params, derived = m["provenance"]["parameters"], m["provenance"]["derived"]
    assert params["goal_event"] == D.ORDER_STEP and "orders table" in derived["goal_event"]
    assert params["session_gap_minutes"] == 30.0
    both = pd.concat(
        [events, o.assign(event=D.ORDER_STEP)[["user_id", "event", "ts"]]], ignore_index=True
    )
    spec = JourneySpec(session_gap_minutes=30, start_end=True, churn_days=_defaults()["churn_days"])
    _check_against_reference(m, both, spec)
    assert {"search", D.ORDER_STEP} <= {n["step"] for n in m["metrics"]["nodes"]}

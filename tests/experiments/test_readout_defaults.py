"""Defaults of the readout on foreign shapes and the edge cases of issue #9 not covered by
``test_experiment_core``: events-only data, an excluded control, the lookalike export's own
assignments, the SRM hint when the split was assumed."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.experiments import ExperimentError, analysis, narrative, readout
from crm_helpers.experiments import statistics as S
from crm_helpers.experiments.decision import Verdict
from tests.experiments.conftest import day


def _load(path):
    return load(path, validate=False)


def test_events_only_conversion_is_the_purchase_event(tables, write):
    t = tables
    extra = pd.DataFrame(
        {"user_id": ["u5", "u1", "u3"], "event": ["purchase", "purchase", "visit"],
         "ts": [day(2), day(2), day(20)]}
    )  # fmt: skip
    ev = pd.concat([t["events"], extra])  # u3's visit on day 20: the data end
    data = _load(write("events_only", assignments=t["assignments"], events=ev))
    chosen = readout.metrics_for_data(data, "conversion", ["revenue", "event_count:visit"])
    assert chosen.primary == "event:purchase" and "'purchase'" in chosen.primary_how
    assert chosen.secondary == ["event_count:visit"]
    assert list(chosen.left_out) == ["revenue"]
    prep = readout.prepare(
        data, experiment_id="exp1", primary_metric=chosen.primary,
        secondary_metrics=chosen.secondary, analysis_window_days=7,
    )  # fmt: skip
    st = prep.stats.set_index(["variant", "metric"])
    # u1 (control) and u5 (treatment) purchase on day 2, inside their 7-day windows
    assert st.loc[("control", "event:purchase"), ["n", "sum"]].tolist() == [4, 1]
    assert st.loc[("treatment", "event:purchase"), ["n", "sum"]].tolist() == [5, 1]
    assert "revenue" not in set(prep.stats["metric"])  # no orders: no money metrics


def test_events_only_without_a_purchase_event_takes_the_most_common_event(tables, write):
    t = tables
    data = _load(write("events_only", assignments=t["assignments"], events=t["events"]))
    chosen = readout.metrics_for_data(data, "conversion", ["revenue"])
    assert chosen.primary == "event:visit"  # 3 users visit, 1 opens
    assert "no purchase event" in chosen.primary_how and chosen.secondary == []


def test_metrics_are_kept_when_orders_exist_or_asked_for(tables, write):
    t = tables
    with_orders = _load(write("full", **t))
    assert readout.metrics_for_data(with_orders, "conversion", ["revenue"]) == (
        readout.MetricChoice("conversion", ["revenue"])
    )
    events_only = _load(write("events_only", assignments=t["assignments"], events=t["events"]))
    chosen = readout.metrics_for_data(events_only, "orders", ["revenue"])
    assert chosen.primary == "orders"  # asked for explicitly: stays, and fails clearly
    with pytest.raises(ExperimentError, match="need the orders table"):
        readout.prepare(events_only, experiment_id="exp1", primary_metric="orders",
                        secondary_metrics=[], analysis_window_days=7)  # fmt: skip


def test_control_without_analysable_users_is_a_clear_error(tables, write):
    t = tables
    a = t["assignments"]
    # every control user assigned 2 days before the data end: no complete window
    a.loc[(a["experiment_id"] == "exp1") & (a["variant"] == "control"), "assigned_at"] = day(18)
    data = _load(write("late_control", assignments=a, orders=t["orders"]))
    with pytest.raises(ExperimentError, match="control arm 'control' has no users to analyse"):
        readout.prepare(data, experiment_id="exp1", analysis_window_days=7)


def test_lookalike_export_assignments_read_without_parameters(tables, write, tmp_path):
    from crm_helpers.lookalike import export, holdout_assignments

    t = tables
    audience = pd.DataFrame({"user_id": [f"u{i}" for i in range(1, 10)]})
    asg = holdout_assignments(audience, 0.2, "lookalike_2025_03", day(0), random_state=3)
    paths = export(audience, tmp_path / "export", assignments=asg)
    d = write("after_export", orders=t["orders"])
    (d / "assignments.parquet").write_bytes(paths["assignments"].read_bytes())
    prep = readout.prepare(_load(d), analysis_window_days=7)
    assert prep.experiment_id == "lookalike_2025_03"
    assert prep.control == "holdout" and "'holdout'" in prep.control_how
    assert prep.assignments.counts == {"holdout": 2, "treatment": 7}


def test_srm_warning_comes_first_and_says_how_to_give_the_plan():
    srm = S.srm_test({"treatment": 800, "holdout": 200}, {"treatment": 0.5, "holdout": 0.5})
    arms = pd.DataFrame(columns=["role", "diff", "metric", "variant", "mean"])
    v = Verdict("don't ship", "split", None)
    kw = {"experiment_id": "e", "control": "holdout", "verdict": v, "arms": arms, "srm": srm}
    lines = narrative.memo(**kw, split_assumed=True)
    assert lines[0].startswith("⚠️ **Sample-ratio mismatch**") and "planned_split" in lines[0]
    assert "planned_split" not in narrative.memo(**kw)[0]
    ok = S.srm_test({"treatment": 800, "holdout": 200}, {"treatment": 0.8, "holdout": 0.2})
    assert not narrative.memo(**{**kw, "srm": ok}, split_assumed=True)[0].startswith("⚠️")


def test_unknown_control_name_through_prepare(tiny_dir):
    with pytest.raises(ExperimentError, match="'ctl' is not a variant"):
        readout.prepare(_load(tiny_dir), experiment_id="exp1", control_variant="ctl",
                        analysis_window_days=7)  # fmt: skip
    assert analysis.choose_control({"a": 1, "b": 2}, "b") == ("b", "")


def test_memo_caveats_name_peeking_and_small_and_significant_segments():
    srm = S.srm_test({"a": 500, "b": 500}, {"a": 0.5, "b": 0.5})
    arms = pd.DataFrame(columns=["role", "diff", "metric", "variant", "mean"])
    kw = {"experiment_id": "e", "control": "a", "verdict": Verdict("keep running", "r", None)}
    lines = narrative.memo(**kw, arms=arms, srm=srm, segments_small=3, segments_significant=1)
    caveats = [ln for ln in lines if ln.startswith("Caveat:")]
    assert len(caveats) == 3
    assert "sequential" in caveats[0] and "1 segment effect" in caveats[1]
    assert "3 segment row(s) are too small" in caveats[2]
    plain = narrative.memo(**kw, arms=arms, srm=srm, peeking_note=False)
    assert not [ln for ln in plain if ln.startswith("Caveat:")]

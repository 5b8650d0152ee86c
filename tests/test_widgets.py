"""Widgets without a browser: build, set values programmatically, press Run, check the callback."""

from __future__ import annotations

from pathlib import Path

import ibis
import ipywidgets as widgets
import pandas as pd
import pytest
from traitlets import TraitError

from crm_helpers.data import CRMData
from crm_helpers.engine import connect
from crm_helpers.schema import DEFAULT_SCHEMA
from crm_helpers.widgets import (
    DEFAULT_FUNNEL_STEPS,
    controls_from_params,
    funnel_controls,
    known_breakdowns,
    known_events,
    live_session,
)

core = pytest.importorskip("crm_helpers.funnels.core", reason="funnel engine not available")
FunnelSpec = core.FunnelSpec


@pytest.fixture(scope="module")
def data() -> CRMData:
    con = connect("duckdb")
    ts = pd.to_datetime(["2025-01-01 10:00", "2025-01-01 10:05", "2025-01-02 09:00"] * 2)
    events = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 2],
            "event": ["visit", "product_view", "purchase", "visit", "search", "visit"],
            "ts": ts,
            "platform": ["ios", "ios", "ios", "web", "web", "web"],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [1, 2],
            "signup_at": pd.to_datetime(["2024-12-01"] * 2),
            "device": ["ios", "web"],
            "country": ["DE", "FR"],
        }
    )
    return CRMData(
        con=con,
        data_dir=Path("."),
        schema=DEFAULT_SCHEMA,
        tables={"events": ibis.memtable(events), "users": ibis.memtable(users)},
    )


def test_known_events_and_breakdowns(data):
    assert known_events(data) == ["product_view", "purchase", "search", "visit"]
    assert known_breakdowns(data) == {
        "device": "user",
        "country": "user",
        "platform": "first_touch",
    }


def test_funnel_controls_callback_receives_spec(data):
    calls = []
    c = funnel_controls(data, lambda spec, opts: calls.append((spec, opts)) or "done")
    assert isinstance(c, widgets.Widget)
    assert list(c.steps.value) == list(DEFAULT_FUNNEL_STEPS)  # defaults allowed even if absent
    c.steps.value = ["visit", "search", "purchase"]
    c.mode.value = "strict"
    c.window_days.value = 2.5
    c.breakdown.value = "platform"
    c.run_button.click()
    assert len(calls) == 1
    spec, opts = calls[0]
    assert isinstance(spec, FunnelSpec)
    assert spec.mode == "strict"
    assert spec.conversion_window_days == 2.5
    assert [getattr(s, "event", s) for s in spec.steps] == ["visit", "search", "purchase"]
    assert opts == {"breakdown": "platform", "breakdown_source": "first_touch"}
    # a second click with a users attribute
    c.breakdown.value = "device"
    c.mode.value = "ordered"
    assert c.run() == "done"
    spec2, opts2 = calls[1]
    assert spec2.mode == "ordered" and opts2 == {"breakdown": "device", "breakdown_source": "user"}
    assert c.run_button.disabled is False


def test_steps_restricted_to_known_events(data):
    c = funnel_controls(data, lambda s, o: None)
    with pytest.raises(TraitError):
        c.steps.value = ["visit", "no_such_event"]
    c.steps.value = ["visit", "visit", "purchase"]  # a repeated step is allowed
    assert list(c.steps.value) == ["visit", "visit", "purchase"]


def test_invalid_spec_is_reported_not_raised(data):
    calls = []
    c = funnel_controls(data, lambda s, o: calls.append(s))
    c.steps.value = []
    assert c.run() is None
    assert calls == []
    assert "invalid funnel" in c.status.value


def test_invalid_or_failed_run_removes_the_previous_charts(data):
    shown = {"output_type": "stream", "name": "stdout", "text": "previous chart"}
    c = funnel_controls(data, lambda s, o: None)
    c.output.outputs = (shown,)
    c.steps.value = []
    assert c.run() is None and c.output.outputs == ()

    def boom(spec, opts):
        raise RuntimeError("engine down")

    c = funnel_controls(data, boom, events=["a", "b"], default_steps=["a", "b"], breakdowns=[])
    c.output.outputs = (shown,)
    assert c.run() is None and c.output.outputs == ()
    assert c.window_days.style.description_width == "initial"  # "window (days)" is not cut


def test_failing_callback_keeps_widget(data):
    def boom(spec, opts):
        raise RuntimeError("engine down")

    c = funnel_controls(data, boom, events=["a", "b"], default_steps=["a", "b"], breakdowns=[])
    assert c.run() is None
    assert "engine down" in c.status.value
    assert c.run_button.disabled is False


def test_base_spec_fields_are_kept(data):
    base = FunnelSpec(["visit", "purchase"], start="2025-01-01", end="2025-02-01")
    calls = []
    c = funnel_controls(data, lambda s, o: calls.append(s), base_spec=base)
    c.steps.value = ["visit", "product_view"]
    c.run()
    assert calls[0].start == base.start and calls[0].end == base.end
    assert [getattr(s, "event", s) for s in calls[0].steps] == ["visit", "product_view"]


def test_controls_from_params():
    got = []
    params = {
        "steps": ["visit", "purchase"],
        "mode": "ordered",
        "conversion_window_days": 7.0,
        "audience_step": 4,
        "export": False,
        "export_dir": "",
    }
    c = controls_from_params(params, got.append, choices={"mode": ["ordered", "strict"]})
    assert isinstance(c.controls["mode"], widgets.Dropdown)
    assert isinstance(c.controls["steps"], widgets.TagsInput)
    assert isinstance(c.controls["audience_step"], widgets.IntText)
    assert isinstance(c.controls["conversion_window_days"], widgets.FloatText)
    assert isinstance(c.controls["export"], widgets.Checkbox)
    c.controls["mode"].value = "strict"
    c.controls["audience_step"].value = 2
    c.controls["steps"].value = ["visit", "checkout", "purchase"]
    c.run_button.click()
    assert got == [
        {**params, "mode": "strict", "audience_step": 2, "steps": ["visit", "checkout", "purchase"]}
    ]
    with pytest.raises(KeyError):
        controls_from_params(params, got.append, include=["nope"])
    with pytest.raises(TypeError):
        controls_from_params({"x": {"a": 1}}, got.append)


def test_live_session(monkeypatch):
    monkeypatch.delenv("CRM_METRICS_PATH", raising=False)
    monkeypatch.delenv("CRM_STATIC", raising=False)
    assert live_session() is True
    monkeypatch.setenv("CRM_METRICS_PATH", "/tmp/m.json")
    assert live_session() is False
    monkeypatch.delenv("CRM_METRICS_PATH")
    monkeypatch.setenv("CRM_STATIC", "1")
    assert live_session() is False

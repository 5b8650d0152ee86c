"""Journeys on the small synthetic world recover what the generator planted.

Read from ``ground_truth.json`` (never hard-coded): the funnel steps every purchasing session
walks (``funnel.steps``, with ``cart_return_probability`` of purchases coming from a later
session that skips the browsing steps) and the planted leak (``dropoff``: one platform's
sessions convert from checkout to purchase ``factor`` times as often as usual during a known
window).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.journeys import JourneySpec, conformance, paths, prepare
from crm_helpers.journeys import analysis as A


def _naive(ts: str) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t


@pytest.fixture(scope="module")
def world(small_world):
    return load(small_world), json.loads((small_world / "ground_truth.json").read_text())


def test_converters_typical_path_is_the_planted_funnel(world):
    data, gt = world
    steps = gt["funnel"]["steps"]
    prep = prepare(data, JourneySpec(session_column="session_id", collapse_repeats=True))
    into = paths(prep, steps[-1], len(steps) - 1, "before")
    assert tuple(into["path"].iloc[0]) == tuple(steps)
    # converters follow the funnel in order, except the planted cart returns
    conv = A.converter_groups(prep, steps[-1])
    conf = conformance(prep, steps, groups=conv)
    rate = A.conformance_summary(conf, len(steps)).set_index("group")["rate"]
    assert rate["converters"] > 1 - gt["funnel"]["cart_return_probability"] - 0.1
    assert rate["drop-outs"] == 0.0  # by definition: the funnel ends at the goal


def test_planted_leak_found(world):
    data, gt = world
    d = gt["dropoff"]
    start, end = _naive(d["window_start"]), _naive(d["window_end"])
    prep = prepare(data, JourneySpec(session_column="session_id", start=start, end=end))
    ev = data.events
    platform = (
        ev.filter(ev.ts >= start.to_pydatetime(), ev.ts < end.to_pydatetime())
        .group_by(["user_id", "session_id"])
        .aggregate(group=ev.platform.min())
        .rename(session="session_id")
    )
    # sessions that reached the leak's first step, by platform
    with_from = prep.table.filter(prep.table.code == prep.code(d["from_step"]))
    groups = platform.semi_join(with_from, ["user_id", "session"])
    conf = conformance(prep, [d["from_step"], d["to_step"]], groups=groups)
    s = A.conformance_summary(conf, 2).set_index("group")
    planted = s.loc[d["platform"]]
    assert planted["significant"] and planted["diff"] < 0
    assert planted["rate"] / planted["rest_rate"] == pytest.approx(d["factor"], abs=0.2)
    others = s.drop(index=d["platform"])
    assert not (others["significant"] & (others["diff"] < 0)).any()

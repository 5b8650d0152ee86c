"""Journeys on synthetic worlds recover what the generator planted.

Read from ``ground_truth.json`` (never hard-coded):

* the funnel steps (``funnel.steps``) every in-session purchase walks, and the cart returns:
  a checkout is a "cart return" with probability ``funnel.cart_return_probability`` and then
  happens hours later in a new session that skips add_to_cart (visit -> [product_view with
  ``behaviour.browsing.cart_return_view_probability``] -> checkout -> purchase). Returns that
  would fall after the observation end (or the user's dropout) vanish, so the *realised*
  return share is ``funnel.cart_returns`` / all checkouts (~0.63 on the small world, below
  the 0.75 probability); that realised share is the truth the path shares are checked
  against. Sessions also hold listing views, several product views and engagement events, so
  the path test maps journeys onto the funnel steps alone (``unmapped="drop"``).
* the planted leak (``dropoff``: one platform's sessions convert from checkout to purchase
  ``factor`` times as often as usual during a known window). At real rates the small world
  has too few checkouts for it, so that test runs on the dense world of tests/funnels
  (``dense_world``, ``DENSE_WORLD`` in tests/conftest.py).
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


@pytest.fixture(scope="module")
def dense(dense_world):
    return load(dense_world), json.loads((dense_world / "ground_truth.json").read_text())


#: Tolerance on shares of ~550 purchasing sessions (binomial SE ~0.02, so ~3 SE).
SHARE_TOL = 0.06


def test_converters_typical_path_is_the_planted_funnel(world):
    data, gt = world
    f = gt["funnel"]
    steps = f["steps"]
    checkouts = sum(v["checkout"] for v in f["sessions_reaching_step"].values())
    returned = f["cart_returns"] / checkouts  # realised share of cart-return checkouts
    only_steps = JourneySpec(
        session_column="session_id",
        collapse_repeats=True,
        mapping={s: s for s in steps},
        unmapped="drop",
    )
    into = paths(prepare(data, only_steps), steps[-1], len(steps) - 1, "before")
    carted = into["path"].map(lambda p: steps[2] in p)
    # in-session purchases walk the planted funnel in order
    assert tuple(into.loc[carted, "path"].iloc[0]) == tuple(steps)
    # cart returns: a new session visit -> [product_view] -> checkout -> purchase
    view_p = gt["behaviour"]["browsing"]["cart_return_view_probability"]
    ret_path = (steps[0], *([steps[1]] if view_p > 0.5 else []), *steps[3:])
    assert tuple(into.loc[~carted, "path"].iloc[0]) == ret_path
    no_cart_share = into.loc[~carted, "journeys"].sum() / into["journeys"].sum()
    assert no_cart_share == pytest.approx(returned, abs=SHARE_TOL)
    # converters follow the funnel in order, except the planted cart returns
    prep = prepare(data, JourneySpec(session_column="session_id", collapse_repeats=True))
    conv = A.converter_groups(prep, steps[-1])
    conf = conformance(prep, steps, groups=conv)
    rate = A.conformance_summary(conf, len(steps)).set_index("group")["rate"]
    assert rate["converters"] == pytest.approx(1 - returned, abs=SHARE_TOL)
    assert rate["drop-outs"] == 0.0  # by definition: the funnel ends at the goal


def test_planted_leak_found(dense):
    data, gt = dense
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
    # the very sessions the generator counted (one checkout per session)
    realised = d["realised"]["affected"]
    assert (planted["journeys"], planted["conforming"]) == (
        realised["checkouts"],
        realised["purchases"],
    )
    assert planted["rate"] / planted["rest_rate"] == pytest.approx(d["factor"], abs=0.2)
    others = s.drop(index=d["platform"])
    assert not (others["significant"] & (others["diff"] < 0)).any()

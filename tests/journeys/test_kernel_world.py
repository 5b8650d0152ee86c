"""The journey kernel equals the Ibis path on the small synthetic world (and the brute-force
reference on it), for the report's spec (session column, churn nodes) and for gap sessions
with a stage mapping, collapsing and a step rule on a property column."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.journeys import (
    JourneySpec,
    flow,
    loops_table,
    node_reach,
    node_users,
    paths,
    prepare,
    transitions,
)
from crm_helpers.journeys import analysis as A
from crm_helpers.journeys import kernel as K
from crm_helpers.journeys import reference as R
from crm_helpers.store.arrays import from_frame
from crm_helpers.store.paths import paths_used, reset_paths


@pytest.fixture(scope="module")
def world(small_world):
    data = load(small_world)
    df = data.events.to_pandas()
    return data, df


def _eq(a, b):
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-9)


def _specs(df: pd.DataFrame) -> dict[str, JourneySpec]:
    known = sorted(df["event"].unique())
    prop = next(c for c in ("category", "platform", "channel") if c in df.columns)
    value = df[prop].dropna().iloc[0]
    view = "product_view" if "product_view" in known else known[0]
    return {
        "report": JourneySpec(session_column="session_id", start_end=True, churn_days=14),
        "stages": JourneySpec(
            mapping=A.stage_mapping(known=known),
            unmapped="drop",
            collapse_repeats=True,
            session_gap_minutes=30,
            start_end=True,
            rules=[{"step": "picked view", "event": view, "where": {prop: value}}],
        ),
    }, prop


@pytest.mark.parametrize("name", ["report", "stages"])
def test_kernel_equals_ibis_and_reference_on_the_small_world(world, name):
    data, df = world
    specs, prop = _specs(df)
    spec = specs[name]
    arrays = from_frame(df, columns=["session_id", prop])
    ibis_prep = prepare(data.events, spec)
    reset_paths()
    kern_prep = prepare(data.events, spec, arrays=arrays)
    assert K.of(kern_prep) is not None
    kern = {
        "transitions": transitions(kern_prep),
        "reach": node_reach(kern_prep),
        "loops": loops_table(kern_prep),
    }
    anchor = kern["reach"].loc[~kern["reach"]["step"].str.startswith("["), "step"].iloc[0]
    for direction in ("after", "before"):
        kern[f"paths_{direction}"] = paths(kern_prep, anchor, 4, direction)
        kern[f"users_{direction}"] = node_users(kern_prep, anchor, 4, direction)
    fl = flow(kern_prep, anchor, 4)
    assert paths_used() == {"journeys": ["kernel"]}
    assert len(kern["transitions"]) > 10 and kern["paths_after"]["journeys"].sum() > 100

    _eq(kern["transitions"], transitions(ibis_prep))
    _eq(kern["reach"], node_reach(ibis_prep))
    _eq(kern["loops"], loops_table(ibis_prep))
    for direction in ("after", "before"):
        _eq(kern[f"paths_{direction}"], paths(ibis_prep, anchor, 4, direction))
        _eq(kern[f"users_{direction}"], node_users(ibis_prep, anchor, 4, direction))
    _eq(fl.transitions, transitions(kern_prep, timings=False))
    _eq(fl.paths, kern["paths_after"])

    ref = R.reference_journeys(df, spec)
    t = kern["transitions"]
    assert dict(zip(zip(t.source, t.target, strict=True), t["count"], strict=True)) == {
        e: len(v) for e, v in R.reference_transitions(ref).items()
    }
    p = kern["paths_after"]
    assert Counter(dict(zip(p["path"], p["journeys"], strict=True))) == R.reference_paths(
        ref, anchor, 4
    )

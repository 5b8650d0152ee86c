"""The live journey controls, driven without a browser: setting a widget's value (as a
click in JupyterLab does) recomputes the tables with the same helpers and redraws."""

from __future__ import annotations

from collections import Counter

import ibis
import ipywidgets as widgets
import pandas as pd
import pytest
import traitlets

from crm_helpers.journeys import JourneySpec, prepare
from crm_helpers.journeys import explore as X
from crm_helpers.journeys import reference as R
from crm_helpers.widgets import JourneyControls, journey_controls

# users 1-3 reach "p" (the goal); 4-6 do not; device splits them 3 ios / 2 web / 1 none
ROWS = [
    (1, "a", 0), (1, "b", 1), (1, "p", 2),
    (2, "a", 0), (2, "p", 1),
    (3, "b", 0), (3, "a", 1), (3, "b", 2), (3, "p", 3),
    (4, "a", 0), (4, "b", 1),
    (5, "b", 0), (5, "c", 1),
    (6, "a", 0), (6, "c", 1), (6, "c", 2),
]  # fmt: skip
DEVICE = {1: "ios", 2: "ios", 3: "web", 4: "ios", 5: "web", 6: None}


@pytest.fixture
def setup(jx):
    df = jx.events_df(ROWS)
    users = ibis.memtable(
        pd.DataFrame({"user_id": list(DEVICE), "device": list(DEVICE.values())}).astype(
            {"user_id": "int64"}
        )
    )
    prep = prepare(ibis.memtable(df), JourneySpec()).cache()
    return prep, users, R.reference_journeys(df)


def _paths(res) -> Counter:
    return Counter(dict(zip(res.paths["path"], res.paths["journeys"], strict=True)))


def test_controls_redraw_on_anchor_depth_and_groups(setup):
    prep, users, ref = setup
    c = journey_controls(
        prep, users=users, columns=["device"], goal="p", anchor="a", depth=1, draw=True
    )
    assert isinstance(c, widgets.VBox) and c.redraws == 1
    assert _paths(c.result) == R.reference_paths(ref, "a", 1)
    assert (c.group_a.value, c.group_b.value) == ("drop-outs", "converters")
    outs = c.output.outputs  # the Sankey and the heatmap, in the widget's own output area
    assert [o["output_type"] for o in outs] == ["display_data"] * 2
    assert all("application/vnd.plotly.v1+json" in o["data"] for o in outs)
    d = c.result.differential.set_index(["position", "step"])
    assert d.loc[(1, "a"), ["journeys_a", "n_a", "journeys_b", "n_b"]].tolist() == [2, 3, 2, 3]

    c.anchor.value = "b"  # a change redraws at once (no Run button)
    assert c.redraws == 2 and _paths(c.result) == R.reference_paths(ref, "b", 1)
    assert len(c.output.outputs) == 2  # replaced, not stacked
    c.depth.value = 3
    assert c.redraws == 3 and _paths(c.result) == R.reference_paths(ref, "b", 3)
    assert c.result.choice["depth"] == 3

    # another grouping: the A / B dropdowns are refilled (largest first), ONE redraw
    c.group_column.value = "device"
    assert c.redraws == 4
    assert list(c.group_a.options) == ["ios", "web", "(none)"]
    assert (c.group_a.value, c.group_b.value) == ("ios", "web")
    d = c.result.differential.set_index(["position", "step"])
    assert d.loc[(1, "a"), ["journeys_a", "n_a", "journeys_b", "n_b"]].tolist() == [3, 3, 0, 2]
    c.group_b.value = "(none)"
    assert c.redraws == 5 and c.result.choice["group_b"] == "(none)"
    assert c.result.differential["n_b"].iloc[0] == 1


def test_controls_report_errors_and_stay_usable(setup):
    prep, users, _ = setup
    c = JourneyControls(prep, users=None, columns=["device"], goal="p", anchor="a", draw=False)
    c.group_column.value = "device"  # no users table: the error is shown, nothing breaks
    assert "failed" in c.status.value and "users table" in c.status.value
    c.group_column.value = ""
    assert c.status.value == "" and c.result is not None
    with pytest.raises(traitlets.TraitError):  # only the journey steps are offered
        c.anchor.value = "not-a-step"


def test_group_columns_and_same_groups_give_no_comparison(setup):
    prep, users, _ = setup

    class D:
        tables = {"users": users.mutate(signup_at=ibis.now(), score=1.5)}

    assert X.group_columns(D) == ["device"]
    assert X.group_columns(object()) == []
    res = X.explore_tables(prep, None, anchor="a", depth=2, group_a=None, group_b=None)
    assert res.differential is None and len(res.paths)


def test_group_paths_equal_the_reference_on_each_group(setup):
    """Converters' and drop-outs' paths after the anchor, each from its own journeys."""
    from crm_helpers.journeys import analysis as A

    prep, _users, ref = setup
    groups = A.converter_groups(prep, "p")
    got = A.group_paths(prep, groups, ["converters", "drop-outs"], "a", 2)
    members = {"converters": {1, 2, 3}, "drop-outs": {4, 5, 6}}
    for g, users in members.items():
        sub = {k: v for k, v in ref.items() if (k[0] if isinstance(k, tuple) else k) in users}
        want = R.reference_paths(sub, "a", 2)
        assert Counter(dict(zip(got[g]["path"], got[g]["journeys"], strict=True))) == want, g
        assert got[g]["share"].sum() == pytest.approx(1.0)

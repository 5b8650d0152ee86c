"""User strings in figures are plotly text, never plotly markup (issue #23 row 9).

Plotly renders a subset of HTML in titles, axis labels, categories, legend names, hover
text and annotations: ``<a href>`` becomes a live link, ``<span style>`` restyles the page.
Every notebook runs on the payload world of tests/notebooks/payloads.py (the run the injection
test opens in Chromium), whose event names, property and attribute values,
experiment and variant ids carry such markup; every figure of the executed notebook must
hold the markup only escaped (``&lt;a href=...``), exactly once, and show it somewhere
(so the payload data is used at all).
"""

from __future__ import annotations

import re

import nbformat
import pandas as pd
import pytest

from crm_helpers import config
from crm_helpers.plots import theme
from tests.notebooks.payloads import HOSTILE_PARAMETERS, MARKUP_LINK, MARKUP_SPAN, hostile_report

pytestmark = [pytest.mark.slow]

LINK, SPAN = MARKUP_LINK, MARKUP_SPAN
#: Live plotly markup: a link or a styled span (builders never make either).
LIVE = re.compile(r"<\s*(a|span)\b", re.IGNORECASE)

NOTEBOOKS = sorted(p.stem for p in config.NOTEBOOKS_DIR.glob("*.ipynb"))
#: Notebooks whose figures show no name from the data (RFM segments and health states are
#: the workbench's own words; its profiles are tables; campaign figures are drawn by channel,
#: whose values the contract fixes, and campaign ids appear only in tables).
NO_DATA_NAMES_IN_FIGURES = {"segment_profiling", "campaign_performance"}


def _strings(obj, out: list[str]) -> list[str]:
    """Every string of a figure's JSON, except ``meta`` (data for tests, never drawn)."""
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k != "meta":
                _strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _strings(v, out)
    return out


def _figures(executed: str) -> list[dict]:
    nb = nbformat.read(executed, as_version=4)
    return [
        o["data"]["application/vnd.plotly.v1+json"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]


def test_every_notebook_has_parameters():
    assert set(NOTEBOOKS) == set(HOSTILE_PARAMETERS)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_figures_hold_user_markup_only_escaped(notebook, payload_world, tmp_path_factory):
    # the run test_injection opens in the browser (tests/notebooks/payloads.py: once a session)
    res = hostile_report(tmp_path_factory, notebook, payload_world)
    assert res.ok, res.error
    figures = _figures(res.executed)
    assert figures, "no plotly figure in the executed notebook"
    texts = [s for fig in figures for s in _strings(fig, [])]
    live = [s for s in texts if LIVE.search(s)]
    assert not live, f"live plotly markup in a figure: {live[:3]}"
    assert not [s for s in texts if "&amp;lt;" in s], "escaped twice"
    shown = {p for p in (LINK, SPAN) if any(theme.esc(p) in s for s in texts)}
    if notebook not in NO_DATA_NAMES_IN_FIGURES:
        assert shown, "no payload reaches a figure: is the payload data used at all?"


def test_journey_titles_from_user_events_are_escaped():
    from crm_helpers.plots import journeys

    nodes = pd.DataFrame(
        {"level": [0, 1], "step": [LINK, "buy"], "journeys": [10, 4], "share": [1.0, 0.4]}
    )
    links = pd.DataFrame(
        {"source_level": [0], "source": [LINK], "target_level": [1], "target": ["buy"],
         "journeys": [4]}
    )  # fmt: skip
    fig = journeys.plot_sankey(nodes, links, title=f"Into {LINK}")
    assert fig.layout.title.text == "Into " + theme.esc(LINK)
    assert fig.data[0].node.label[0].startswith(theme.esc(LINK))
    assert not LIVE.search(fig.to_json().encode().decode("unicode_escape"))

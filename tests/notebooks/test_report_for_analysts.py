"""Every default report, executed on the small world, read as the analyst and the manager do (#26).

* every axis of every plotly figure names its unit; a percentage axis says what it is a share
  of (``"Click rate (% of messages sent)"``);
* long steps showed a progress line while they ran; the executed notebook keeps the final
  line (``Loading the data: 5 tables ... (1.7 s)``), the HTML report none of them;
* the summary is at the top of the executed notebook (the slot right below the parameters,
  filled by the summary cell through ``update_display``), and once only in the HTML report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from crm_helpers import config
from crm_helpers.report.answer import ANSWER_META, PENDING
from crm_helpers.report.progress import ELLIPSIS, PROGRESS_META
from tests.shared_runs import default_report

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("report_notebooks")]

PLOTLY = "application/vnd.plotly.v1+json"
NOTEBOOKS = sorted(p.stem for p in config.NOTEBOOKS_DIR.glob("*.ipynb"))
#: Traces without cartesian axes.
NON_CARTESIAN = {"sankey", "treemap", "table", "pie", "sunburst", "indicator", "icicle"}


@pytest.fixture(scope="module")
def executed(small_world, tmp_path_factory) -> dict[str, tuple[nbformat.NotebookNode, str, dict]]:
    """notebook -> (executed notebook, report HTML, metrics.json): each notebook's default
    report (tests/shared_runs.py: the run the browser and notebook tests read, once a session)."""
    runs = {}
    for name in NOTEBOOKS:
        res = default_report(tmp_path_factory, name, small_world)
        runs[name] = (
            nbformat.read(res.executed, as_version=4),
            Path(res.html).read_text(),
            json.loads(Path(res.metrics).read_text()),
        )
    return runs


def _outputs(nb):
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            yield i, out


def _text(title) -> str:
    if isinstance(title, dict):
        title = title.get("text")
    return (title or "").strip()


def axis_problems(fig: dict) -> list[str]:
    """The cartesian axes of a plotly figure (JSON) that do not name their unit."""
    layout = fig.get("layout", {})
    used = set()
    for trace in fig.get("data", []):
        if trace.get("type", "scatter") in NON_CARTESIAN:
            continue
        used.add("xaxis" + trace.get("xaxis", "x")[1:])
        used.add("yaxis" + trace.get("yaxis", "y")[1:])
    problems = []
    name = _text(layout.get("title")) or "(untitled figure)"
    for axis in sorted(used):
        spec = layout.get(axis, {})
        if spec.get("visible") is False:
            continue
        title = _text(spec.get("title"))
        if not title:
            problems.append(f"{name}: {axis} has no title")
        elif "%" in str(spec.get("tickformat", "")) and "% of" not in title:
            problems.append(f"{name}: {axis} {title!r} is a percentage but not '% of' what")
    return problems


def test_axis_problems_finds_a_missing_or_vague_title():
    bare = {"data": [{"type": "bar"}], "layout": {"xaxis": {"title": {"text": "Users"}}}}
    assert axis_problems(bare) == ["(untitled figure): yaxis has no title"]
    vague = {
        "data": [{"type": "scatter", "yaxis": "y2"}],
        "layout": {
            "xaxis": {"title": "Week"},
            "yaxis2": {"title": {"text": "click rate"}, "tickformat": ".1%"},
        },
    }
    assert axis_problems(vague) == [
        "(untitled figure): yaxis2 'click rate' is a percentage but not '% of' what"
    ]
    assert axis_problems({"data": [{"type": "sankey"}], "layout": {}}) == []


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_axis_names_its_unit(executed, notebook):
    nb, _, _ = executed[notebook]
    figures = [out["data"][PLOTLY] for _, out in _outputs(nb) if PLOTLY in out.get("data", {})]
    assert figures
    problems = [p for fig in figures for p in axis_problems(fig)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_long_steps_showed_progress(executed, notebook):
    nb, html, _ = executed[notebook]
    lines = [
        "".join(out["data"]["text/plain"])
        for _, out in _outputs(nb)
        if (out.get("metadata") or {}).get(PROGRESS_META)
    ]
    assert lines, "no progress line"
    assert re.fullmatch(
        r"Loading the data: [1-5] tables? \(.+\), validated \(\d+\.\d s\)", lines[0]
    )
    # every step ended: its line was replaced by the final one (nbclient applied the update)
    assert not [line for line in lines if line.endswith(ELLIPSIS)], lines
    assert not [line for line in lines if "failed" in line], lines
    for line in lines:  # none of it reaches the report
        assert line.split(":")[0] not in html, line


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_the_summary_is_at_the_top_of_the_executed_notebook(executed, notebook):
    nb, html, recorded = executed[notebook]
    slots = [(i, out) for i, out in _outputs(nb) if (out.get("metadata") or {}).get(ANSWER_META)]
    assert len(slots) == 1
    at, slot = slots[0]
    text = "".join(slot["data"]["text/markdown"])
    assert PENDING not in text  # filled by the summary cell
    for line in recorded["summary"]:
        assert f"- {line}" in text
    # right below the parameters: before the header, every figure and every table
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    first_other = min(
        i
        for i, out in _outputs(nb)
        if not {ANSWER_META, PROGRESS_META} & set(out.get("metadata") or {})
    )
    assert params < at < first_other
    # the report shows the summary once (its own cell at the top), not the slot as well
    assert "the full section" not in html


#: Notebooks that show money: their currency parameter is derived when empty (#26).
MONEY = ["campaign_performance", "data_overview", "experiment_readout", "funnel_dropoff",
         "segment_profiling"]  # fmt: skip


@pytest.mark.parametrize("notebook", MONEY)
def test_an_empty_currency_is_derived_and_said_so(executed, notebook):
    nb, html, recorded = executed[notebook]
    prov = recorded["provenance"]
    assert prov["parameters"]["currency"] == ""  # the small world's orders name none
    how = prov["derived"]["currency"]
    assert how.startswith("the orders have no currency column")
    assert f'none <em class="crm-derived">(derived: {how[:30]}' in html

"""Each notebook opens, in JupyterLab, with what it answers and where its answer is; the
report leaves that introduction out (it has its own title and summary at the top) (#26)."""

from __future__ import annotations

import re

import nbformat
import pytest

from crm_helpers import config
from crm_helpers.report import render

#: notebook -> the id of its answer's heading (as in tests/notebooks/test_report_browser.py)
ANSWER = {
    "campaign_performance": "Summary",
    "data_overview": "Summary",
    "experiment_readout": "Decision-memo",
    "funnel_dropoff": "Summary",
    "journey_mapping": "Summary",
    "lookalike_expansion": "Summary",
    "segment_profiling": "Summary",
}


@pytest.mark.parametrize("name", sorted(ANSWER))
def test_the_first_cell_says_what_the_notebook_answers(name):
    nb = nbformat.read(config.NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    first, second = nb.cells[0], nb.cells[1]
    assert first.cell_type == "markdown" and render.LAB_ONLY_TAG in first.metadata["tags"]
    assert "parameters" in second.metadata["tags"]  # right before the parameters
    assert re.search(r"\*\*What this notebook answers:\*\* \S.{30,}[?.]\n", first.source)
    assert f"(#{ANSWER[name]})" in first.source and f"crm run {name}" in first.source
    # the heading it links to is the summary cell's
    summary = [c for c in nb.cells if render.SUMMARY_TAG in c.metadata.get("tags", [])]
    heading = ANSWER[name].replace("-", " ")
    assert summary and re.search(heading, summary[0].source)


def test_the_report_leaves_lab_only_cells_out():
    nb = nbformat.v4.new_notebook()
    intro = nbformat.v4.new_markdown_cell("# Intro for Lab")
    intro.metadata["tags"] = [render.LAB_ONLY_TAG]
    nb.cells = [intro, nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("1")]
    out, _ = render.prepare(nb)
    assert [c.source for c in out.cells] == ["# Title", "1"]
    assert nb.cells[0].source == "# Intro for Lab"  # the input is not modified

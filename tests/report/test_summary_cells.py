"""Every analysis report's summary ends with the data-quality lines (issue #23 rows 4, 5, 8).

A manager reads the summary, not the data overview: implausible dates left out and lost
time order must be said there, by the one shared helper (crm_helpers.report.data_quality).
The data overview says them in its own summary (``overview_summary``).
"""

from __future__ import annotations

import nbformat
import pytest

from crm_helpers import config

NOTEBOOKS = sorted(p for p in config.NOTEBOOKS_DIR.glob("*.ipynb") if p.stem != "data_overview")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_summary_cell_adds_the_data_quality_lines(path):
    nb = nbformat.read(path, as_version=4)
    summary = [c for c in nb.cells if "summary" in c.get("metadata", {}).get("tags", [])]
    assert len(summary) == 1, "one cell tagged 'summary'"
    src = summary[0].source
    assert "data_quality.summary_lines(data)" in src
    assert src.index("data_quality.summary_lines") < src.index("metrics.summary(")

"""End to end: the funnel report run twice on a small world, then with a shorter conversion
window; the history holds both good runs and the index shows the conversion's change, read
from the two runs' ``metrics.json``, marked beyond noise and naming the changed parameter.
"""

from __future__ import annotations

import html
import json

import pytest

from crm_helpers.report import changes, history
from crm_helpers.report.run import run_notebook

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reports")]


def test_a_changed_parameter_shows_on_the_index_as_a_marked_change(small_world, tmp_path):
    out = tmp_path / "reports"
    folder = out / "funnel_dropoff"
    exports = {"export_dir": str(tmp_path / "exports")}
    first = run_notebook("funnel_dropoff", data_dir=small_world, out_dir=out, parameters=exports)
    assert first.ok, first.error
    index = (out / "index.html").read_text()
    assert "Since the previous run" not in index and html.escape(changes.RULE) not in index

    second = run_notebook(
        "funnel_dropoff",
        data_dir=small_world,
        out_dir=out,
        parameters={**exports, "conversion_window_days": 0.01},  # 15 minutes
    )
    assert second.ok, second.error
    runs = history.last(folder, 5)
    assert len(runs) == 2 == len(history.entries(folder))
    assert runs[-1].metrics == json.loads((folder / "metrics.json").read_text())
    before, after = (r.metrics["metrics"] for r in runs)
    assert after["overall_conversion"] < before["overall_conversion"]  # a shorter window

    index = (out / "index.html").read_text()
    card = index[index.index("funnel_dropoff/funnel_dropoff.html") :].split("</article>")[0]
    b, a = before["overall_conversion"], after["overall_conversion"]
    expected = f"conversion {100 * b:.1f}% → {100 * a:.1f}%, −{100 * (b - a):.1f} pt"
    assert html.escape(expected) in card
    lo = [r.metrics["metrics"]["steps"][-1] for r in runs]
    se = [(s["ci_high"] - s["ci_low"]) / (2 * 1.96) for s in lo]
    beyond = (b - a) > 1.96 * (se[0] ** 2 + se[1] ** 2) ** 0.5
    assert beyond and "▼" in card  # the test world's drop is far beyond its noise
    assert f"users entering {before['entered']:,}" in card  # the same entries either way
    assert "Parameters changed since then: conversion_window_days." in card
    assert index.count(html.escape(changes.RULE)) == 1

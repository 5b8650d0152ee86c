"""What moved since the previous run (:mod:`crm_helpers.report.changes`) on tiny inline
histories, and the index showing it, escaped.

The noise rule is checked against an independent reference: a two-proportion Wald z-test
(statsmodels) on the counts the intervals were made from.
"""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from statsmodels.stats import proportion as smprop

from crm_helpers.report import changes, history
from crm_helpers.report.index import collect_runs, render_index, write_index


def _funnel(rate: float, low: float | None, high: float | None, entered: int = 1000) -> dict:
    step = {"event": "purchase", "conversion_from_start": rate}
    if low is not None:
        step.update(ci_low=low, ci_high=high)
    return {
        "metrics": {
            "overall_conversion": rate,
            "entered": entered,
            "average_order_value": 50.0,
            "steps": [{"event": "visit"}, step],
        },
        "summary": ["a line"],
        "tables": {},
        "provenance": {"parameters": {"conversion_window_days": 7.0, "data_end": "2026-01-05"}},
    }


def _wald(k: int, n: int) -> tuple[float, float, float]:
    p = k / n
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    return p, p - half, p + half


def _one_change(before: dict, after: dict, notebook: str = "funnel_dropoff") -> changes.Change:
    got = changes.compare(changes.headlines(notebook, before), changes.headlines(notebook, after))
    return next(c for c in got if c.label == "conversion")


def test_the_brief_example_reads_as_asked():
    c = _one_change(_funnel(0.078, None, None), _funnel(0.071, None, None))
    assert changes.format_change(c) == "conversion 7.8% → 7.1%, −0.7 pt"
    assert c.significant is None  # no interval recorded: shown, not marked


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2"),
    [
        (1_560, 20_000, 1_420, 20_000),  # 7.8% -> 7.1% on 20,000 each: z = -2.7, marked
        (780, 10_000, 710, 10_000),  # the same on 10,000 each: z = -1.89, just noise
        (78, 1_000, 71, 1_000),  # on 1,000 each: noise
        (5_000, 10_000, 5_000, 10_000),  # no change
        (300, 2_000, 240, 2_000),  # 15% -> 12%: z = -2.8, marked
        (30, 200, 24, 200),  # on 200 each: noise
    ],
)
def test_the_mark_agrees_with_a_two_proportion_z_test(k1, n1, k2, n2):
    p1, lo1, hi1 = _wald(k1, n1)
    p2, lo2, hi2 = _wald(k2, n2)
    c = _one_change(_funnel(p1, lo1, hi1), _funnel(p2, lo2, hi2))
    _, pvalue = smprop.test_proportions_2indep(k2, n2, k1, n1, method="wald", compare="diff")
    assert c.significant == (pvalue < 0.05)
    assert math.isclose(c.delta, p2 - p1, abs_tol=1e-12)


def test_obvious_cases():
    moved = _one_change(_funnel(0.10, 0.09, 0.11), _funnel(0.20, 0.19, 0.21))
    assert moved.significant is True
    assert changes.format_change(moved) == "conversion 10.0% → 20.0%, +10.0 pt"
    still = _one_change(_funnel(0.10, 0.02, 0.18), _funnel(0.12, 0.04, 0.20))
    assert still.significant is False
    # a number without an interval in one of the runs is never marked
    assert _one_change(_funnel(0.10, None, None), _funnel(0.50, 0.49, 0.51)).significant is None


def test_counts_amounts_and_text_formats():
    before, after = _funnel(0.1, None, None, entered=1_000), _funnel(0.1, None, None, 1_250)
    got = changes.compare(
        changes.headlines("funnel_dropoff", before), changes.headlines("funnel_dropoff", after)
    )
    text = [changes.format_change(c) for c in got]
    assert text == [
        "conversion 10.0%, unchanged",
        "users entering 1,000 → 1,250, +250 (+25.0%)",
        "average order value 50.00, unchanged",
    ]
    verdict = changes.Change("verdict", "text", "ship", "hold", None, None, None)
    assert changes.format_change(verdict) == "verdict ship → hold"


def test_headlines_skip_what_a_run_did_not_record_and_unknown_reports():
    doc = {"metrics": {"rows.users": 10, "orders.orders": None}}
    assert [h.key for h in changes.headlines("data_overview", doc)] == ["users"]
    assert changes.headlines("not_a_notebook", doc) == []
    assert changes.headlines("funnel_dropoff", None) == []


def _experiment(diff: float, low: float, high: float, decision: str, metric="conversion") -> dict:
    arms = [
        {"metric": metric, "variant": "control", "diff": None},
        {
            "metric": metric,
            "variant": "<b>new</b>",
            "diff": diff,
            "diff_ci_low": low,
            "diff_ci_high": high,
            "chance_to_beat_control": 0.99,
        },
    ]
    verdict = {"decision": decision, "variant": "<b>new</b>"}
    return {"metrics": {"arms": arms, "verdict": verdict}, "provenance": {}}


def test_experiment_headlines_are_the_verdict_and_the_chosen_arms_difference():
    got = changes.compare(
        changes.headlines("experiment_readout", _experiment(0.030, 0.020, 0.040, "ship")),
        changes.headlines("experiment_readout", _experiment(0.002, -0.008, 0.012, "hold")),
    )
    assert [changes.format_change(c) for c in got] == [
        "verdict ship → hold",
        "conversion, <b>new</b> − control +3.0 pt → +0.2 pt, −2.8 pt",
    ]
    assert got[1].significant is True  # |−2.8 pt| > 1.96·√2·(1 pt / 1.96) = 1.41 pt
    revenue = changes.compare(
        changes.headlines("experiment_readout", _experiment(4.0, 2.0, 6.0, "ship", "revenue")),
        changes.headlines("experiment_readout", _experiment(2.5, 0.5, 4.5, "ship", "revenue")),
    )[1]
    assert (
        changes.format_change(revenue)
        == "revenue, <b>new</b> − control 4.00 → 2.50, −1.50 (−37.5%)"
    )
    assert revenue.significant is False  # 1.5 < 1.96·√2·(2 / 1.96) = 2.83


def _entry(doc: dict, when: datetime) -> history.Entry:
    return history.Entry(when=when, path=Path("x.json"), metrics=doc)


def test_changes_html_escapes_and_marks_and_names_changed_parameters():
    t0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    before = _experiment(0.030, 0.020, 0.040, "ship")
    after = _experiment(0.002, -0.008, 0.012, "hold")
    before["provenance"] = {
        "parameters": {"alpha": 0.05, "data_end": "a"},
        "derived": {"data_end": "x"},
    }
    after["provenance"] = {
        "parameters": {"alpha": 0.01, "data_end": "b"},
        "derived": {"data_end": "x"},
    }
    out = changes.changes_html("experiment_readout", [_entry(before, t0), _entry(after, t0)])
    assert "<b>" not in out and "&lt;b&gt;new&lt;/b&gt;" in out
    assert "▼" in out and "▲" not in out
    assert "Since the previous run (2026-01-05 06:00 UTC)" in out
    assert "Parameters changed since then: alpha." in out
    assert "Derived from the data and changed: data_end." in out
    assert changes.changes_html("experiment_readout", [_entry(after, t0)]) == ""


def _report(root: Path, name: str, docs: list[dict], status: str = "ok") -> None:
    folder = root / name
    folder.mkdir(parents=True)
    t0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    for i, doc in enumerate(docs):
        (folder / "metrics.json").write_text(json.dumps(doc))
        history.record(folder, folder / "metrics.json", t0 + timedelta(weeks=i))
    (folder / f"{name.split('--')[0]}.html").write_text("<html></html>")
    run = {"name": name.split("--")[0], "status": status, "finished_at": "2026-01-19T06:00:00"}
    if status != "ok":
        run["error"] = "cell 3: ValueError: boom"
    (folder / "run.json").write_text(json.dumps(run))


def test_the_index_shows_each_reports_change_and_states_the_rule_once(tmp_path):
    _report(tmp_path, "funnel_dropoff", [_funnel(0.10, 0.09, 0.11), _funnel(0.20, 0.19, 0.21)])
    _report(tmp_path, "funnel_dropoff--one_run", [_funnel(0.10, 0.09, 0.11)])
    _report(
        tmp_path,
        "funnel_dropoff--broke",
        [_funnel(0.10, 0.02, 0.18), _funnel(0.12, 0.04, 0.20)],
        status="failed",
    )
    page = render_index(collect_runs(tmp_path))
    assert page.count(html.escape(changes.RULE)) == 1
    cards = {c.split("<p class='meta'>")[1].split(" ")[0]: c for c in page.split("<article")[1:]}
    assert (
        "conversion 10.0% → 20.0%, +10.0 pt" in cards["funnel_dropoff"]
        and "▲" in cards["funnel_dropoff"]
    )
    assert "Since the previous run" not in cards["funnel_dropoff--one_run"]
    broke = cards["funnel_dropoff--broke"]  # failed: the last good report's change, unmarked
    assert "conversion 10.0% → 12.0%, +2.0 pt" in broke and "▲" not in broke
    write_index(tmp_path)
    assert "conversion 10.0% → 20.0%, +10.0 pt" in (tmp_path / "index.html").read_text()


def test_no_rule_line_without_a_history_to_compare():
    assert html.escape(changes.RULE) not in render_index([])

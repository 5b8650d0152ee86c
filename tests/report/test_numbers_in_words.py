"""Numbers in words: memo means as rates or money, parameters as an analyst typed them."""

from __future__ import annotations

import pytest

from crm_helpers.experiments.narrative import means_in_words
from crm_helpers.report.provenance import shown_value, to_html


@pytest.mark.parametrize(
    ("metric", "arm", "control", "words"),
    [
        ("conversion", 0.05826, 0.04506, "5.8% vs 4.5% converted"),
        ("event:purchase", 0.1, 0.2, "10.0% vs 20.0% with a purchase event"),
        ("revenue", 43.7712, 1234.5, "43.77 vs 1,234.50 revenue per user"),
        ("orders", 1.2345, 1.05, "1.23 vs 1.05 per user"),
        ("not a metric", 7.0, 2.0, "7 vs 2 per user"),
    ],
)
def test_means_in_words(metric, arm, control, words):
    assert means_in_words(metric, arm, control) == words


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("analysis_window_days", 14.0, "14 days"),
        ("analysis_window_days", 1.0, "1 day"),
        ("pre_period_days", 0.5, "0.5 days"),
        ("alpha", 0.05, "0.05"),
        ("sequential_tuning", 5000.0, "5000"),
        ("eligible_audience", 250000, "250,000"),
        ("winsorize_percentile", 99.0, "99"),
        (
            "planned_split",
            {"control": 1 / 3, "a": 1 / 3, "b": 1 / 3},
            "one third each (control, a, b)",
        ),
        ("planned_split", {"treatment": 0.8, "holdout": 0.2}, "treatment: 0.8, holdout: 0.2"),
        ("x", 0.3333333333333333, "0.3333"),
        ("data_dir", "", '"" (default)'),
        ("steps", ["a", "b"], "['a', 'b']"),
        ("revenue_is_gross", False, "False"),
    ],
)
def test_parameters_shown_as_typed(name, value, words):
    assert shown_value(value, name) == words


def test_the_header_shows_parameters_as_typed():
    page = to_html(
        {"title": "T", "parameters": {"analysis_window_days": 14.0}, "versions": {}, "git": {}}
    )
    assert "14 days" in page and "14.0" not in page

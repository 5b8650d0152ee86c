"""The experiment readout's displayed tables: one small table per metric, rates as
percentages, the control row 'baseline', winsorized rows footnoted (#26)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from crm_helpers.experiments import views


def _rows(page: str) -> list[list[str]]:
    return [
        re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r) for r in re.findall(r"<tr>(.*?)</tr>", page)
    ]


def _arms() -> pd.DataFrame:
    nan = np.nan
    cols = ["variant", "metric", "role", "n", "mean", "diff", "diff_ci_low", "diff_ci_high",
            "rel_lift", "rel_ci_low", "rel_ci_high", "p_value", "p_adjusted",
            "chance_to_beat_control", "non_inferior"]  # fmt: skip
    rows = [
        ["control", "conversion", "primary", 7648, 0.04506] + [nan] * 10,
        ["treatment", "conversion", "primary", 7650, 0.05826, 0.0132, 0.006, 0.02,
         0.293, 0.116, 0.47, 0.0002, 0.0004, 0.999, nan],
        ["control", "winsorized:revenue", "winsorized", 7648, 3.5] + [nan] * 10,
        ["treatment", "winsorized:revenue", "winsorized", 7650, 3.9, 0.4, -0.1, 0.9,
         0.114, -0.03, 0.26, 0.12, nan, 0.94, nan],
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def test_results_one_table_per_metric_in_reader_terms():
    page = views.results(_arms(), "control", currency="€").data
    assert page.count("<table") == 4  # two metrics, each with its collapsed p-values
    assert "conversion — primary metric" in page
    assert "revenue, winsorized — robustness check" in page
    conv, rev = page.split("<h4")[1:3]
    got = _rows(conv.split("<details")[0])
    assert got[0] == ["Arm", "Users", "Rate", "Difference in rate (95% interval)",
                      "Relative lift (95% interval)", "p-value (corrected)",
                      "Chance to beat control"]  # fmt: skip
    assert got[1] == ["control", "7,648", "4.5%", "baseline", "baseline", "baseline", "baseline"]
    assert got[2] == ["treatment", "7,650", "5.8%", "+1.3% [+0.6%, +2.0%]",
                      "+29.3% [+11.6%, +47.0%]", "&lt; 0.001", "99.9%"]  # fmt: skip
    got = _rows(rev.split("<details")[0])
    assert got[2][2] == "€3.90" and got[2][3] == "€0.40 [-€0.10, €0.90]" and got[2][5] == "n/a*"
    assert "* p-value (corrected): winsorized metrics" in rev
    assert "NaN" not in page and "nan" not in page


def test_srm_without_a_plan_says_not_checked_once():
    table = pd.DataFrame(
        {"variant": ["a", "b"], "planned_share": [np.nan] * 2, "users": [42, 163],
         "expected_users": [np.nan] * 2, "observed_share": [0.204878, 0.795122],
         "srm_p_value": [np.nan] * 2}
    )  # fmt: skip
    page = views.srm(table).data
    assert _rows(page)[1] == ["a", "n/a*", "42", "n/a*", "20.5%", "n/a*"]
    assert page.count("not checked") == 1

"""The presentation layer: one test per formatting rule, on tiny tables whose answer is obvious."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from crm_helpers.report import labels, tables


def _rows(page: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r) for r in rows]


def test_headers_come_from_the_one_vocabulary_and_unknown_names_are_put_in_words():
    df = pd.DataFrame({"chance_to_beat_control": [0.5], "avg_order_value": [1.5], "after_x": [1]})
    assert _rows(tables.to_html(df))[0] == [
        "Chance to beat control",
        "Average order value",
        "After x",
    ]
    head = _rows(tables.to_html(df, labels={"after_x": "Later"}))[0]
    assert head[2] == "Later"
    assert labels.label("n") == "Users" and labels.label("step_p_value") == "Step p value"


def test_no_row_index_even_for_a_shuffled_or_named_index():
    df = pd.DataFrame({"x": [1, 2]}, index=[5, 3])  # the row numbers of a sorted frame
    assert _rows(tables.to_html(df)) == [["X"], ["1"], ["2"]]
    named = pd.DataFrame({"n": [1, 2]}, index=pd.Index(["a", "b"], name="segment"))
    assert _rows(tables.to_html(named)) == [["Segment", "Users"], ["a", "1"], ["b", "2"]]
    got = _rows(tables.to_html(pd.DataFrame({"x": [1, 2]})))
    assert got == [["X"], ["1"], ["2"]]


def test_rates_shares_and_lifts_as_percentages():
    df = pd.DataFrame({"base_share": [0.333333, 0.076259], "rel_lift": [0.293, -0.04], "r": [1, 0]})
    got = _rows(tables.to_html(df, percent=["r"]))
    assert got[1] == ["33.3%", "+29.3%", "100.0%"]
    assert got[2] == ["7.6%", "-4.0%", "0.0%"]
    # a lift of -0.0001 is no lift, not "-0.0%"
    assert _rows(tables.to_html(pd.DataFrame({"rel_lift": [-0.0001]})))[1] == ["0.0%"]


def test_pvalues_never_print_as_zero():
    df = pd.DataFrame({"p_value": [0.0, 0.0042, 0.5], "p_adjusted": [1e-9, 0.01, 1.0]})
    got = _rows(tables.to_html(df))
    assert [r[0] for r in got[1:]] == ["&lt; 0.001", "0.004", "0.500"]
    assert [r[1] for r in got[1:]] == ["&lt; 0.001", "0.010", "1.000"]
    assert "0.0000" not in tables.to_html(df)


def test_counts_get_thousands_separators_and_whole_floats_no_decimals():
    df = pd.DataFrame({"users": [7648, 12], "orders": [7648.0, 3.0], "mean": [1234.567, 0.5]})
    got = _rows(tables.to_html(df))
    assert got[1] == ["7,648", "7,648", "1,234.57"] and got[2] == ["12", "3", "0.50"]


def test_money_with_a_currency():
    df = pd.DataFrame({"revenue": [1234.5, -20.0], "aov": [3.25, 1.0]})
    got = _rows(tables.to_html(df, money=["revenue", "aov"], currency="€"))
    assert got[1] == ["€1,234.50", "€3.25"] and got[2] == ["-€20.00", "€1.00"]
    assert _rows(tables.to_html(df, money=["revenue"], currency="EUR"))[1][0] == "1,234.50 EUR"
    assert tables.format_money(2.5) == "2.50"


def test_an_interval_is_one_cell_under_the_value_label():
    df = pd.DataFrame(
        {"rel_lift": [0.293, np.nan], "rel_ci_low": [0.116, np.nan], "rel_ci_high": [0.47, 0.1]}
    )
    got = _rows(tables.to_html(df, intervals={"rel_lift": ("rel_ci_low", "rel_ci_high")}))
    assert got[0] == ["Relative lift (95% interval)"]
    assert got[1] == ["+29.3% [+11.6%, +47.0%]"]
    assert got[2] == ["–"]
    with pytest.raises(KeyError, match="nope"):
        tables.to_html(df, intervals={"rel_lift": ("rel_ci_low", "nope")})


def test_the_control_row_says_baseline_and_no_cell_is_nan():
    df = pd.DataFrame(
        {"variant": ["control", "treatment"], "mean": [0.045, 0.058], "diff": [np.nan, 0.013]}
    )
    page = tables.to_html(df, baseline={"variant": "control"})
    got = _rows(page)
    assert got[1] == ["control", "0.04", "baseline"] and got[2][2] == "0.01"
    page = tables.to_html(df)  # without a baseline a missing value is a dash
    assert _rows(page)[1][2] == "–" and "nan" not in page.lower()
    assert _rows(tables.to_html(df, baseline=lambda d: d["variant"] == "control"))[1][2] == (
        "baseline"
    )


def test_a_value_absent_on_purpose_has_a_footnote():
    df = pd.DataFrame(
        {
            "variant": ["control", "treatment", "treatment"],
            "metric": ["revenue", "revenue", "revenue (winsorized)"],
            "p_adjusted": [np.nan, 0.02, np.nan],
        }
    )
    why = "winsorized metrics are a robustness check, not corrected with the decision's tests"
    page = tables.to_html(df, baseline={"variant": "control"}, notes={"p_adjusted": why})
    got = _rows(page)
    assert got[1][2] == "baseline" and got[2][2] == "0.020" and got[3][2] == "n/a*"
    assert f"* p-value (corrected): {html.escape(why)}" in page
    # no footnote when nothing is absent but the baseline
    assert why not in tables.to_html(
        df.iloc[:2], baseline={"variant": "control"}, notes={"p_adjusted": why}
    )


def test_detail_columns_go_into_a_collapsed_block_with_their_keys():
    df = pd.DataFrame({"variant": ["a", "b"], "mean": [1.5, 2.5], "theta": [0.25, 0.75]})
    page = tables.to_html(df, details=["theta"], keys=["variant"])
    main, rest = page.split("<details", 1)
    assert _rows(main)[0] == ["Arm", "Mean per user"]
    assert "<summary>More columns</summary>" in rest and "open" not in rest.split(">")[0]
    assert _rows(rest)[0] == ["Arm", "CUPED coefficient"] and _rows(rest)[2] == ["b", "0.75"]


def test_cells_are_escaped_and_split_tables_are_headed():
    df = pd.DataFrame({"metric": ["<i>x</i>", "y"], "n": [1, 2]})
    out = tables.show_split(df, "metric", title=lambda m: f"Metric {m}").data
    assert "<i>" not in out and out.count("<table") == 2
    assert "<h4 class='crm-table-title'>Metric &lt;i&gt;x&lt;/i&gt;</h4>" in out


def test_one_footnote_per_reason():
    df = pd.DataFrame(
        {"variant": ["a", "b"], "planned_share": [np.nan] * 2, "srm_p_value": [np.nan] * 2}
    )
    why = "no planned split was given"
    page = tables.to_html(df, notes={"planned_share": why, "srm_p_value": why})
    assert page.count(why) == 1 and _rows(page)[1] == ["a", "n/a*", "n/a*"]
    assert "* Planned share, p-value (sample ratio): " in page


def test_an_empty_table_says_so_and_keeps_its_headers():
    assert "No rows." in tables.to_html(pd.DataFrame())
    page = tables.to_html(pd.DataFrame({"n": pd.Series([], dtype="int64")}))
    assert _rows(page) == [["Users"]]

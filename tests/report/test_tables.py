"""Report tables: percentages, p-values as "< 0.001", no index column, escaped cells."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from crm_helpers.report import tables


def _cells(page: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r) for r in rows]


def test_formats_by_column_kind():
    df = pd.DataFrame(
        {
            "group": ["<b>ios</b>", "web"],
            "users": np.array([12345, 7], dtype="int64"),
            "rate": [0.12345, 1.0],
            "q_value": [3.6e-225, 0.04567],
            "step_p_value": [0.0, np.nan],
            "value": [1234.5678, -0.5],
            "significant": [True, False],
            "period": pd.to_datetime(["2024-01-01", "2024-01-08"]),
        }
    )
    got = _cells(tables.to_html(df, percent=["rate"]))
    assert got[0] == ["Group", "Users", "Rate", "q-value", "Step p value", "Value", "Significant",
                      "Period"]  # no index column, labels not code names  # fmt: skip
    assert got[1] == ["&lt;b&gt;ios&lt;/b&gt;", "12,345", "12.3%", "&lt; 0.001", "&lt; 0.001",
                      "1,234.57", "yes", "2024-01-01"]  # fmt: skip
    assert got[2] == ["web", "7", "100.0%", "0.046", "–", "-0.50", "no", "2024-01-08"]


def test_index_becomes_a_column_and_times_keep_their_clock():
    df = pd.DataFrame({"n": [1, 2]}, index=pd.Index(["a", "b"], name="table"))
    df["ts"] = [pd.Timestamp("2024-01-01 10:30"), pd.Timestamp("2024-01-02")]
    got = _cells(tables.to_html(df))
    assert got[0] == ["Table", "Users", "Ts"] and got[1] == ["a", "1", "2024-01-01 10:30"]


def test_rows_are_capped_and_unknown_percent_columns_fail():
    df = pd.DataFrame({"x": range(60)})
    page = tables.to_html(df, max_rows=50)
    assert page.count("<tr>") == 51 and "10 more rows" in page
    with pytest.raises(KeyError, match="nope"):
        tables.to_html(df, percent=["nope"])
    assert tables.format_pvalue(0.001) == "0.001" and tables.format_pvalue(0.000999) == "< 0.001"


def test_holm_adjusted_p_values_read_as_p_values():
    # the campaign message tests' Holm columns showed "0.00" before they were named p-values
    df = pd.DataFrame(
        {"arm": ["a", "b"], "click_rate_p_holm": [1e-9, 0.0123], "p_adjusted": [0.5, 2e-4]}
    )
    got = _cells(tables.to_html(df, labels={"click_rate_p_holm": "p, clicks (Holm)"}))
    assert [row[1:] for row in got[1:]] == [["&lt; 0.001", "0.500"], ["0.012", "&lt; 0.001"]]
    assert tables.is_pvalue_column("conversion_rate_p_holm") and tables.is_pvalue_column(
        "click_rate_p"
    )
    assert not tables.is_pvalue_column("top_share")

"""Money shown with its currency: tables, memos, axis titles, the derived parameter (#26)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from crm_helpers import load, overview
from crm_helpers.funnels import narrative as funnel_narrative
from crm_helpers.plots import funnels as funnel_plots
from crm_helpers.plots import theme
from crm_helpers.report import params, provenance, tables
from crm_helpers.report.currency import check_currency, choose_currency, money


@pytest.mark.parametrize(
    ("currency", "shown"),
    [("EUR", "1,234.50 EUR"), ("€", "€1,234.50"), ("", "1,234.50"), ("GBP", "-7.00 GBP")],
)
def test_money_cells_carry_the_currency(currency, shown):
    value = -7.0 if shown.startswith("-") else 1234.5
    df = pd.DataFrame({"segment": ["a"], "revenue": [value], "customers": [3]})
    html = tables.to_html(df, money=["revenue"], currency=currency)
    assert f"<td class='num'>{shown}</td>" in html
    assert "<td class='num'>3</td>" in html  # a count is not money


def test_money_in_words():
    assert money(1234.4, "EUR") == "1,234 EUR"
    assert money(-1234.6, "€") == "-€1,235"
    assert money(0.2, "") == "0"
    assert money(-0.2, "EUR") == "0 EUR"  # no minus zero


@pytest.mark.parametrize("value", ["EUR", "usd", "€", "$", "CHF"])
def test_currency_codes_and_symbols_are_accepted(value):
    assert check_currency(value) is None


@pytest.mark.parametrize("value", ["<b>x</b>", "EUR ", "E U R", "EURO_DOLLAR", "12", "€€€€€€€€€"])
def test_other_text_is_refused_as_a_currency(value):
    assert "currency code" in check_currency(value)


def test_a_run_with_a_bad_currency_is_refused_before_it_starts():
    with pytest.raises(ValueError, match="parameter 'currency' must be a currency code"):
        params.check_parameters("funnel_dropoff", {"currency": "<script>"}, {"currency": ""}, {})
    assert params.check_parameters("funnel_dropoff", {"currency": "EUR"}, {"currency": ""}, {})


def _world_with_currency(src, dst, values):
    dst.mkdir()
    for f in src.glob("*.parquet"):
        shutil.copy(f, dst / f.name)
    if values is not None:
        orders = pd.read_parquet(dst / "orders.parquet")
        orders["currency"] = [values[i % len(values)] for i in range(len(orders))]
        orders.to_parquet(dst / "orders.parquet", index=False)
    return dst


def test_the_currency_is_derived_from_the_orders(small_world, tmp_path):
    one = load(_world_with_currency(small_world, tmp_path / "one", ["EUR", None, " EUR "]))
    assert choose_currency(one) == ("EUR", "the one value of the orders' currency column")
    mixed = load(_world_with_currency(small_world, tmp_path / "mixed", ["EUR", "GBP"]))
    value, how = choose_currency(mixed)
    assert value == "" and "mix currencies (EUR, GBP)" in how
    none = load(_world_with_currency(small_world, tmp_path / "none", None))
    value, how = choose_currency(none)
    assert value == "" and how.startswith("the orders have no currency column")


def test_a_derived_empty_currency_reads_none_with_why():
    how = "the orders have no currency column: amounts are shown without a currency"
    html = provenance._kv_table({"currency": "", "title": ""}, "Parameters", {"currency": how})
    assert "<td style='text-align:left'>none <em class='crm-derived'>(derived: the orders" in html
    assert "&quot;&quot; (default)" in html  # a plain empty parameter still says so


def test_memos_and_axes_name_the_currency():
    sizing = pd.DataFrame(
        {
            "step": [1, 2],
            "event": ["visit", "cart"],
            "audience": [900, 120],
            "net_value": [-5.0, 2345.6],
        }
    )
    table = pd.DataFrame(
        {"step": [1, 2, 3], "event": ["visit", "cart", "buy"], "users": [1000, 100, 10],
         "ci_low": [1.0, 0.08, 0.005], "ci_high": [1.0, 0.12, 0.02]}
    )  # fmt: skip
    lines = funnel_narrative.funnel_summary(table, None, sizing, currency="EUR")
    assert any("expected net value 2,346 EUR." in line for line in lines)
    fig = funnel_plots.plot_sizing(sizing, currency="EUR")
    assert fig.layout.yaxis.title.text == "Expected net value (EUR)"
    assert funnel_plots.plot_sizing(sizing).layout.yaxis.title.text == (
        f"Expected net value ({theme.NO_CURRENCY})"
    )
    row = pd.Series(
        {"orders": 3, "purchases": 3, "customers": 2, "users_with_orders": 2, "refunds": 0,
         "revenue": 1500.0, "average_order_value": 500.0, "revenue_per_customer": 750.0,
         "orders_per_customer": 1.5}
    )  # fmt: skip
    words = overview._order_lines(row, "€")
    assert (
        words[0]
        == "3 orders by 2 customers bring €1,500.00 in revenue (no refunds or cancellations)."
    )
    assert "worth €500.00 on average" in words[1]

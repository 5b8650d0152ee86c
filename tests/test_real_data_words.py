"""The data overview's headline sentences name what they count, on real-shaped data.

Every figure of the orders sentences is checked against plain pandas on the raw frames: on
the committed Online Retail II extract (invoice lines with cancellations, mapped by its
``schema.yaml``), on the orders-only and events-only shapes of
``tests/notebooks/test_foreign_shapes.py``, on the small synthetic world and on tiny inline
fixtures whose answers are obvious. The words: *customers* are users with at least one
purchase (an order with ``revenue >= 0``), *users* everyone in the users table; revenue is
said to be gross or net; the average order names what it is the mean of.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from crm_helpers import overview
from crm_helpers.data import load
from crm_helpers.segments import core
from tests.notebooks.test_foreign_shapes import SHAPES

SAMPLE = Path(__file__).parent / "data" / "online_retail_ii_sample"


def _reference(orders: pd.DataFrame) -> dict[str, float]:
    """The order figures by hand: one row per order with ``user_id`` and ``revenue``."""
    buy = orders["revenue"] >= 0
    customers = orders.loc[buy, "user_id"].nunique()
    return {
        "orders": len(orders),
        "purchases": int(buy.sum()),
        "customers": customers,
        "users_with_orders": orders["user_id"].nunique(),
        "revenue": orders["revenue"].sum(),
        "gross_revenue": orders.loc[buy, "revenue"].sum(),
        "average_order_value": orders.loc[orders["revenue"] > 0, "revenue"].mean(),
        "revenue_per_customer": orders["revenue"].sum() / customers,
        "orders_per_customer": buy.sum() / customers,
        "refunds": int((~buy).sum()),
        "refund_revenue": orders.loc[~buy, "revenue"].sum(),
    }


def _line_orders(lines: pd.DataFrame) -> pd.DataFrame:
    """Online Retail II lines -> orders, by hand: guest lines dropped, one order per invoice."""
    lines = lines[lines["Customer ID"].notna()]
    amount = lines["Quantity"] * lines["Price"]
    g = lines.assign(amount=amount).groupby("Invoice")
    return pd.DataFrame({"user_id": g["Customer ID"].first(), "revenue": g["amount"].sum()})


def _summary(data) -> tuple[pd.Series, str]:
    orders = overview.order_summary(data)
    lines = overview.overview_summary(
        overview.table_summary(data),
        overview.event_counts(data) if data.has("events") else None,
        overview.quality_table(data),
        orders=orders,
    )
    return orders.iloc[0], " ".join(lines)


def _check_words(got: pd.Series, text: str, want: dict[str, float]) -> None:
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-9), k
    n, c, p = want["orders"], want["customers"], want["purchases"]
    if want["refunds"]:
        assert (
            f"{n:,} orders: {p:,} purchases by {c:,} customers (users with at least one purchase)"
            in text
        )
        assert f"bring {want['gross_revenue']:,.2f} gross;" in text
        assert f"{want['refunds']:,} refunds/cancellations (orders with negative revenue)" in text
        assert f"take back {-want['refund_revenue']:,.2f}" in text
        assert f"leaving {want['revenue']:,.2f} in net revenue" in text
        only = want["users_with_orders"] - c
        assert (f"({only:,} users with only refunds/cancellations are not counted" in text) == (
            only > 0
        )
    else:
        assert (
            f"{n:,} orders by {c:,} customers bring {want['revenue']:,.2f} in revenue (no refunds"
            in text
        )
    assert (
        f"An order with positive revenue is worth {want['average_order_value']:,.2f} on average (gross"
        in text
    )
    assert f"net revenue ÷ customers = {want['revenue_per_customer']:,.2f}" in text
    assert f"purchases ÷ customers = {want['orders_per_customer']:,.2f}" in text
    # the bare claim the issue found false (net revenue / orders != the figure) is gone
    assert "an order is worth" not in text


def test_order_lines_extract_every_figure_named(tmp_path):
    want = _reference(_line_orders(pd.read_parquet(SAMPLE / "online_retail_ii.parquet")))
    # the extract is the case the words must survive: cancellations, cancellation-only users
    assert want["refunds"] > 0 and want["users_with_orders"] > want["customers"]
    assert want["revenue"] / want["orders"] != pytest.approx(want["average_order_value"], rel=0.01)
    got, text = _summary(load(SAMPLE))
    _check_words(got, text, want)
    assert (want["orders"], want["customers"], want["users_with_orders"]) == (340, 270, 307)


def test_overview_customers_are_the_segment_reports_customers():
    """One word, one population: the overview's customers = the RFM table's at the last order."""
    data = load(SAMPLE)
    got = overview.order_summary(data).iloc[0]
    rfm = core.rfm_table(data.orders, core.last_order_date(data.orders))
    assert int(rfm.count().execute()) == got["customers"]


@pytest.mark.parametrize("shape", ["orders_only", "order_lines"])
def test_foreign_shapes(shape, tmp_path):
    frames = SHAPES[shape](tmp_path)
    o = frames["orders"]
    if "user_id" not in o:  # order_lines: the shape keeps invoices only; rebuild with ids
        o = _line_orders(pd.read_parquet(tmp_path / "online_retail_ii.parquet"))
    got, text = _summary(load(tmp_path))
    _check_words(got, text, _reference(o))


def test_events_only_shape_says_whose_share(tmp_path):
    frames = SHAPES["events_only"](tmp_path)
    ev = frames["events"]
    data = load(tmp_path)
    lines = overview.overview_summary(
        overview.table_summary(data), overview.event_counts(data), overview.quality_table(data)
    )
    text = " ".join(lines)
    top = ev["event"].value_counts()
    first = top.index[0]
    assert (
        f"The most frequent of {ev['event'].nunique()} event types (share of all events): " in text
    )
    assert f"{first} ({top.iloc[0] / len(ev):.0%})" in text
    assert "per user" not in text  # no users table: no per-user figure
    assert "customers" not in text and "revenue" not in text


def test_events_per_user_names_the_users_table(tmp_path):
    users = pd.DataFrame({"user_id": [1, 2, 3, 4]})
    events = pd.DataFrame(
        {"user_id": [1, 1, 2, 9, 9, 9], "event": ["a"] * 6,  # user 9 is not in users
         "ts": pd.date_range("2024-01-01", periods=6, freq="h").astype("datetime64[us]")}
    )  # fmt: skip
    users.to_parquet(tmp_path / "users.parquet", index=False)
    events.to_parquet(tmp_path / "events.parquet", index=False)
    data = load(tmp_path)
    text = " ".join(
        overview.overview_summary(
            overview.table_summary(data), overview.event_counts(data), overview.quality_table(data)
        )
    )
    assert "That is 1.5 events per user of the users table on average." in text  # 6 / 4


def test_tiny_orders_zero_revenue_and_no_refunds(tmp_path):
    """A free order is a purchase (counts its customer) but not in the positive-order mean."""
    orders = pd.DataFrame(
        {"order_id": [1, 2, 3, 4], "user_id": [1, 1, 2, 3], "revenue": [10.0, 30.0, 20.0, 0.0],
         "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"])}
    ).astype({"ts": "datetime64[us]"})  # fmt: skip
    orders.to_parquet(tmp_path / "orders.parquet", index=False)
    got, text = _summary(load(tmp_path))
    want = _reference(orders)
    assert (want["customers"], want["purchases"], want["average_order_value"]) == (3, 4, 20.0)
    _check_words(got, text, want)
    assert "4 orders by 3 customers bring 60.00 in revenue (no refunds or cancellations)." in text
    assert "net revenue ÷ customers = 20.00 and purchases ÷ customers = 1.33" in text


def test_small_synthetic_world(small_world):
    o = pd.read_parquet(small_world / "orders.parquet", columns=["user_id", "revenue"])
    got, text = _summary(load(small_world))
    _check_words(got, text, _reference(o))
    users = len(pd.read_parquet(small_world / "users.parquet", columns=["user_id"]))
    assert got["customers"] < users  # customers are buyers, a subset of the users
    assert re.search(rf"\b{users:,} users\b", text)  # the table count says users


def test_no_table_of_the_contract_is_said_not_left_blank():
    """A directory whose files the contract does not name (the export's own file name)."""
    tables = pd.DataFrame(columns=["table", "rows", "columns", "min_ts", "max_ts"])
    quality = pd.DataFrame(columns=["table", "column", "check", "severity", "count", "message"])
    lines = overview.overview_summary(tables, None, quality)
    assert lines[0] == "The data set holds no table of the data contract (data/README.md)."


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def test_order_figures_on_each_engine(engine, request):
    """The buyer count (a conditional distinct count) is the same query on DuckDB and Spark."""
    con = request.getfixturevalue("spark_con") if engine == "spark" else engine
    got = overview.order_summary(load(SAMPLE, engine=con)).iloc[0]
    want = _reference(_line_orders(pd.read_parquet(SAMPLE / "online_retail_ii.parquet")))
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-9), k

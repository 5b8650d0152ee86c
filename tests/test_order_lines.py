"""Orders that arrive as lines (schema.yaml ``order_lines``), on a committed extract of the
Online Retail II export (tests/data/online_retail_ii_sample, CC BY 4.0, see its README),
checked against the same aggregation done independently in pandas."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.data.validate import DataContractError
from crm_helpers.schema import Schema

SAMPLE = Path(__file__).parent / "data" / "online_retail_ii_sample"


@pytest.fixture(scope="module")
def lines() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE / "online_retail_ii.parquet")


@pytest.fixture(scope="module")
def data():
    return load(SAMPLE)


def test_lines_become_one_order_per_invoice(data, lines):
    kept = lines[lines["Customer ID"].notna()]
    want = (
        kept.assign(amount=kept.Quantity * kept.Price)
        .groupby("Invoice")
        .agg(revenue=("amount", "sum"), quantity=("Quantity", "sum"), n=("Quantity", "size"),
             user=("Customer ID", "first"), ts=("InvoiceDate", "min"))
    )  # fmt: skip
    got = data.orders.to_pandas().set_index("order_id").sort_index()
    assert list(got.index) == sorted(want.index)
    np.testing.assert_allclose(got["revenue"], want["revenue"], rtol=1e-12, atol=1e-9)
    assert (got["quantity"] == want["quantity"]).all() and (got["lines"] == want["n"]).all()
    assert (got["user_id"] == want["user"].astype("int64")).all()
    # local London time -> UTC: winter dates are unchanged, summer (BST) dates move back 1 h
    local = pd.to_datetime(want["ts"]).dt.tz_localize("Europe/London", ambiguous=True)
    utc = local.dt.tz_convert("UTC").dt.tz_localize(None)
    assert (got["ts"] == utc).all()
    # cancellations: C invoices, kept as negative-revenue orders and reported
    cancelled = got.index.str.startswith("C")
    assert cancelled.sum() > 0 and (got.loc[cancelled, "revenue"] < 0).all()
    q = data.quality.to_frame().set_index("check")
    assert q.loc["negative_revenue", "count"] == int((got["revenue"] < 0).sum())


def test_lines_without_a_customer_are_set_aside_with_a_warning(data, lines):
    q = data.quality.to_frame().set_index("check")
    n_guest = int(lines["Customer ID"].isna().sum())
    assert n_guest > 0
    assert q.loc["order_lines_without_customer", "severity"] == "warning"
    assert q.loc["order_lines_without_customer", "count"] == n_guest
    assert data.orders.user_id.isnull().sum().to_pyarrow().as_py() == 0


def test_without_the_mapping_the_lines_are_duplicate_order_ids(tmp_path):
    shutil.copy(SAMPLE / "online_retail_ii.parquet", tmp_path / "orders.parquet")
    schema = Schema(
        columns={"orders": {"order_id": "Invoice", "user_id": "Customer ID", "ts": "InvoiceDate",
                            "revenue": "Price"}}
    )  # fmt: skip
    with pytest.raises(DataContractError, match="duplicate"):
        load(tmp_path, schema=schema)


def test_order_lines_mapping_errors(tmp_path):
    with pytest.raises(ValueError, match="quantity and unit_price"):
        Schema(order_lines={"quantity": "Quantity"})
    with pytest.raises(ValueError, match="quantity and unit_price"):
        Schema(order_lines={"quantity": "Q", "unit_price": "P", "discount": "D"})
    shutil.copy(SAMPLE / "online_retail_ii.parquet", tmp_path / "orders.parquet")
    schema = Schema(
        columns={"orders": {"user_id": "Customer ID", "ts": "InvoiceDate"}},
        order_lines={"order_id": "Invoice", "quantity": "Qty", "unit_price": "Price"},
    )
    with pytest.raises(DataContractError, match="'Qty'"):
        load(tmp_path, schema=schema)


@pytest.mark.spark
def test_spark_aggregates_the_same_orders(data, spark_con):
    sp = load(SAMPLE, engine=spark_con)
    cols = ["order_id", "user_id", "ts", "revenue", "quantity", "lines"]
    a = data.orders.to_pandas()[cols].sort_values("order_id").reset_index(drop=True)
    b = sp.orders.to_pandas()[cols].sort_values("order_id").reset_index(drop=True)
    np.testing.assert_allclose(a.pop("revenue"), b.pop("revenue"), rtol=1e-12, atol=1e-9)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    q = sp.quality.to_frame().set_index("check")
    assert (
        q.loc["order_lines_without_customer", "count"]
        == data.quality.to_frame().set_index("check").loc["order_lines_without_customer", "count"]
    )

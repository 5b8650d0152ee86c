"""Overview of data sets with one table: orders and assignments summaries against pandas,
and a users table with only an id."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_helpers import overview
from crm_helpers.data import load

ORDERS = pd.DataFrame(
    {
        "order_id": [1, 2, 3, 4, 5],
        "user_id": [10, 10, 11, 12, 12],
        "ts": pd.to_datetime(
            ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
        ),
        "revenue": [20.0, 30.0, 50.0, -30.0, 10.0],  # order 4: a refund
    }
).astype({"ts": "datetime64[us]"})
ASSIGNMENTS = pd.DataFrame(
    {
        "experiment_id": ["e1", "e1", "e1", "e2"],
        "user_id": [1, 2, 3, 1],
        "variant": ["control", "treatment", "treatment", "a"],
        "assigned_at": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]),
    }
).astype({"assigned_at": "datetime64[us]"})


def test_order_summary_on_an_orders_only_directory(tmp_path):
    ORDERS.to_parquet(tmp_path / "orders.parquet", index=False)
    data = load(tmp_path)
    assert list(data.tables) == ["orders"]
    got = overview.order_summary(data).iloc[0]
    assert got["orders"] == 5 and got["customers"] == 3
    assert got["revenue"] == ORDERS.revenue.sum() == 80.0
    assert got["average_order_value"] == ORDERS.revenue[ORDERS.revenue > 0].mean() == 27.5
    assert got["orders_per_customer"] == 4 / 3  # purchases (revenue >= 0) per customer
    assert got["refunds"] == 1 and got["refund_revenue"] == -30.0
    lines = overview.overview_summary(
        overview.table_summary(data), None, overview.quality_table(data), orders=overview.order_summary(data)
    )  # fmt: skip
    assert any(
        "5 orders: 4 purchases by 3 customers" in line and "1 refunds/cancellations" in line
        for line in lines
    )


def test_assignment_summary(tmp_path):
    ASSIGNMENTS.to_parquet(tmp_path / "assignments.parquet", index=False)
    pd.DataFrame({"user_id": [1, 2, 3]}).to_parquet(tmp_path / "users.parquet", index=False)
    data = load(tmp_path)  # users with only an id: signup_at is optional
    got = overview.assignment_summary(data)
    want = ASSIGNMENTS.groupby(["experiment_id", "variant"]).size().rename("users").reset_index()
    assert got[["experiment_id", "variant", "users"]].equals(want)
    np.testing.assert_allclose(got["share"], [1 / 3, 2 / 3, 1.0])
    assert got.loc[1, "first_assigned"] == pd.Timestamp("2024-01-02")
    tables = overview.table_summary(data).set_index("table")
    assert tables.loc["users", "rows"] == 3 and pd.isna(tables.loc["users", "min_ts"])
    assert overview.attribute_columns(data) == []

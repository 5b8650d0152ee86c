"""Helpers for the segment tests: tiny order logs, the CDNOW sample as an orders directory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import ibis
import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"
D0 = pd.Timestamp("2024-01-01")


def orders_df(rows: Iterable[Sequence]) -> pd.DataFrame:
    """Rows ``(user_id, day_offset, revenue[, hour])`` -> orders (order_id, user_id, ts, revenue)."""
    out = []
    for i, row in enumerate(rows):
        uid, day, rev, *rest = row
        hour = rest[0] if rest else 12
        out.append((i + 1, uid, D0 + pd.Timedelta(days=day, hours=hour), float(rev)))
    df = pd.DataFrame(out, columns=["order_id", "user_id", "ts", "revenue"])
    df["ts"] = df["ts"].astype("datetime64[us]")
    df["user_id"] = df["user_id"].astype("int64")
    return df


def to_table(df: pd.DataFrame, con=None, name: str = "seg_orders") -> ibis.Table:
    """A memtable (DuckDB default) or a table on ``con`` (DuckDB or Spark)."""
    mt = ibis.memtable(df)
    return mt if con is None else con.create_table(name, mt, overwrite=True)


def cdnow_orders() -> pd.DataFrame:
    """The CDNOW 1/10 sample as contract orders (one order per purchase line)."""
    raw = pd.read_csv(
        DATA / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "user_id", "date", "cds", "revenue"],
        dtype={"date": str},
    )
    return pd.DataFrame(
        {
            "order_id": range(1, len(raw) + 1),
            "user_id": raw["user_id"].astype("int64"),
            "ts": pd.to_datetime(raw["date"], format="%Y%m%d").astype("datetime64[us]"),
            "revenue": raw["revenue"].astype(float),
            "quantity": raw["cds"].astype("int64"),
        }
    )


@pytest.fixture(scope="session")
def cdnow_dir(tmp_path_factory) -> Path:
    """An orders-only data directory made from the CDNOW sample (what a user would pass)."""
    out = tmp_path_factory.mktemp("cdnow")
    cdnow_orders().to_parquet(out / "orders.parquet", index=False)
    return out

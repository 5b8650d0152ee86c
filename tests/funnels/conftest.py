"""Helpers for the funnel engine tests: tiny event logs and exact engine-vs-reference checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import ibis
import numpy as np
import pandas as pd
import pytest

T0 = pd.Timestamp("2024-03-01 00:00:00")


def events_df(rows: Iterable[Sequence], props: Sequence[str] = ()) -> pd.DataFrame:
    """Rows ``(user_id, event, seconds_after_T0, *props)`` -> events frame (``ts`` naive UTC)."""
    rows = list(rows)
    cols = ["user_id", "event", "sec", *props]
    df = pd.DataFrame(rows, columns=cols)
    df["user_id"] = df["user_id"].astype("int64")
    df["event"] = df["event"].astype(object)
    df["ts"] = (T0 + pd.to_timedelta(df["sec"].astype(float), unit="s")).astype("datetime64[us]")
    for p in props:
        df[p] = df[p].astype(object)
    return df[["user_id", "event", "ts", *props]]


def to_table(df: pd.DataFrame, con=None, name: str | None = None) -> ibis.Table:
    """An Ibis table of ``df``: a memtable (DuckDB default) or a table on ``con``."""
    mt = ibis.memtable(df)
    if con is None:
        return mt
    return con.create_table(name or "funnel_events", mt, overwrite=True)


def _norm_value(v):
    if v is None:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp | np.datetime64):
        ts = pd.Timestamp(v)
        if pd.isna(ts):
            return None
        return int((ts - pd.Timestamp(0)) // pd.Timedelta(microseconds=1))
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def normalise(df: pd.DataFrame) -> list[dict]:
    """Rows as dicts with timestamps as epoch microseconds and nulls as None, sorted by keys."""
    keys = [c for c in ("user_id", "attempt") if c in df.columns]
    out = [{k: _norm_value(v) for k, v in row.items()} for row in df.to_dict("records")]
    return sorted(out, key=lambda r: tuple((r[k] is None, r[k]) for k in keys))


def assert_same_users(engine: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Exact equality of per-user funnels (columns, rows, every value)."""
    assert list(engine.columns) == list(ref.columns)
    a, b = normalise(engine), normalise(ref)
    assert len(a) == len(b), f"{len(a)} engine rows vs {len(b)} reference rows\n{a}\n{b}"
    for ra, rb in zip(a, b, strict=True):
        assert ra == rb, f"engine {ra}\n   ref {rb}"


@pytest.fixture
def duck():
    from crm_helpers.engine import connect

    return connect("duckdb")

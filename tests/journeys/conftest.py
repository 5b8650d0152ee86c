"""Tiny event logs for the journey tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import pytest

T0 = pd.Timestamp("2024-03-01 00:00:00")


def events_df(rows: Iterable[Sequence]) -> pd.DataFrame:
    """Rows ``(user_id, event, seconds_after_T0)`` -> events frame (``ts`` naive UTC)."""
    df = pd.DataFrame(list(rows), columns=["user_id", "event", "sec"])
    df["user_id"] = df["user_id"].astype("int64")
    df["event"] = df["event"].astype(object)
    df["ts"] = (T0 + pd.to_timedelta(df["sec"].astype(float), unit="s")).astype("datetime64[us]")
    return df[["user_id", "event", "ts"]]


@pytest.fixture
def jx():
    """This module's helpers (``jx.events_df``) for tests."""
    import sys

    return sys.modules[__name__]

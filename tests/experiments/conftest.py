"""Tiny inline experiment data sets whose answers are obvious."""

from __future__ import annotations

import pandas as pd
import pytest

T0 = pd.Timestamp("2025-03-01 12:00")


def day(d: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=d)


def write_tables(out, **tables: pd.DataFrame):
    """Write the given contract tables as Parquet into ``out`` (a Path) and return it."""
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    return out


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Experiment ``exp1``: control u1-u4, treatment u5-u8 (+ hygiene cases), orders in and
    out of the 7-day window, a visit event table.

    * u9 is assigned twice to treatment (the earliest row counts);
    * u10 is in both arms (excluded);
    * u11 is assigned 2 days before the data end (window incomplete, excluded).
    """
    a = [("exp1", f"u{i}", "control", day(0)) for i in range(1, 5)]
    a += [("exp1", f"u{i}", "treatment", day(0)) for i in range(5, 9)]
    a += [("exp1", "u9", "treatment", day(1)), ("exp1", "u9", "treatment", day(3))]
    a += [("exp1", "u10", "control", day(0)), ("exp1", "u10", "treatment", day(0))]
    a += [("exp1", "u11", "control", day(18))]
    a += [("exp2", "u1", "only", day(0))]
    assignments = pd.DataFrame(a, columns=["experiment_id", "user_id", "variant", "assigned_at"])
    o = [
        ("o1", "u1", day(1), 10.0),  # control, in window
        ("o2", "u2", day(9), 50.0),  # control, after the window
        ("o3", "u5", day(2), 20.0),  # treatment, in window
        ("o4", "u5", day(3), 30.0),  # treatment, in window (2nd order)
        ("o5", "u6", day(6.9), 5.0),  # treatment, in window
        ("o6", "u7", day(-3), 40.0),  # treatment, pre-period
        ("o7", "u9", day(1.5), 8.0),  # u9: after the first assignment, in window
        ("o8", "u10", day(1), 99.0),  # excluded user
        ("o9", "u3", day(20), 1.0),  # data end
    ]
    orders = pd.DataFrame(o, columns=["order_id", "user_id", "ts", "revenue"])
    e = [("u1", "visit", day(0.5)), ("u1", "visit", day(1)), ("u5", "visit", day(1))]
    e += [("u6", "visit", day(-1)), ("u6", "visit", day(2)), ("u8", "open", day(1))]
    events = pd.DataFrame(e, columns=["user_id", "event", "ts"])
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(1, 12)],
            "signup_at": [day(-30)] * 11,
            "device": ["ios", "android"] * 5 + ["web"],
        }
    )
    return {"assignments": assignments, "orders": orders, "events": events, "users": users}


@pytest.fixture
def tiny_dir(tmp_path):
    return write_tables(tmp_path / "tiny", **tiny_tables())


@pytest.fixture
def tables():
    """The tiny tables (a fresh dict of DataFrames; see :func:`tiny_tables`)."""
    return tiny_tables()


@pytest.fixture
def write(tmp_path):
    """``write(name, **tables)``: the tables written as Parquet into a fresh folder."""
    return lambda name, **t: write_tables(tmp_path / name, **t)

"""Engines agree: the same load and queries on DuckDB and Spark; the time-zone rule vs pandas."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.engine import DUCKDB_MEMORY_LIMIT, connect, local_to_utc
from tests.test_validate import good_frames, write_frames

pytestmark = pytest.mark.spark


def pandas_local_to_utc(wall: pd.Series, tz: str) -> pd.Series:
    """Reference: pandas, ambiguous -> summer time (first), non-existent -> shifted by 1 h."""
    loc = pd.DatetimeIndex(wall).tz_localize(
        tz, ambiguous=np.ones(len(wall), dtype=bool), nonexistent=pd.Timedelta("1h")
    )
    return pd.Series(loc.tz_convert("UTC").tz_localize(None).as_unit("us"), index=wall.index)


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York"])
def test_local_to_utc_matches_pandas_every_half_hour_of_a_year(con, tz):
    wall = pd.Series(pd.date_range("2024-01-01", "2024-12-31 23:30", freq="30min", unit="us"))
    t = ibis.memtable(pd.DataFrame({"i": np.arange(len(wall)), "wall": wall}))
    # a memtable runs on the engine it is executed on (Spark: a temporary view, nothing
    # written to the warehouse)
    expr = t.mutate(utc=local_to_utc(t.wall, tz, con.name)).order_by("i")
    out = con.to_pandas(expr)["utc"]
    expected = pandas_local_to_utc(wall, tz)
    pd.testing.assert_series_equal(out.astype("datetime64[us]"), expected, check_names=False)


def _queries(data) -> dict[str, pd.DataFrame]:
    ev = data.events
    by_event = ev.group_by("event").aggregate(n=ev.count(), users=ev.user_id.nunique())
    w = ibis.window(group_by="user_id", order_by=["ts", "event"])
    win = ev.mutate(
        prev_ts=ev.ts.lag().over(w),
        running=ibis.row_number().over(w),
    )
    gaps = win.mutate(gap_s=(win.ts.epoch_seconds() - win.prev_ts.epoch_seconds()))
    per_user = gaps.group_by("user_id").aggregate(
        n=gaps.count(), max_running=gaps.running.max(), gap_sum=gaps.gap_s.sum()
    )
    span = ev.aggregate(first=ev.ts.min(), last=ev.ts.max())
    rev = data.orders.group_by(data.orders.ts.date().name("day")).aggregate(
        revenue=data.orders.revenue.sum()
    )
    return {
        "by_event": by_event.to_pandas().sort_values("event").reset_index(drop=True),
        "per_user": per_user.to_pandas().sort_values("user_id").reset_index(drop=True),
        "span": span.to_pandas(),
        "revenue": rev.to_pandas().sort_values("day").reset_index(drop=True),
    }


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_duckdb_and_spark_agree(tmp_path, spark_con, fmt):
    frames = good_frames()
    ev = frames["events"]
    frames["events"] = pd.concat([ev, ev.iloc[[0, 1]]], ignore_index=True)  # 2 duplicates
    (tmp_path / "schema.yaml").write_text("timezone: Europe/Berlin\n")
    d = write_frames(tmp_path, frames, fmt)
    duck, spark = load(d, engine="duckdb"), load(d, engine=spark_con)
    assert duck.row_counts() == spark.row_counts()
    assert duck.quality.to_frame().equals(spark.quality.to_frame())
    a, b = _queries(duck), _queries(spark)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_dtype=False, obj=name)
    # the window result is right, not just equal: 5 events per user (row_number is
    # 0-based in Ibis), 7-minute steps
    assert (a["per_user"]["max_running"] == 4).all()
    assert (a["per_user"]["gap_sum"] == 4 * 7 * 60).all()
    # Berlin wall time 2024-01-02 01:00 is 00:00 UTC
    assert a["span"].loc[0, "first"] == pd.Timestamp("2024-01-02 00:00")


def test_connect_rejects_unknown_engine():
    with pytest.raises(ValueError, match="Unknown engine 'sqlite3'"):
        connect("sqlite3")


def test_duckdb_progress_bar_is_off_unless_asked():
    """In a notebook DuckDB's progress bar is an ipywidget: a static report would show junk."""

    def setting(con):
        return con.raw_sql("SELECT current_setting('enable_progress_bar')").fetchone()[0]

    assert setting(connect("duckdb")) is False
    assert setting(connect("duckdb", progress_bar=True)) is True


def test_duckdb_memory_is_bounded_by_default_and_configurable(monkeypatch, tmp_path):
    def setting(con, name):
        return con.raw_sql(f"SELECT current_setting('{name}')").fetchone()[0]

    monkeypatch.delenv("CRM_DUCKDB_MEMORY_LIMIT", raising=False)
    default = connect("duckdb")
    assert (
        setting(default, "memory_limit")
        == connect("duckdb", memory_limit=DUCKDB_MEMORY_LIMIT)
        .raw_sql("SELECT current_setting('memory_limit')")
        .fetchone()[0]
    )
    assert setting(default, "memory_limit") != setting(
        connect("duckdb", memory_limit="none"), "memory_limit"
    )
    monkeypatch.setenv("CRM_DUCKDB_MEMORY_LIMIT", "700MB")
    assert setting(connect("duckdb"), "memory_limit") == setting(
        connect("duckdb", memory_limit="700MB"), "memory_limit"
    )
    monkeypatch.setenv("CRM_DUCKDB_TEMP_DIR", str(tmp_path))
    assert setting(connect("duckdb"), "temp_directory") == str(tmp_path)

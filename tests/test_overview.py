"""Data-overview helpers on tiny inline data with obvious answers, on DuckDB and Spark,
checked against pandas on the same frames; and the overview figures."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_helpers import overview
from crm_helpers.data import load
from crm_helpers.plots import overview as plots
from crm_helpers.plots import theme

USERS = pd.DataFrame(
    {
        "user_id": [1, 2, 3, 4, 5],
        "signup_at": pd.to_datetime(
            [
                "2024-01-01 08:00",
                "2024-01-02 00:00",
                "2024-01-03 00:00",
                "2024-01-08 00:00",
                "2024-01-09 23:00",
            ]
        ),
        "country": ["DE", "DE", "FR", None, "DE"],
        "user_key": ["a", "b", "c", "d", "e"],  # 5 levels: left out when max_levels=4
        "score": [1.0, 2.0, 3.0, 4.0, 5.0],  # numeric: never an attribute bar chart
    }
)
EVENTS = pd.DataFrame(
    {
        "user_id": [1, 1, 2, 2, 2, 3, 5, 5],
        "event": [
            "visit",
            "purchase",
            "visit",
            "visit",
            "add_to_cart",
            "visit",
            "visit",
            "purchase",
        ],
        # Mon 1 Jan, Sun 7 Jan (same ISO week), Mon 8 Jan (next week), ...
        "ts": pd.to_datetime(
            [
                "2024-01-01 09:00",
                "2024-01-01 10:00",
                "2024-01-07 23:59",
                "2024-01-08 00:00",
                "2024-01-08 01:00",
                "2024-01-10 12:00",
                "2024-01-15 00:00",
                "2024-01-15 00:30",
            ]
        ),
    }
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("overview_world")
    USERS.assign(signup_at=USERS.signup_at.astype("datetime64[us]")).to_parquet(
        d / "users.parquet", index=False
    )
    EVENTS.assign(ts=EVENTS.ts.astype("datetime64[us]")).to_parquet(
        d / "events.parquet", index=False
    )
    return d


@pytest.fixture(
    scope="module",
    params=[pytest.param("duckdb", id="duckdb"), pytest.param("spark", marks=pytest.mark.spark)],
)
def data(request, world):
    """The tiny world loaded once per engine (loading validates: not free on Spark)."""
    con = request.getfixturevalue("spark_con") if request.param == "spark" else request.param
    return load(world, engine=con)


def test_table_summary(data):
    got = overview.table_summary(data)
    assert list(got.columns) == ["table", "rows", "columns", "min_ts", "max_ts"]
    got = got.set_index("table")
    assert got.loc["users", "rows"] == 5 and got.loc["events", "rows"] == 8
    assert got.loc["users", "columns"] == 5 and got.loc["events", "columns"] == 3
    assert got.loc["events", "min_ts"] == EVENTS.ts.min()
    assert got.loc["events", "max_ts"] == EVENTS.ts.max()
    assert got.loc["users", "min_ts"] == USERS.signup_at.min()
    assert got.loc["users", "max_ts"] == USERS.signup_at.max()


def test_users_by_attribute(data):
    got = overview.users_by_attribute(data, "country")
    assert got[["value", "users"]].values.tolist() == [["DE", 3], ["(missing)", 1], ["FR", 1]]
    assert got["share"].tolist() == pytest.approx([0.6, 0.2, 0.2])
    with pytest.raises(KeyError, match="no column 'nope'"):
        overview.users_by_attribute(data, "nope")


def test_attribute_columns(data):
    assert overview.attribute_columns(data) == ["country", "user_key"]
    assert overview.attribute_columns(data, max_levels=4) == ["country"]


def test_event_counts_match_pandas(data):
    got = overview.event_counts(data)
    want = (
        EVENTS.groupby("event")
        .agg(count=("user_id", "size"), users=("user_id", "nunique"))
        .reset_index()
        .sort_values(["count", "event"], ascending=[False, True])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(got[["event", "count", "users"]], want, check_dtype=False)
    assert got["share"].sum() == pytest.approx(1.0)
    assert got.iloc[0].tolist()[:3] == ["visit", 5, 4]


@pytest.mark.parametrize(("freq", "pandas_freq"), [("day", "D"), ("week", "W-SUN"), ("month", "M")])
def test_events_over_time_match_pandas(data, freq, pandas_freq):
    got = overview.events_over_time(data, freq=freq)
    periods = EVENTS.ts.dt.to_period(pandas_freq).dt.start_time
    want = (
        EVENTS.assign(period=periods)
        .groupby(["period", "event"])
        .size()
        .rename("count")
        .reset_index()
        .sort_values(["period", "event"])
        .reset_index(drop=True)
    )
    got = got.assign(period=got["period"].astype("datetime64[ns]"))
    want = want.assign(period=want["period"].astype("datetime64[ns]"))
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_events_over_time_weeks_start_on_monday(data):
    got = overview.events_over_time(data, freq="week")
    weeks = sorted(got["period"].unique())
    assert [pd.Timestamp(w) for w in weeks] == pd.to_datetime(
        ["2024-01-01", "2024-01-08", "2024-01-15"]
    ).tolist()
    visits = got[(got.event == "visit")].set_index("period")["count"]
    assert visits.loc[pd.Timestamp("2024-01-01")] == 2  # Mon 1 Jan and Sun 7 Jan
    with pytest.raises(ValueError, match="freq"):
        overview.events_over_time(data, freq="hour")
    only = overview.events_over_time(data, freq="day", events=["purchase"])
    assert set(only["event"]) == {"purchase"} and only["count"].sum() == 2


def test_quality_table_and_summary(data):
    q = overview.quality_table(data)
    assert list(q.columns) == ["table", "column", "check", "severity", "count", "message", "fix"]
    lines = overview.overview_summary(
        overview.table_summary(data), overview.event_counts(data), q, top_n_events=2
    )
    text = " ".join(lines)
    assert "5 users, 8 events" in text
    assert "from 2024-01-01 to 2024-01-15 (15 days)" in text
    assert "1.6 events per user" in text
    assert "visit (62%), purchase (25%)" in text


def test_summary_reports_quality_findings():
    tables = pd.DataFrame(
        {"table": ["users"], "rows": [10], "columns": [2], "min_ts": [pd.NaT], "max_ts": [pd.NaT]}
    )
    quality = pd.DataFrame(
        [
            {
                "table": "events",
                "column": "ts",
                "check": "future",
                "severity": "warning",
                "count": 3,
                "message": "timestamps in the future",
                "fix": "drop them",
            },
            {
                "table": "users",
                "column": None,
                "check": "dup",
                "severity": "warning",
                "count": 9,
                "message": "duplicate users",
                "fix": "dedupe",
            },
        ]
    )
    lines = overview.overview_summary(tables, None, quality)
    assert lines[-1] == (
        "Data-quality checks found 2 warning(s) and 0 error(s); the largest: users: duplicate "
        "users (9 rows)."
    )
    assert overview.overview_summary(tables, None, quality.iloc[:0])[-1] == (
        "Data-quality checks found no problems."
    )


def test_figures_draw_the_frames():
    by = pd.DataFrame({"value": ["DE", "FR"], "users": [3, 1], "share": [0.75, 0.25]})
    fig = plots.plot_users_by_attribute(by, "country")
    assert list(fig.data[0].y) == ["FR", "DE"] and list(fig.data[0].x) == [1, 3]
    assert fig.layout.title.text == "Users by country"
    ot = pd.DataFrame(
        {
            "period": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-08"]),
            "event": ["a", "b", "a"],
            "count": [1, 5, 2],
        }
    )
    fig = plots.plot_events_over_time(ot, top_n=1)
    assert [t.name for t in fig.data] == ["b"]  # b has most events
    assert len(plots.plot_events_over_time(ot, top_n=None).data) == 2
    ec = pd.DataFrame({"event": ["a"], "count": [2], "users": [1], "share": [1.0]})
    assert list(plots.plot_event_counts(ec).data[0].x) == [2]
    ts = pd.DataFrame({"table": ["users", "events"], "rows": [5, 8]})
    assert list(plots.plot_table_rows(ts).data[0].y) == [5, 8]
    with pytest.raises(KeyError, match="users_by_attribute"):
        plots.plot_users_by_attribute(ot, "x")
    assert fig.layout.template.layout.colorway == theme.COLORS


def test_theme_use_sets_defaults():
    import plotly.io as pio

    old_t, old_r = pio.templates.default, pio.renderers.default
    try:
        theme.use()
        assert pio.templates.default == "plotly_white+crm"
        assert pio.renderers.default == theme.NOTEBOOK_RENDERER
    finally:
        pio.templates.default, pio.renderers.default = old_t, old_r

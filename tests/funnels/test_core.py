"""The funnel engine (crm_helpers.funnels.core) on DuckDB and Spark.

Hand-checked cases (obvious answers), the funnel table against the brute-force reference and
statsmodels' Wilson interval, the histogram against numpy, clear errors for invalid specs,
the one-scan SQL shape, and DuckDB vs Spark agreement on fixed random logs.
"""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from crm_helpers.data import CRMData
from crm_helpers.funnels import (
    Exclusion,
    FunnelSpec,
    Step,
    core,
    funnel_table,
    time_to_convert_histogram,
    user_funnel,
)
from crm_helpers.funnels.core import _funnel_aggregate_pruned
from crm_helpers.funnels.reference import reference_funnel_table, reference_user_funnel
from crm_helpers.schema import DEFAULT_SCHEMA


def random_log(seed: int, n_users: int = 40, span_s: int = 40, fx=None) -> pd.DataFrame:
    """A seeded small log with many ties: events a/b/c/x, property cat in p/q/None."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        for _ in range(int(rng.integers(0, 12))):
            rows.append(
                (
                    u,
                    str(rng.choice(list("abcx"))),
                    int(rng.integers(0, span_s)),
                    [None, "p", "q"][int(rng.integers(0, 3))],
                )
            )
    return fx.events_df(rows, props=("cat",))


# --- hand-checked cases -----------------------------------------------------------------------


def test_hand_cases_duckdb(hand_case, fx):
    df, spec, reached, values = hand_case
    out = user_funnel(ibis.memtable(df), spec).to_pandas()
    fx.check_hand_case(out, spec, reached, values)
    fx.assert_same_users(out, reference_user_funnel(df, spec))


def test_four_users_table(fx):
    df = fx.events_df(
        [(1, "a", 0), (1, "b", 10), (1, "c", 20), (2, "a", 0), (2, "b", 30)]
        + [(3, "a", 0), (3, "b", 20), (3, "c", 25), (4, "a", 0), (4, "x", 1)]
    )
    tab = funnel_table(ibis.memtable(df), FunnelSpec(["a", "b", "c"]))
    assert len(tab) == 3
    assert tab["users"].tolist() == [4, 3, 2]
    assert tab["conversion_from_start"].tolist() == [1.0, 0.75, 0.5]
    assert tab["conversion_from_previous"].tolist() == pytest.approx([1.0, 0.75, 2 / 3])
    assert tab["dropoff"].tolist() == [0, 1, 1]
    assert tab["dropoff_share"].tolist() == pytest.approx([0.0, 0.25, 1 / 3])
    assert tab["label"].tolist() == ["a", "b", "c"]
    # time from previous step: 10, 30, 20 -> median 20; into step 3: 10, 5 -> 7.5
    assert tab["median_seconds_to_convert"].iloc[1] == 20.0
    assert tab["p25_seconds"].iloc[1] == 15.0
    assert tab["median_seconds_to_convert"].iloc[2] == 7.5
    assert tab["median_seconds_from_start"].iloc[2] == 22.5
    assert np.isnan(tab["median_seconds_to_convert"].iloc[0])
    lo, hi = proportion_confint(2, 4, alpha=0.05, method="wilson")
    assert tab["ci_low"].iloc[2] == pytest.approx(lo, abs=1e-12)
    assert tab["ci_high"].iloc[2] == pytest.approx(hi, abs=1e-12)
    lo, hi = proportion_confint(2, 3, alpha=0.1, method="wilson")
    tab90 = funnel_table(ibis.memtable(df), FunnelSpec(["a", "b", "c"]), alpha=0.1)
    assert tab90["ci_prev_low"].iloc[2] == pytest.approx(lo, abs=1e-12)
    assert tab90["ci_prev_high"].iloc[2] == pytest.approx(hi, abs=1e-12)


@pytest.mark.parametrize(
    "spec",
    [
        FunnelSpec(["a", "b", "c"], conversion_window_days=15 / 86_400),
        FunnelSpec(
            ["a", Step("b", max_seconds_from_previous=6), Step("c", where={"cat": "p"})],
            exclusions=[Exclusion("x", from_step=2, to_step=3)],
        ),
        FunnelSpec(["a", "b"], mode="strict", count="attempts"),
        FunnelSpec(["a", "b", "c"], mode="any_order", conversion_window_days=8 / 86_400),
        # the pruned-window path (ordered, no exclusions) with gaps, filters, a range
        FunnelSpec(
            [
                Step("a", where={"cat": ["p", "q"]}),
                Step("b", min_seconds_from_previous=1, max_seconds_from_previous=9),
                Step("c", min_seconds_from_previous=2),
            ],
            conversion_window_days=25 / 86_400,
            start=pd.Timestamp("2024-03-01 00:00:03"),
            end=pd.Timestamp("2024-03-01 00:00:30"),
        ),
        FunnelSpec(
            ["a", Step("b", max_seconds_from_previous=12), "c"],
            count="attempts",
            conversion_window_days=20 / 86_400,
        ),
        FunnelSpec(["a", "b", "a", "b"], conversion_window_days=30 / 86_400),
    ],
    ids=[
        "ordered",
        "gaps_excl_where",
        "strict_attempts",
        "any_order",
        "pruned_gaps_where_range",
        "pruned_attempts",
        "pruned_repeated",
    ],
)
def test_table_matches_reference(spec, fx):
    df = random_log(11, fx=fx)
    tab = funnel_table(ibis.memtable(df), spec)
    ref = reference_funnel_table(df, spec)
    unit = "attempts" if spec.count == "attempts" else "users"
    assert tab[unit].tolist() == ref["count"].tolist()
    assert tab["users" if unit == "users" else "attempts"].iloc[0] > 0
    for ours, theirs in [
        ("median_seconds_to_convert", "median"),
        ("p25_seconds", "p25"),
        ("p75_seconds", "p75"),
        ("p90_seconds", "p90"),
        ("median_seconds_from_start", "median_from_start"),
    ]:
        np.testing.assert_allclose(tab[ours], ref[theirs], rtol=1e-12, equal_nan=True)


def test_accepts_crmdata_and_empty_range(fx, duck):
    df = fx.events_df([(1, "a", 0), (1, "b", 5), (2, "a", 1)])
    ev = duck.create_table("funnel_core_crm", ibis.memtable(df), overwrite=True)
    data = CRMData(con=duck, data_dir=None, schema=DEFAULT_SCHEMA, tables={"events": ev})
    tab = funnel_table(data, FunnelSpec(["a", "b"]))
    assert tab["users"].tolist() == [2, 1]
    # a range with no entries: zero counts, NaN rates, no crash
    later = FunnelSpec(["a", "b"], start="2030-01-01", end="2030-02-01")
    empty = funnel_table(data, later)
    assert empty["users"].tolist() == [0, 0]
    assert empty["conversion_from_start"].isna().all()


def test_attempts_table_column(fx):
    df = fx.events_df([(1, "a", 0), (1, "b", 1), (1, "a", 2), (1, "b", 3), (2, "a", 0)])
    tab = funnel_table(ibis.memtable(df), FunnelSpec(["a", "b"], count="attempts"))
    assert "attempts" in tab.columns and "users" not in tab.columns
    assert tab["attempts"].tolist() == [3, 2]


def test_extra_partition_matches_reference(fx):
    df = random_log(5, fx=fx).rename(columns={"cat": "sess"})
    spec = FunnelSpec(["a", "b", "c"], conversion_window_days=20 / 86_400)
    out = user_funnel(ibis.memtable(df), spec, extra_partition="sess").to_pandas()
    ref = reference_user_funnel(df, spec, extra_partition="sess")
    assert list(out.columns)[:2] == ["user_id", "sess"]
    key = ["user_id", "sess"]
    out = out.sort_values(key, na_position="first").reset_index(drop=True)
    ref = ref.sort_values(key, na_position="first").reset_index(drop=True)
    assert len(out) > 40  # several partitions per user
    fx.assert_same_users(out, ref)


# --- histogram ----------------------------------------------------------------------------------


def test_histogram_matches_numpy(fx):
    df = random_log(3, fx=fx)
    spec = FunnelSpec(["a", "b", "c"], conversion_window_days=30 / 86_400)
    ref = reference_user_funnel(df, spec)
    for measure in ("from_prev", "from_start"):
        x = ref[f"step_3_{measure}_s"].dropna().to_numpy(float)
        h = time_to_convert_histogram(ibis.memtable(df), spec, 3, bins=5, measure=measure)
        counts, edges = np.histogram(x, bins=5, range=(0, x.max()))
        assert h["users"].tolist() == counts.tolist()
        np.testing.assert_allclose(h["bin_start"], edges[:-1])
        np.testing.assert_allclose(h["bin_end"], edges[1:])
        assert h["share"].sum() == pytest.approx(1.0)
    edges = [0, 2, 5, 100]
    h = time_to_convert_histogram(ibis.memtable(df), spec, 2, bins=edges)
    x = ref["step_2_from_prev_s"].dropna().to_numpy(float)
    assert h["users"].tolist() == np.histogram(x, bins=edges)[0].tolist()
    with pytest.raises(ValueError, match="step must be between 2"):
        time_to_convert_histogram(ibis.memtable(df), spec, 1)


# --- errors ---------------------------------------------------------------------------------------


@pytest.fixture
def small(fx):
    return ibis.memtable(
        fx.events_df([(1, "page_view", 0, "p"), (1, "purchase", 1, "q")], props=("cat",))
    )


def test_error_empty_steps():
    with pytest.raises(ValueError, match="at least one step"):
        FunnelSpec([])


def test_error_unknown_event_suggests_close_names(small):
    with pytest.raises(
        ValueError, match=r"'page_veiw'.*closest first: \['page_view', 'purchase'\]"
    ):
        user_funnel(small, FunnelSpec(["page_veiw", "purchase"]))
    with pytest.raises(ValueError, match="exclusion 1: event 'refnud'"):
        funnel_table(small, FunnelSpec(["page_view", "purchase"], exclusions=[Exclusion("refnud")]))


def test_funnel_table_unknown_step_event_still_raises(small):
    # funnel_table checks event names after its query (only when a step is empty)
    with pytest.raises(ValueError, match=r"step 2: event 'purchse'.*\['purchase', 'page_view'\]"):
        funnel_table(small, FunnelSpec(["page_view", "purchse"]))
    with pytest.raises(ValueError, match="step 1: event 'page_veiw'"):
        funnel_table(small, FunnelSpec(["page_veiw", "purchase"]))
    assert funnel_table(small, FunnelSpec(["purchase", "page_view"]))["users"].tolist() == [1, 0]


def test_error_empty_date_range():
    with pytest.raises(ValueError, match="empty date range"):
        FunnelSpec(["a"], start="2024-02-01", end="2024-02-01")
    with pytest.raises(ValueError, match="empty date range"):
        FunnelSpec(["a"], start="2024-03-01", end="2024-02-01")


def test_error_where_on_missing_column(small):
    spec = FunnelSpec([Step("page_view", where={"categroy": "x"}), "purchase"])
    with pytest.raises(
        ValueError, match="column 'categroy'.*closest columns: \\['category'\\]|'categroy'"
    ):
        user_funnel(small.rename(category="cat"), spec)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=["a", "b", "a"], mode="any_order"), "repeated steps"),
        (
            dict(steps=["a", Step("b", max_seconds_from_previous=3)], mode="any_order"),
            "per-step windows",
        ),
        (dict(steps=["a", "b"], mode="any_order", exclusions=[Exclusion("x")]), "exclusions"),
        (dict(steps=["a", "b", "a"], count="attempts"), "step 1 .* repeated later"),
        (dict(steps=["a", "b"], exclusions=[Exclusion("x", from_step=2, to_step=2)]), "from_step"),
        (dict(steps=[Step("a", min_seconds_from_previous=1), "b"]), "step 1 has no previous"),
        (dict(steps=["a"], mode="funnel"), "mode must be"),
        (dict(steps=["a"], conversion_window_days=-1), "conversion_window_days"),
    ],
)
def test_error_invalid_specs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FunnelSpec(**kwargs)


def test_error_gap_bounds():
    with pytest.raises(ValueError, match="min_seconds_from_previous"):
        Step("b", min_seconds_from_previous=5, max_seconds_from_previous=2)


# --- SQL shape ------------------------------------------------------------------------------------


def test_lazy_single_scan(fx, duck):
    df = fx.events_df([(1, "a", 0), (1, "b", 1), (1, "c", 2)])
    ev = duck.create_table("funnel_core_scan", ibis.memtable(df), overwrite=True)
    spec = FunnelSpec(
        ["a", Step("b", max_seconds_from_previous=60), "c"],
        exclusions=[Exclusion("b", from_step=2)],
        count="attempts",
    )
    expr = user_funnel(ev, spec)
    assert isinstance(expr, ibis.Table)
    sql = ibis.to_sql(expr)
    assert sql.count('"funnel_core_scan"') == 1  # one scan of events, no self-joins
    assert " JOIN " not in sql.upper()
    # one GROUP BY into moments and one per user: no per-step re-reads
    assert sql.upper().count("GROUP BY") == 2


def test_pruned_sql_shape(fx, duck, monkeypatch):
    """ordered without exclusions: no moment GROUP BY, one step per step >= 2 over only the
    previous step's chains and this step's rows, epoch_us (not a DATE_DIFF). Each step reads
    its own rows with its own filter (pushed into the scan) and no shared table of all
    funnel rows with per-step flags exists (DuckDB materialises a shared sub-query: the
    memory goal at 50M events). On DuckDB each step is a backward ASOF join shifted by the
    min gap; elsewhere (Spark) a RANGE window ending min-gap before the row."""
    df = fx.events_df([(1, "a", 0), (1, "b", 1), (1, "c", 2)])
    ev = duck.create_table("funnel_core_pruned", ibis.memtable(df), overwrite=True)
    spec = FunnelSpec(["a", Step("b", min_seconds_from_previous=2), "c"])
    sql = ibis.to_sql(user_funnel(ev, spec)).upper()
    assert sql.count('"FUNNEL_CORE_PRUNED"') == 3  # one read per step
    for name in "ABC":
        assert f"\"EVENT\" = '{name}'" in sql
    assert " IN (" not in sql and '"F1"' not in sql  # no shared flagged table
    assert "DATE_DIFF" not in sql and "EPOCH_US(" in sql
    assert sql.count("GROUP BY") == 1  # only the per-user aggregate
    assert sql.count("ASOF LEFT JOIN") == 2 and " OVER " not in sql.split("ASOF")[0]
    assert '+ 2000000 AS "_RT"' in sql and '+ 1 AS "_RT"' in sql  # min gap, then 1 us
    monkeypatch.setattr(core, "ASOF_BACKENDS", set())
    sql = ibis.to_sql(user_funnel(ev, spec)).upper()
    assert sql.count("GROUP BY") == 1
    assert "RANGE BETWEEN UNBOUNDED PRECEDING AND 2000000 PRECEDING" in sql
    assert "RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING" in sql
    assert " JOIN " not in sql
    # funnel_table: one query for the table (counts and quantiles in the engine)
    table_sql = ibis.to_sql(_funnel_aggregate_pruned(ev, spec)).upper()
    assert table_sql.count('"FUNNEL_CORE_PRUNED"') == 3
    assert "PERCENTILE_CONT" in table_sql or "QUANTILE_CONT" in table_sql


def test_parquet_tz_aware_ts_same_as_naive(fx, tmp_path):
    """crm_helpers.load over Parquet with tz-aware ts (normalised through the epoch, no
    per-row calendar cast) gives exactly the funnel of the same log held as naive UTC,
    sub-second times included."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import crm_helpers

    df = random_log(31, n_users=25, fx=fx)
    rng = np.random.default_rng(3)
    df["ts"] = df["ts"] + pd.to_timedelta(rng.integers(0, 3, len(df)) * 250_001, unit="us")
    events = pa.table(
        {
            "user_id": pa.array(df["user_id"], pa.int64()),
            "event": pa.array(df["event"], pa.string()),
            "ts": pa.array(df["ts"].dt.tz_localize("UTC"), pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(events, tmp_path / "events.parquet")
    users = pa.table({"user_id": pa.array(sorted(df["user_id"].unique()), pa.int64())})
    pq.write_table(users, tmp_path / "users.parquet")
    data = crm_helpers.load(tmp_path, validate=False)
    spec = FunnelSpec(
        ["a", Step("b", max_seconds_from_previous=7.5), "c"],
        conversion_window_days=20 / 86_400,
        start=fx.T0 + pd.Timedelta(seconds=1, microseconds=1),
    )
    # the normalisation lives in the loader's temporary view: no per-row calendar cast
    view = data.events.get_name()
    ((view_sql,),) = data.con.raw_sql(
        f"SELECT sql FROM duckdb_views() WHERE view_name = '{view}'"
    ).fetchall()
    assert "make_timestamp(epoch_us(" in view_sql.lower()
    assert "AS TIMESTAMP)" not in view_sql.upper()
    assert "AS TIMESTAMP)" not in ibis.to_sql(user_funnel(data.events, spec)).upper()
    naive = ibis.memtable(df[["user_id", "event", "ts"]])
    fx.assert_same_users(
        user_funnel(data.events, spec).to_pandas(), user_funnel(naive, spec).to_pandas()
    )
    fx.assert_same_users(
        user_funnel(naive, spec).to_pandas(),
        reference_user_funnel(df[["user_id", "event", "ts"]], spec),
    )
    pd.testing.assert_frame_equal(funnel_table(data, spec), funnel_table(naive, spec))


# --- Spark ----------------------------------------------------------------------------------------


@pytest.mark.spark
def test_duckdb_and_spark_agree(spark_con, fx):
    from crm_helpers.engine import spark_session

    df = random_log(21, n_users=30, fx=fx)
    spark_session().createDataFrame(df).createOrReplaceTempView("funnel_core_spark_events")
    sp = spark_con.table("funnel_core_spark_events")
    dd = ibis.memtable(df)
    specs = [
        FunnelSpec(
            ["a", Step("b", min_seconds_from_previous=1, max_seconds_from_previous=8), "c"],
            mode="strict",
            exclusions=[Exclusion("x", from_step=1, to_step=2)],
            count="attempts",
        ),
        FunnelSpec(
            ["a", Step("b", max_seconds_from_previous=10), Step("c", where={"cat": ["p", "q"]})],
            conversion_window_days=20 / 86_400,
            exclusions=[Exclusion("x", from_step=2)],
            start=fx.T0 + pd.Timedelta(seconds=2),
            end=fx.T0 + pd.Timedelta(seconds=30),
        ),
        FunnelSpec(["a", "b", "c"], mode="any_order", conversion_window_days=10 / 86_400),
        # pruned-window path: gaps + attempts; filters + entry range
        FunnelSpec(
            ["a", Step("b", min_seconds_from_previous=1, max_seconds_from_previous=8), "c"],
            count="attempts",
            conversion_window_days=25 / 86_400,
        ),
        FunnelSpec(
            [Step("a", where={"cat": "p"}), "b", Step("c", where={"cat": ["p", "q"]})],
            conversion_window_days=20 / 86_400,
            start=fx.T0 + pd.Timedelta(seconds=2.5),
            end=fx.T0 + pd.Timedelta(seconds=30),
        ),
    ]
    for spec in specs:
        fx.assert_same_users(user_funnel(sp, spec).to_pandas(), user_funnel(dd, spec).to_pandas())
    session = spark_session()
    cached_before = [
        t.name for t in session.catalog.listTables() if session.catalog.isCached(t.name)
    ]
    for spec in (specs[1], specs[3], specs[4]):
        pd.testing.assert_frame_equal(funnel_table(sp, spec), funnel_table(dd, spec))
    # funnel_table caches each intermediate step on Spark and leaves no cached table behind
    cached_after = [
        t.name for t in session.catalog.listTables() if session.catalog.isCached(t.name)
    ]
    assert cached_after == cached_before
    # sub-second times: each engine's epoch-microsecond builtin is exact
    frac = df.copy()
    frac["ts"] = frac["ts"] + pd.to_timedelta((frac.index.to_numpy() % 7) * 123_457, unit="us")
    spark_session().createDataFrame(frac).createOrReplaceTempView("funnel_core_spark_frac")
    sp2, dd2 = spark_con.table("funnel_core_spark_frac"), ibis.memtable(frac)
    spec = FunnelSpec(
        ["a", Step("b", max_seconds_from_previous=2.5), "c"], conversion_window_days=9 / 86_400
    )
    got = user_funnel(sp2, spec).to_pandas()
    fx.assert_same_users(got, user_funnel(dd2, spec).to_pandas())
    fx.assert_same_users(got, reference_user_funnel(frac, spec))
    assert (got["step_2_from_prev_s"].dropna() % 1 != 0).any()  # fractions really present

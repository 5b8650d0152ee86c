"""The lookalike pipeline on Spark equals DuckDB: features, seeds, exclusions, audience, overlap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.lookalike import overlap, pipeline

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def part(small_world, tmp_path_factory):
    """The small world's first 1,500 users with all their rows."""
    out = tmp_path_factory.mktemp("lookalike_spark_part")
    for name in ("users", "events", "orders", "messages"):
        df = pd.read_parquet(small_world / f"{name}.parquet")
        df[df["user_id"] <= 1500].to_parquet(out / f"{name}.parquet")
    return out


@pytest.mark.parametrize(
    "params",
    [
        {"seed": "users.lookalike_seed", "recent_purchase_days": 14},
        {"seed": "purchase >= 2 in 90 days", "population_filter": "visit >= 1 in 90 days"},
    ],
    ids=["seed_column", "count_rule_filtered"],
)
def test_pipeline_on_spark_equals_duckdb(part, params, monkeypatch):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("CRM_SPARK_PARTITIONS", "2")  # small data: fewer, cheaper tasks
    duck = pipeline.run(load(part), expansion_size=150, **params)
    spark = pipeline.run(load(part, engine="spark", validate=False), expansion_size=150, **params)
    assert spark.spec == duck.spec
    assert spark.dropped_features == duck.dropped_features
    assert (spark.population_size, spark.population_filtered_out, spark.excluded) == (
        duck.population_size,
        duck.population_filtered_out,
        duck.excluded,
    )
    assert list(spark.features.columns) == list(duck.features.columns)
    assert spark.features["user_id"].tolist() == duck.features["user_id"].tolist()
    for c in duck.features.columns[1:]:
        atol = 1e-4 if c.endswith("_days") else 1e-9  # whole epoch seconds in both engines
        np.testing.assert_allclose(spark.features[c], duck.features[c], atol=atol, err_msg=c)
    a, b = spark.expansion, duck.expansion
    assert (a.seeds.given, a.seeds.found) == (b.seeds.given, b.seeds.found) and a.seeds.found > 5
    assert a.seeds.index.tolist() == b.seeds.index.tolist()
    assert a.audience_size == b.audience_size == 150
    assert a.audience["user_id"].tolist() == b.audience["user_id"].tolist()
    np.testing.assert_allclose(a.audience["score"], b.audience["score"], rtol=1e-5)
    assert a.recall_at_n() == pytest.approx(b.recall_at_n())


def test_overlap_on_spark_equals_duckdb(part, monkeypatch):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("CRM_SPARK_PARTITIONS", "2")
    as_of = pd.Timestamp("2025-07-01")
    groups = {"seeds": pd.Series(range(1, 1500, 7)), "lookalikes": pd.Series(range(2, 900, 3))}
    got = {}
    for engine in ("duckdb", "spark"):
        data = load(part, engine=engine, validate=False)
        got[engine] = overlap.overlap_table(overlap.overlap_counts(data, as_of, groups))
    pd.testing.assert_frame_equal(got["spark"], got["duckdb"])
    assert set(got["spark"]["segmentation"]) == {"rfm", "health"}

"""crm_helpers.exact.exact_sum: the same total whatever order the rows are added in."""

from __future__ import annotations

from decimal import Decimal

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers.engine import connect
from crm_helpers.exact import exact_sum


def test_exact_sum_does_not_depend_on_row_order():
    rng = np.random.default_rng(3)
    values = np.round(rng.lognormal(3, 1.5, 200_000), 2)
    want = float(sum(Decimal(repr(float(v))) for v in values))  # exact, then rounded once
    con = connect("duckdb", threads=4)
    totals, plain = set(), set()
    for seed in range(4):
        df = pd.DataFrame({"g": 1, "r": rng.permutation(values)})
        t = con.create_table(f"t{seed}", df)
        got = t.group_by("g").aggregate(s=exact_sum(t.r), p=t.r.sum()).to_pandas()
        totals.add(float(got["s"][0]))
        plain.add(float(got["p"][0]))
    assert totals == {want}
    # the float sum it replaces is what varied (orders of addition differ): at least once
    # here it is not the exact total
    assert plain != {want}


def test_exact_sum_of_nothing_is_null_like_sum():
    t = ibis.memtable({"r": pd.Series([None, None], dtype="float64")})
    assert pd.isna(t.aggregate(s=exact_sum(t.r)).to_pandas()["s"][0])


@pytest.mark.spark
def test_exact_sum_is_the_same_on_spark(spark_con):
    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {"g": rng.integers(0, 3, 50_000), "r": np.round(rng.lognormal(3, 1.5, 50_000), 2)}
    )
    got = {}
    for name, con in (("duckdb", connect("duckdb")), ("spark", spark_con)):
        t = con.create_table("exact_sum_t", df, overwrite=True)
        out = t.group_by("g").aggregate(s=exact_sum(t.r)).to_pandas().sort_values("g")
        got[name] = out["s"].tolist()
    assert got["duckdb"] == got["spark"]

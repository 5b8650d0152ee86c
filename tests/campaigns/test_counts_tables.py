"""core.counts_tables: several count tables from one pass over the facts, equal to the
per-table functions exactly (revenue bit for bit) and to the brute-force reference."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers.campaigns.core import (
    counts_tables,
    frequency_counts,
    hour_counts,
    message_facts,
    scorecard_counts,
    weekly_counts,
)
from crm_helpers.campaigns.reference import reference_counts, reference_facts
from tests.campaigns.test_core import KW, _random_world, _same

GROUPINGS = [
    ("campaign_id", "channel"),
    ("channel", "weekday", "hour"),
    ("channel", "prior_messages"),
]


def _per_table(facts):
    return [scorecard_counts(facts), hour_counts(facts), frequency_counts(facts)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_the_per_table_functions_and_the_reference(seed):
    m, c = _random_world(seed, n_users=8, n_msgs=200, n_conv=120)
    # revenue with cents, so that the order of additions could matter in floats
    c["revenue"] = np.random.default_rng(seed).uniform(0, 100, len(c)).round(2)
    facts = message_facts(ibis.memtable(m), ibis.memtable(c), timezone="Europe/Berlin", **KW)
    got = counts_tables(facts, GROUPINGS)
    for g, want in zip(got, _per_table(facts), strict=True):
        pd.testing.assert_frame_equal(g, want, check_exact=True)
    ref = reference_facts(m, c, timezone="Europe/Berlin", **KW)
    assert ref.conversions.sum() > 5
    for g, by in zip(got, GROUPINGS, strict=True):
        _same(g, reference_counts(ref, list(by)))


def test_logs_without_responses_or_conversions_keep_their_nulls():
    m, _ = _random_world(4, n_msgs=50)
    m = m.drop(columns=["opened_at", "clicked_at"])
    facts = message_facts(ibis.memtable(m), None, **KW)
    got = counts_tables(facts, GROUPINGS[:2])
    for g, want in zip(got, _per_table(facts)[:2], strict=True):
        pd.testing.assert_frame_equal(g, want, check_exact=True)
    assert got[0]["opened"].isna().all() and got[0]["revenue"].isna().all()
    assert got[0]["sent"].sum() == len(m)


def test_the_notebook_groupings_with_weeks_equal_the_per_table_functions():
    """The report's six tables from one counts_tables call (a timestamp key among them)."""
    m, c = _random_world(5, n_users=8, n_msgs=300, n_conv=150)
    facts = message_facts(ibis.memtable(m), ibis.memtable(c), **KW).cache()
    groupings = [
        ("channel",),
        ("campaign_id", "channel"),
        ("campaign_id",),
        ("channel", "week"),
        ("channel", "campaign_id", "weekday", "hour"),
        ("channel", "campaign_id", "prior_messages"),
    ]
    got = counts_tables(facts.mutate(week=facts.sent_at.truncate("W")), groupings)
    want = [
        scorecard_counts(facts, ("channel",)),
        scorecard_counts(facts),
        scorecard_counts(facts, ("campaign_id",)),
        weekly_counts(facts),
        hour_counts(facts, ("channel", "campaign_id")),
        frequency_counts(facts, ("channel", "campaign_id")),
    ]
    assert len(got[3]) > 2 and got[4]["sent"].sum() == len(m)
    for g, w in zip(got, want, strict=True):
        pd.testing.assert_frame_equal(g, w, check_exact=True)


def test_each_call_has_its_own_temporary_names_and_leaves_none_behind():
    m, c = _random_world(5, n_users=6, n_msgs=80, n_conv=30)
    facts = message_facts(ibis.memtable(m), ibis.memtable(c), **KW)
    con = facts._find_backend(use_default=True)
    made: list[str] = []
    real = con.raw_sql

    def spy(sql, *a, **k):
        if "CREATE OR REPLACE TEMP TABLE" in sql:
            made.append(sql.split('"')[1])
        return real(sql, *a, **k)

    con.raw_sql = spy
    try:
        first = counts_tables(facts, GROUPINGS[:1])
        second = counts_tables(facts, GROUPINGS[:1])
    finally:
        del con.raw_sql
    pd.testing.assert_frame_equal(first[0], second[0], check_exact=True)
    assert len(made) == 2 and made[0] != made[1], made
    names = con.raw_sql(
        "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()"
    ).fetchall()
    assert [n for (n,) in names if n.startswith("_crm_campaign")] == []

"""Period comparisons with an empty week, on a B2B pipeline shaped like a CRM export (#21).

Leads arrive in bursts: a week without a new lead is common. The comparison of that week
with the next shows "no data" for the empty week's rates, never blank cells, and a sentence
says which week nobody entered.
"""

from __future__ import annotations

import io

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers.funnels import analysis as A
from crm_helpers.funnels import narrative as N
from crm_helpers.funnels.core import FunnelSpec
from crm_helpers.report import tables
from tests.journeys.real_shapes import B2B_START, b2b_leads

SPEC = FunnelSpec(["lead_created", "qualified", "won"], conversion_window_days=60)
QUIET = (B2B_START + pd.Timedelta(weeks=6)).normalize()  # the Monday of the week left empty


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    df = b2b_leads(n=400, seed=9)
    created = df[df["event"] == "lead_created"].set_index("user_id")["ts"]
    quiet = created[(created >= QUIET) & (created < QUIET + pd.Timedelta(weeks=1))].index
    assert len(quiet) > 5  # the week had leads before they were removed
    return df[~df["user_id"].isin(quiet)].reset_index(drop=True)


def _rates(df: pd.DataFrame, week: pd.Timestamp) -> list[float]:
    """Brute force: of the leads created in the week, the share reaching each later step
    in order within the window (the pipeline has one event of each kind per lead)."""
    first = df.pivot_table(index="user_id", columns="event", values="ts", aggfunc="min")
    entered = first[
        (first["lead_created"] >= week) & (first["lead_created"] < week + pd.Timedelta(weeks=1))
    ]
    if entered.empty:
        return [float("nan")] * 2
    lim = entered["lead_created"] + pd.Timedelta(days=60)
    q = entered["qualified"].notna() & (entered["qualified"] <= lim)
    w = (
        q
        & entered["won"].notna()
        & (entered["won"] >= entered["qualified"])
        & (entered["won"] <= lim)
    )
    return [q.mean(), w.mean()]


def test_empty_week_shows_no_data(leads):
    data = ibis.memtable(leads)
    # "today" such that the last complete week (with its 60-day window) is the week after QUIET
    today = (QUIET + pd.Timedelta(weeks=2) + pd.Timedelta(days=60)).date()
    c = A.period_comparison(data, SPEC, "week", current=today)
    assert (c["previous_period"].iloc[0], c["current_period"].iloc[0]) == (
        QUIET,
        QUIET + pd.Timedelta(weeks=1),
    )
    assert (c["previous_entered"] == 0).all() and (c["current_entered"] > 0).all()
    assert c["previous_rate"].isna().all()
    assert c["current_rate"].to_numpy() == pytest.approx(
        _rates(leads, QUIET + pd.Timedelta(weeks=1))
    )
    html = tables.to_html(
        c[["step", "previous_rate", "current_rate", "abs_change"]],
        percent=["previous_rate", "current_rate", "abs_change"],
        missing=N.period_missing(c),
    )
    cells = pd.read_html(io.StringIO(html))[0]
    cells.columns = ["step", "previous_rate", "current_rate", "abs_change"]  # from the labels
    assert (cells["previous_rate"] == "no data").all() and (cells["abs_change"] == "no data").all()
    assert not (cells["current_rate"] == "no data").any()
    assert cells["current_rate"].str.endswith("%").all()
    note = N.period_note(c, "week")
    assert note == (
        f"No user entered the funnel in the previous week ({QUIET:%Y-%m-%d}): its rates show "
        "'no data' and the change cannot be computed."
    )


def test_weeks_with_entrants_have_no_note(leads):
    today = (QUIET + pd.Timedelta(weeks=4) + pd.Timedelta(days=60)).date()
    c = A.period_comparison(ibis.memtable(leads), SPEC, "week", current=today)
    assert (c["previous_entered"] > 0).all() and (c["current_entered"] > 0).all()
    assert N.period_note(c, "week") is None
    for which in ("previous", "current"):
        week = pd.Timestamp(c[f"{which}_period"].iloc[0])
        assert c[f"{which}_rate"].to_numpy() == pytest.approx(_rates(leads, week))
    html = tables.to_html(
        c[["previous_rate"]], percent=["previous_rate"], missing=N.period_missing(c)
    )
    assert "no data" not in html


def test_missing_text_only_for_named_columns():
    df = pd.DataFrame({"a": [np.nan, 0.5], "b": [np.nan, 1.0]})
    html = tables.to_html(df, percent=["a"], missing={"a": "no data"})
    assert html.count("no data") == 1 and "50.0%" in html
    assert tables.to_html(df, missing={"zz": "no data"}).count("no data") == 0


def test_both_weeks_empty_after_the_last_lead(leads):
    """The pipeline's last events (won / lost) come weeks after its last new lead: the last
    complete weeks by the data's end have no entrants at all (the report's 7-day window)."""
    spec = FunnelSpec(["lead_created", "qualified", "won"], conversion_window_days=7)
    c = A.period_comparison(ibis.memtable(leads), spec, "week")
    assert (c["previous_entered"] == 0).all() and (c["current_entered"] == 0).all()
    note = N.period_note(c, "week")
    assert note.startswith("No user entered the funnel in the previous week (")
    assert ") and the current week (" in note and "their rates show 'no data'" in note

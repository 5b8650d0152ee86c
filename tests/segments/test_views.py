"""The segment and lookalike reports' displayed tables (#26): labels, percentages, intervals
in one cell, 'too recent' instead of NaN, counts collapsed."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from crm_helpers.lookalike import views as lookalike
from crm_helpers.segments import views


def _rows(page: str) -> list[list[str]]:
    return [
        re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r) for r in re.findall(r"<tr>(.*?)</tr>", page)
    ]


def test_retention_names_its_segments_and_months():
    r = pd.DataFrame({0: [1.0, 1.0], 1: [0.265, np.nan]}, index=["About to sleep", "Loyal"])
    got = _rows(views.retention(r).data)
    assert got == [["Segment", "Month 0", "Month 1"], ["About to sleep", "100.0%", "26.5%"],
                   ["Loyal", "100.0%", "too recent"]]  # fmt: skip


def test_engagement_profile_fits_the_page():
    df = pd.DataFrame(
        {"channel": ["email"], "metric": ["open"], "sent_group": [74], "hits_group": [22],
         "rate_group": [0.297], "ci_low": [0.2052721605976081], "ci_high": [0.4093291013198458],
         "sent_base": [568], "hits_base": [178], "rate_base": [0.313], "index": [94.868]}
    )  # fmt: skip
    page = views.engagement_profile(df).data
    main, details = page.split("<details", 1)
    assert _rows(main) == [
        ["Channel", "Metric", "Rate of the segment (95% interval)", "Rate of the base",
         "Index (100 = base)"],
        ["email", "open", "29.7% [20.5%, 40.9%]", "31.3%", "94.87"],
    ]  # fmt: skip
    assert _rows(details)[1] == ["email", "open", "74", "22", "568", "178"]


def test_lookalike_audit_reads_lifts_as_multiples():
    df = pd.DataFrame(
        {"model": ["default (pu)"], "n": [494], "held_out": [13], "recall_at_n": [0.692],
         "lift_at_1%": [7.611], "auc": [0.882]}
    )  # fmt: skip
    got = _rows(lookalike.audit(df).data)
    assert got[0] == ["Model", "Audience size", "Seeds held out", "Held-out seeds found",
                      "Lift in the top 1% (× random)", "AUC"]  # fmt: skip
    assert got[1] == ["default (pu)", "494", "13", "69.2%", "7.61", "0.88"]

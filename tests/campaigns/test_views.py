"""The campaign report's tables as shown: human headers, intervals in one cell, no NaN;
the heatmap grid leaves cells with few sends blank."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from crm_helpers.campaigns import analysis, views


def _counts() -> pd.DataFrame:
    return pd.DataFrame(
        {"campaign_id": [1001, 1002], "channel": ["email", "sms"], "sent": [200, 100],
         "opened": [50, pd.NA], "machine_opened": [5, pd.NA], "human_opened": [45, pd.NA],
         "clicked": [10, 3], "clicked_opened": [8, pd.NA], "converted": [2, 0],
         "conversions": [2, 0], "revenue": [80.0, 0.0]}
    ).astype({"opened": "Int64", "machine_opened": "Int64", "human_opened": "Int64",
              "clicked_opened": "Int64"})  # fmt: skip


def test_scorecard_reads_without_code_names_or_nan():
    rates = analysis.rates_table(_counts())
    html = views.channels(rates).data + views.campaigns(rates).data
    heads = re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", html)
    assert "Open rate (95% interval)" in heads and "Revenue per 1,000 sent" in heads
    assert "Click-to-open (95% interval)" in heads and "Campaign" in heads
    assert not [h for h in heads if "_" in h]
    assert "nan" not in html.lower() and "<td class='txt'></td>" not in html
    assert "1001" in html and "1,001" not in html  # an id is a name
    # the sms row has no opens: a dash, not NaN; the click rate has its interval
    assert re.search(r"5\.0% \[\d+\.\d%, \d+\.\d%\]", html)
    assert "–" in html


def test_windows_say_none_better():
    w = pd.DataFrame(
        {"channel": ["email", "sms"], "best_hour": [9, None], "best_rate": [0.1, np.nan],
         "adjusted_rate": [0.1, np.nan], "rest_rate": [0.05, np.nan],
         "group_rate": [0.06, 0.02], "odds_ratio": [2.0, np.nan], "hours": [[9, 10], []]}
    )  # fmt: skip
    html = views.windows(w).data
    assert "09:00, 10:00" in html and "none better" in html and "nan" not in html.lower()


def test_heatmap_cells_with_few_sends_are_blank():
    from crm_helpers.campaigns import analysis

    counts = pd.DataFrame({"weekday": [0, 0], "hour": [3, 9], "sent": [2, 50], "clicked": [2, 5]})
    grid = analysis.weekday_hour_grid(counts, "click_rate", min_sends=10)
    assert grid.loc[0, 9] == 0.1 and pd.isna(grid.loc[0, 3])
    assert analysis.weekday_hour_grid(counts, "click_rate").loc[0, 3] == 1.0

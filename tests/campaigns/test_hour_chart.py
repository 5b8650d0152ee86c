"""The rate-by-send-hour chart shows the tested hours only, and says which it left out.

A campaign sending a handful of messages at night (the synthetic world's cart-abandoner
coupon sends at any hour; regular campaigns send 06-23 UTC) gives those hours Wilson
intervals spanning most of the scale. ``analysis.hour_table`` marks them ``tested`` False
(fewer than ``min_sends``); ``plots.plot_hours`` leaves them out and names them in a note.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_helpers.campaigns import analysis
from crm_helpers.plots import campaigns as plots


def _counts() -> pd.DataFrame:
    rows = []
    for h in range(6, 24):  # the regular campaign: 1,000 sends an hour, 4-7% clicks
        rows.append(("email", "regular", h, 1000, 40 + 3 * (h == 9) * 10))
    for h in range(6):  # three sends an hour at night, two clicked: 67% with a huge interval
        rows.append(("email", "coupon", h, 3, 2))
    df = pd.DataFrame(rows, columns=["channel", "campaign_id", "hour", "sent", "clicked"])
    df["weekday"] = 0
    for c in ("human_opened", "converted"):
        df[c] = pd.array([pd.NA] * len(df), dtype="Int64")
    return df


def test_hours_with_few_sends_are_marked_untested():
    hours = analysis.hour_table(_counts(), "click_rate", min_sends=100)
    assert hours.set_index("hour")["tested"].to_dict() == {h: h >= 6 for h in range(24)}
    assert hours.loc[~hours["tested"], "p_value"].isna().all()
    night = hours[hours["hour"] == 0].iloc[0]
    assert night["ci_high"] - night["ci_low"] > 0.5  # the interval that dominated the chart


def test_chart_draws_tested_hours_only_and_names_the_rest():
    hours = analysis.hour_table(_counts(), "click_rate", min_sends=100)
    fig = plots.plot_hours(hours, min_sends=100)
    (trace,) = fig.data
    y = np.asarray(trace.y, dtype=float)
    x = np.asarray(trace.x)
    assert sorted(x[np.isfinite(y)].tolist()) == list(range(6, 24))
    top = y + np.nan_to_num(np.asarray(trace.error_y.array, dtype=float))
    assert np.nanmax(top) < 0.1  # the scale is set by the real pattern (4-7%), not 67% +- 40
    assert np.isnan(y[:6]).all()  # a gap, not a line bridging the night
    (note,) = fig.layout.annotations
    assert "fewer than 100 sends each" in note.text
    assert "email: 00, 01, 02, 03, 04, 05 h (18 sends)" in note.text
    # the best hour is still marked
    assert trace.meta["better"] == [9]


def test_chart_without_untested_hours_has_no_note():
    c = _counts()
    hours = analysis.hour_table(c[c["campaign_id"] == "regular"], "click_rate", min_sends=100)
    assert not plots.plot_hours(hours, min_sends=100).layout.annotations

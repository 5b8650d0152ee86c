"""The rate-by-frequency chart is scaled to the bands with enough messages.

On the default world 6 messages had 7 others before them in the window: none clicked, and
the Wilson interval [0%, 39%] set the chart's scale, flattening the bands of 480k, 137k and
29k messages to a few pixels. ``plot_frequency`` fits the y axis to the bands with at least
``min_sends`` messages and names the band whose interval it cut.
"""

from __future__ import annotations

import pandas as pd

from crm_helpers.plots import campaigns as plots
from crm_helpers.stats import wilson_interval


def _table(sparse_sent: int) -> pd.DataFrame:
    sent = [480_000, 137_000, 29_000, sparse_sent]
    clicked = [16_400, 3_370, 400, 0]
    lo, hi = wilson_interval(clicked, sent)  # vectorised
    return pd.DataFrame(
        {
            "count": [0, 1, 2, 7],
            "label": ["0", "1", "2", "7"],
            "sent": sent,
            "rate": [c / n for c, n in zip(clicked, sent, strict=True)],
            "ci_low": lo,
            "ci_high": hi,
        }
    )


def test_a_sparse_band_does_not_set_the_scale():
    fig = plots.plot_frequency(_table(6), min_sends=100)
    top = fig.layout.yaxis.range[1]
    assert 0.034 < top < 0.06  # the 3.4% band fits, the 39% interval is cut
    notes = [a.text for a in fig.layout.annotations if "cut" in a.text]
    assert notes and "fewer than 100 messages (7)" in notes[0]


def test_no_cut_when_every_band_has_enough_messages():
    fig = plots.plot_frequency(_table(5_000), min_sends=100)
    assert fig.layout.yaxis.range is None
    assert not [a for a in fig.layout.annotations if "cut" in (a.text or "")]

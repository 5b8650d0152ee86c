"""What the screenshots of the default reports at 1280 px showed wrong, fixed and kept so (#26).

Every axis naming its unit is checked on every figure of every executed report in
tests/notebooks/test_report_for_analysts.py; here the figure-level fixes on tiny frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_helpers.plots import experiments, funnels, segments, theme


def _path(early: float) -> pd.DataFrame:
    days = pd.date_range("2025-01-01", periods=10, freq="D")
    n = np.arange(1, 11) * 100
    lift = np.full(10, 0.05)
    half = np.r_[early, np.full(9, 0.2)]
    return pd.DataFrame(
        {"day": days, "variant": "b", "n": n, "n_control": n, "rel_lift": lift,
         "ci_low": lift - half, "ci_high": lift + half,
         "seq_ci_low": lift - 1.5 * half, "seq_ci_high": lift + 1.5 * half}
    )  # fmt: skip


def test_the_lift_over_time_is_scaled_to_the_settled_days():
    fig = experiments.plot_sequential(_path(early=10.0))  # day 1: +-1,500%
    lo, hi = fig.layout.yaxis.range
    late = _path(10.0).iloc[2:]  # from 20% of the users on
    assert lo <= late["seq_ci_low"].min() and hi >= late["seq_ci_high"].max()
    assert hi - lo < 2.0  # not the first day's +-1,500%
    assert any("wider than the chart" in a.text for a in fig.layout.annotations)
    calm = experiments.plot_sequential(_path(early=0.2))
    assert calm.layout.yaxis.range is None and not calm.layout.annotations


def test_odds_ratio_ticks_are_one_two_five_per_decade():
    ticks = funnels._log_ticks(np.array([0.3, 0.9, 1.4, 7.0]))
    assert ticks["tickvals"] == [0.2, 0.5, 1, 2, 5, 10]
    assert ticks["ticktext"] == ["0.2", "0.5", "1", "2", "5", "10"]
    assert funnels._log_ticks(np.array([np.nan, -1.0])) == {}


def test_y_titles_keep_off_the_tick_labels():
    assert theme.TEMPLATE.layout.yaxis.title.standoff == 12
    fig = experiments.plot_forest(
        pd.DataFrame(
            {
                "metric": ["conversion"],
                "variant": ["b"],
                "diff": [0.01],
                "rel_lift": [0.1],
                "rel_ci_low": [-0.1],
                "rel_ci_high": [0.3],
                "significant": [False],
            }
        )  # fmt: skip
    )
    assert fig.layout.yaxis.title.text == "Metric · arm"


def test_the_migration_heatmap_grows_with_its_rows():
    names = [f"s{i}" for i in range(11)]
    big = pd.DataFrame(np.ones((11, 11), dtype=int), index=names, columns=names)
    assert segments.plot_migration(big, what="segment").layout.height >= 11 * 44
    small = pd.DataFrame(np.ones((4, 4), dtype=int), index=names[:4], columns=names[:4])
    assert segments.plot_migration(small).layout.height == 420


def test_the_cluster_map_draws_without_webgl():
    points = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [1.0, 0.0, 1.0], "cluster": [0, 0, 1]})
    fig = segments.plot_cluster_map(points)
    assert {t.type for t in fig.data} == {"scatter"}

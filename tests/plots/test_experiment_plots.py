"""Experiment figures draw what their tables say (traces inspected, no pixels)."""

from __future__ import annotations

import pandas as pd

from crm_helpers.plots import experiments as P

ARMS = pd.DataFrame(
    {
        "variant": ["control", "b", "b"],
        "metric": ["conversion", "conversion", "revenue"],
        "diff": [None, 0.02, 1.0],
        "rel_lift": [None, 0.2, 0.05],
        "rel_ci_low": [None, 0.1, -0.02],
        "rel_ci_high": [None, 0.3, 0.12],
        "significant": [False, True, False],
    }
)


def test_forest_has_one_marker_per_comparison_and_marks_significance():
    fig = P.plot_forest(ARMS)
    assert [t.meta["metric"] for t in fig.data] == ["conversion", "revenue"]
    assert [t.meta["significant"] for t in fig.data] == [True, False]
    assert fig.data[0].x[0] == 0.2 and fig.data[0].error_x.arrayminus[0] == 0.1


def test_sequential_posterior_segments_waterfall():
    path = pd.DataFrame(
        {
            "day": pd.date_range("2025-01-01", periods=3),
            "variant": "b",
            "rel_lift": [0.3, 0.2, 0.2],
            "ci_low": [-0.1, 0.0, 0.1],
            "ci_high": [0.7, 0.4, 0.3],
            "seq_ci_low": [-0.5, -0.2, -0.05],
            "seq_ci_high": [1.1, 0.6, 0.45],
        }
    )
    kinds = [t.meta["kind"] for t in P.plot_sequential(path, "conversion").data]
    assert kinds == ["fixed", "sequential", "sequential", "estimate"]
    post = pd.DataFrame(
        {"variant": ["b"], "mean": [0.1], "sd": [0.05], "chance_to_beat_control": [0.977]}
    )
    fig = P.plot_posteriors(post)
    assert "97.7%" in fig.data[0].name
    seg = pd.DataFrame(
        {"segment": ["ios", "web"], "variant": "b", "rel_lift": [0.1, 0.3], "rel_ci_low": [0.0, -0.2],
         "rel_ci_high": [0.2, 0.8], "small": [False, True], "significant": [True, False]}
    )  # fmt: skip
    fig = P.plot_segments(seg)
    assert list(fig.data[0].marker.symbol) == ["star", "circle"]
    econ = {"variant": "b", "gross_margin": 0.5, "incremental_revenue": 1000.0, "coupon_cost": 100.0,
            "send_cost": 50.0, "net_profit": 350.0, "net_profit_low": -50.0, "net_profit_high": 750.0}  # fmt: skip
    fig = P.plot_waterfall(econ)
    assert list(fig.data[0].y) == [500.0, -100.0, -50.0, 350.0]

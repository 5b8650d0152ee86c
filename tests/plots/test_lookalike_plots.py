"""Lookalike figures draw what their frames hold (traces inspected through ``meta``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_helpers.lookalike.audit import gain_table
from crm_helpers.lookalike.profile import driver_table, profile_table, score_distribution
from crm_helpers.plots import lookalike as plots


def _gains():
    rng = np.random.default_rng(0)
    held = rng.random(1000) < 0.05
    cand = np.ones(1000, dtype=bool)
    return {
        "default": gain_table(held + rng.random(1000), held, cand),
        "random": gain_table(rng.random(1000), held, cand),
        "none": None,
    }


def test_lift_and_recall_figures():
    g = _gains()
    fig = plots.plot_lift_curve(g)
    assert [t.meta["model"] for t in fig.data] == ["expected_random", "default", "random"]
    assert fig.data[1].y[-1] == 1.0 and fig.data[1].x[0] == 0
    fig = plots.plot_recall_vs_n(g, n=100)
    assert [t.meta["model"] for t in fig.data] == ["default", "random"]


def test_histogram_profile_and_drivers():
    s = np.linspace(0, 1, 101)
    dist = score_distribution(s, s > 0.9, bins=10)
    assert dist["population"].sum() == 101 and dist["audience"].sum() == 10
    fig = plots.plot_score_histogram(dist)
    assert [t.meta["group"] for t in fig.data] == ["population", "audience"]
    X = np.array([[1.0, 0.0], [3.0, 1.0], [2.0, 1.0]])
    masks = {
        "seeds": np.array([True, False, False]),
        "lookalikes": np.array([False, True, True]),
        "population": np.ones(3, dtype=bool),
    }
    p = profile_table(X, ["x", "attr:y=1"], masks).assign(label=["x", "y: 1"])
    fig = plots.plot_profile(p)
    assert list(fig.data[0].y) == ["y: 1", "x"]  # reversed: first row on top
    d = driver_table(
        type("M", (), {"feature_importance": lambda self: np.array([0.5, -2])})(), ["a", "b"]
    )
    assert d["feature"].tolist() == ["b", "a"]
    fig = plots.plot_feature_importance(d)
    assert list(fig.data[0].x) == [0.5, -2.0]
    assert pd.isna(driver_table(object(), ["a"]).get("weight")).all()

"""Segment figures draw what their frames say (traces inspected, no pixels)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_helpers.plots import segments as plots


def test_rfm_and_state_figures():
    summary = pd.DataFrame({"segment": ["Champions", "Lost", "New"], "customers": [5, 3, 0],
                            "revenue_share": [0.8, 0.2, np.nan], "avg_order_value": [50.0, 10.0, np.nan],
                            "action": ["reward", "suppress", "onboard"]})  # fmt: skip
    fig = plots.plot_rfm_treemap(summary)
    assert list(fig.data[0].labels) == ["Champions", "Lost"]  # empty segments left out
    grid = pd.DataFrame({"r_score": [5, 1], "f_score": [5, 1], "customers": [5, 3],
                         "segment": ["Champions", "Lost"]})  # fmt: skip
    z = np.array(plots.plot_rfm_grid(grid).data[0].z)
    assert z[4, 4] == 5 and z[0, 0] == 3 and z.sum() == 8
    counts = pd.DataFrame({"period_end": pd.to_datetime(["2024-01-31"] * 2), "state": ["active", "churned"],
                           "users": [7, 2]})  # fmt: skip
    fig = plots.plot_states_over_time(counts)
    assert [t.name for t in fig.data] == list(plots.STATE_COLORS)
    assert list(fig.data[1].x) == ["2024-01-31"] and list(fig.data[1].y) == [7]


def test_matrix_retention_cluster_model_figures():
    mat = pd.DataFrame([[3, 1], [0, 4]], index=["active", "churned"], columns=["active", "churned"])
    z = np.array(plots.plot_migration(mat).data[0].z)
    assert np.allclose(z, [[0.75, 0.25], [0.0, 1.0]])
    ret = pd.DataFrame({"cohort": pd.to_datetime(["2024-01-01", "2024-01-01"]), "period": [0, 1],
                        "share": [1.0, 0.4]})  # fmt: skip
    assert np.allclose(np.array(plots.plot_retention(ret).data[0].z), [[1.0, 0.4]])
    prof = pd.DataFrame({"cluster": [0, 0, 1, 1], "feature": ["a", "b", "a", "b"],
                         "effect_size": [1.0, -0.5, -1.0, 0.5]})  # fmt: skip
    assert np.array(plots.plot_cluster_profiles(prof).data[0].z).shape == (2, 2)
    assert plots.plot_cluster_profiles(prof).data[0].zmax == 1.0
    big = prof.assign(effect_size=[20.0, -0.5, -1.0, 0.5])  # one outlier: colour saturates at 3
    h = plots.plot_cluster_profiles(big).data[0]
    assert (h.zmin, h.zmax) == (-3.0, 3.0) and np.array(h.z)[0, 0] == 20.0
    pts = pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0], "cluster": [0, 1]})
    assert len(plots.plot_cluster_map(pts).data) == 2
    hist = pd.DataFrame({"clv_low": [0.0, 10.0], "clv_high": [10.0, 20.0], "customers": [5.0, 2.0]})
    assert list(plots.plot_clv(hist, "90 days").data[0].y) == [5.0, 2.0]
    hold = pd.DataFrame({"bucket": ["0", "7+"], "predicted": [0.2, 5.0], "actual": [0.3, 4.0]})
    fig = plots.plot_holdout(hold)
    assert [t.name for t in fig.data] == ["actual", "predicted (BG/NBD)"]


def test_cluster_index_heatmap_is_seaborn_and_annotated():
    """Cells carry the rounded index; the colour is log2(index / 100) clipped at +-2."""
    prof = pd.DataFrame({"cluster": [0, 0, 1, 1], "feature": ["a", "b", "a", "b"],
                         "index": [400.0, 50.0, 100.0, 1000.0]})  # fmt: skip
    fig = plots.plot_cluster_indices(prof)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(["400", "50", "100", "1000"])
    mesh = ax.collections[0]
    assert np.allclose(np.asarray(mesh.get_array()).ravel(), [2.0, -1.0, 0.0, 2.0])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cluster 0", "cluster 1"]
    png = plots.static_image(fig)
    assert png.data[:8] == b"\x89PNG\r\n\x1a\n"

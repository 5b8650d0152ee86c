"""Cluster features and the low-activity rule on tiny inline data (answers by hand)."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_helpers.segments import clusters as cl


def _events() -> pd.DataFrame:
    # user 1: 3 days, 4 events with a category (3 sports, 1 home) + 1 without
    # user 2: 1 day, 2 events (1 home, 1 null category)
    rows = [
        (1, "2025-01-01 10:00", "sports"),
        (1, "2025-01-01 10:05", "sports"),
        (1, "2025-01-02 09:00", "home"),
        (1, "2025-01-03 09:00", "sports"),
        (1, "2025-01-03 09:01", None),
        (2, "2025-01-02 12:00", "home"),
        (2, "2025-01-02 12:01", None),
        (3, "2025-01-09 12:00", "home"),  # after as_of: ignored
    ]
    e = pd.DataFrame(rows, columns=["user_id", "ts", "category"])
    e["ts"] = pd.to_datetime(e["ts"])
    e["event"] = "view"
    return e


def test_browse_shares_by_hand():
    f = cl.feature_table(as_of="2025-01-05", events=ibis.memtable(_events()))
    f = f.set_index("user_id")
    assert f.index.tolist() == [1, 2]
    assert f.loc[1, "browse_sports"] == pytest.approx(0.75)
    assert f.loc[1, "browse_home"] == pytest.approx(0.25)
    assert f.loc[2, "browse_home"] == pytest.approx(1.0) and f.loc[2, "browse_sports"] == 0
    assert f.loc[1, "active_days"] == 3 and f.loc[2, "active_days"] == 1
    assert not [c for c in f.columns if c.startswith("cat_")]


def test_purchase_categories_only_without_browsing():
    o = pd.DataFrame(
        {
            "order_id": [1, 2, 3],
            "user_id": [1, 1, 2],
            "ts": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-02"]),
            "revenue": [10.0, 20.0, 5.0],
            "category": ["toys", "home", "toys"],
        }
    )
    e = _events().drop(columns="category")
    f = cl.feature_table(as_of="2025-01-05", events=ibis.memtable(e), orders=ibis.memtable(o))
    f = f.set_index("user_id")
    assert f.loc[1, "cat_toys"] == pytest.approx(0.5) and f.loc[2, "cat_toys"] == 1.0
    assert not [c for c in f.columns if c.startswith("browse_")]


def _features(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = np.tile([1, 2, 3, 6, 9, 12], n // 6)
    group = np.arange(n) % 2
    return pd.DataFrame(
        {
            "user_id": np.arange(n),
            "active_days": days.astype(float),
            "browse_sports": np.where(group == 0, 0.9, 0.1) + rng.normal(0, 0.02, n),
            "orders": rng.poisson(2, n).astype(float),
        }
    )


def test_low_activity_users_are_set_aside():
    f = _features()
    res = cl.fit_clusters(f, 2, min_active_days=3)
    low = (f["active_days"] < 3).to_numpy()
    lab = res.labels["cluster"].to_numpy()
    assert (lab[low] == -1).all() and (lab[~low] >= 0).all()
    assert res.clustered.tolist() == (~low).tolist() and len(res.scaled) == (~low).sum()
    sizes = res.sizes()
    assert sizes["cluster"].tolist() == [0, 1, -1]
    assert sizes["users"].sum() == len(f) and sizes.iloc[-1]["users"] == low.sum()
    # the two browsing groups are the two clusters
    g = f["browse_sports"].to_numpy()[~low] > 0.5
    assert len(set(zip(g, lab[~low], strict=True))) == 2
    prof = cl.cluster_profiles(f, res)
    assert set(prof["cluster"]) == {0, 1}
    assert len(cl.projection_2d(res)) == (~low).sum()


def test_min_active_days_zero_clusters_everyone_and_bad_values():
    f = _features()
    assert (cl.fit_clusters(f, 2, min_active_days=0).labels["cluster"] >= 0).all()
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="min_active_days"):
            cl.fit_clusters(f, 2, min_active_days=bad)
    with pytest.raises(ValueError, match="lower min_active_days"):
        cl.fit_clusters(f, 2, min_active_days=100)


def test_summary_line_names_clusters_in_words():
    from crm_helpers.segments import narrative

    summary = pd.DataFrame(
        {"segment": ["Champions"], "customers": [4], "revenue": [100.0], "revenue_share": [1.0]}
    )
    states = pd.DataFrame({"state": ["active"], "users": [4]})
    tops = pd.DataFrame(
        {"cluster": [0, 0, 1], "feature": ["browse_home", "coupon_share", "active_days"],
         "effect_size": [1.2, -0.5, 2.0]}
    )  # fmt: skip
    sizes = pd.DataFrame({"cluster": [0, 1, -1], "users": [30, 10, 60], "share": [0.3, 0.1, 0.6]})
    lines = narrative.segment_findings(
        summary, states, "2025-01-05", tops=tops, cluster_sizes=sizes
    )
    line = next(x for x in lines if x.startswith("Behavioural clusters"))
    assert "of 40 users (60 users seen on too few days are not clustered)" in line
    assert "cluster 0 (75%): more browsing home, less coupon use" in line
    assert "cluster 1 (25%): more active days" in line
    assert narrative.cluster_feature_label("cat_home_garden") == "buying home garden"

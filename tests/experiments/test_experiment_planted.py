"""The planted experiments of a generated synthetic world are found (truth from
``ground_truth.json``, never hard-coded).

40k users (seed 11): the coupon campaign (80/20 treatment/holdout, a planted recovery lift)
has ~3,900 holdout users, so its expected +4.6-point conversion lift has power ~1; the
checkout redesign drops ~7.7% of treatment rows (sample-ratio mismatch, about 4,500 vs
4,200 users: chi-square p ~ 1e-3 at this size, ~1e-8 on the default 100k world).
"""

from __future__ import annotations

import pytest

from crm_helpers import load
from crm_helpers.experiments import analysis, readout

N_USERS = 40_000
SEED = 11


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    synth = pytest.importorskip("crm_helpers.synth")
    w = synth.generate(synth.SynthConfig(n_users=N_USERS, seed=SEED))
    out = tmp_path_factory.mktemp("experiment_world")
    synth.write_world(w, out)
    return load(out, require=["assignments", "orders"]), w.ground_truth["experiments"]


def _prep(data, truth, name, **kw):
    t = truth[name]
    return readout.prepare(
        data,
        experiment_id=name,
        planned_split=t["intended_split"],
        analysis_window_days=float(t.get("window_days", 14)),
        secondary_metrics=["revenue"],
        **kw,
    )


def test_coupon_lift_is_found_and_counts_match_the_truth(world):
    data, truth = world
    t = truth["cart_abandoner_coupon"]
    prep = _prep(data, truth, "cart_abandoner_coupon")
    assert prep.control == "holdout"  # lookalike-style names, no control_variant given
    assert prep.assignments.counts == t["realised_counts"]
    st = prep.stats.set_index(["variant", "metric"])
    for v in t["variants"]:
        assert st.loc[(v, "conversion"), "sum"] == t["converted_in_window"][v]
        assert st.loc[(v, "revenue"), "sum"] == pytest.approx(t["revenue_in_window"][v], rel=1e-9)
    arms = analysis.arms_table(
        prep.stats, prep.control, primary="conversion", secondary=["revenue"]
    )
    row = arms[(arms["variant"] == "treatment") & (arms["metric"] == "conversion")].iloc[0]
    assert row["p_adjusted"] < 0.001 and row["chance_to_beat_control"] > 0.99
    assert row["diff_ci_low"] <= t["expected_lift"] <= row["diff_ci_high"]
    assert prep.srm.p_value > 0.01  # realised split as planned


def test_planted_srm_is_found_and_clean_experiments_pass(world):
    data, truth = world
    srm = _prep(data, truth, "checkout_redesign").srm
    t = truth["checkout_redesign"]
    assert t["srm_planted"]
    assert srm.observed == t["realised_counts"]
    assert srm.p_value < 0.01
    for name in ("cart_abandoner_coupon", "message_test_3arm"):
        assert _prep(data, truth, name).srm.p_value > 0.01, name

"""Funnel analysis on a generated synthetic world: recover the planted drop-off, and A/A.

The world (``crm_helpers.synth``, fixed seed) plants an extra drop-off on the checkout ->
purchase step for one platform during a known window (``ground_truth["dropoff"]``: platform,
window_start, window_end, factor = 0.6). At real rates checkouts are rare (most visitors
never buy), so this world is a dense one: 60k users, 2.5x the session rates and the same
buying propensity for everyone (``propensity_power=0``). The affected platform then has
~450 checkout users in the 14-day window and a 0.6x drop (~0.8 -> ~0.5) has power ~1.

Platforms also differ a little *by design* outside the window (checkout -> purchase
multipliers ios 1.0, android 0.97, web 0.97; and planted experiment conversions, which always
buy, come more often from the ios-heavy loyalists), so outside the window "no false flag"
means: the planted platform is not flagged and no platform shows a drop anywhere near the
planted size; a small, real difference of web or ios may be (correctly) significant.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.funnels import FunnelSpec, user_funnel
from crm_helpers.funnels import analysis as A


@pytest.fixture(scope="module")
def world(dense_world):
    """The shared dense world (tests/conftest.py ``DENSE_WORLD``) and its ground truth."""
    return load(dense_world), json.loads((dense_world / "ground_truth.json").read_text())


def _naive(ts: str) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t


def _step_rows(data, gt, start, end, source):
    spec = FunnelSpec(
        [gt["from_step"], gt["to_step"]], conversion_window_days=1, start=start, end=end
    )
    b = A.breakdown_table(data, spec, "platform", source=source)
    return b[b["step"] == 2].set_index("group")


@pytest.mark.parametrize("source", ["first_touch", "each_step"])
def test_planted_platform_dropoff_found_in_window(world, source):
    data, truth = world
    gt = truth["dropoff"]
    assert (gt["from_step"], gt["to_step"]) == ("checkout", "purchase")
    start, end = _naive(gt["window_start"]), _naive(gt["window_end"])
    rows = _step_rows(data, gt, start, end, source)
    planted = rows.loc[gt["platform"]]
    assert planted["users"] > 300 and not planted["small_group"]
    # significantly worse than the rest, after BH across platforms
    assert planted["step_significant"] and planted["step_diff"] < 0
    assert planted["significant"] and planted["diff_ci_high"] < -0.15
    # the size of the drop matches the planted factor (0.6 x, with a 0.97 base multiplier)
    ratio = planted["conversion_from_previous"] / planted["step_rest_rate"]
    assert gt["factor"] - 0.15 < ratio < gt["factor"] + 0.15
    # no other platform is significantly WORSE than the rest in the window
    others = rows.drop(index=gt["platform"])
    assert not (others["step_significant"] & (others["step_diff"] < 0)).any()


@pytest.mark.parametrize("source", ["first_touch", "each_step"])
@pytest.mark.parametrize("offset_days", [-28, -14, 14])
def test_no_false_flag_outside_window(world, source, offset_days):
    data, truth = world
    gt = truth["dropoff"]
    start = _naive(gt["window_start"]) + pd.Timedelta(days=offset_days)
    end = start + (_naive(gt["window_end"]) - _naive(gt["window_start"]))
    assert end <= _naive(gt["window_start"]) or start >= _naive(gt["window_end"])
    rows = _step_rows(data, gt, start, end, source)
    planted = rows.loc[gt["platform"]]
    assert planted["users"] > 300
    assert not planted["step_significant"]
    assert not planted["significant"]
    # no platform anywhere near the planted drop (~ -0.3): every CI lower bound above -0.15
    assert (rows["diff_ci_low"] > -0.15).all()
    assert (rows["step_diff"] > -0.08).all()


def _hash_split(user_id: np.ndarray, salt: int, k: int) -> np.ndarray:
    """Group 0..k-1 from a salted splitmix64 hash of the user id."""
    with np.errstate(over="ignore"):
        z = user_id.astype(np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(k)).astype(np.int64)


def _split_counts(per_user: pd.DataFrame, groups: np.ndarray, n: int) -> pd.DataFrame:
    reached = per_user["steps_reached"].to_numpy()
    rows = []
    for g in np.unique(groups):
        r = reached[groups == g]
        rows.append({"group": f"g{g}", **{f"n_{k}": int((r >= k).sum()) for k in range(1, n + 1)}})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def aa_funnel(world):
    """The per-user funnel of the full 5-step funnel, computed ONCE (then re-split)."""
    data, truth = world
    steps = ["visit", "product_view", "add_to_cart", "checkout", "purchase"]
    spec = FunnelSpec(steps, conversion_window_days=7)
    per_user = user_funnel(data.events, spec).select("user_id", "steps_reached").to_pandas()
    return per_user, spec


N_SPLITS = 200


def test_aa_false_positive_rate(aa_funnel):
    """Random 50/50 splits: the group-vs-rest test rejects at ~alpha.

    With 200 splits the number of rejections at alpha = 0.05 is ~Binomial(200, 0.05)
    (mean 10, sd 3.1; splits on the same users are only nearly independent). Accepting
    2..20 rejections (1% to 10%) fails a correct test with probability < 0.2%.
    """
    per_user, spec = aa_funnel
    assert len(per_user) > 5_000
    uid = per_user["user_id"].to_numpy()
    p_values, rejections = [], 0
    for salt in range(N_SPLITS):
        counts = _split_counts(per_user, _hash_split(uid, salt, 2), spec.n_steps)
        b = A.breakdown_from_counts(counts, spec, min_group_users=200)
        g = b.drop_duplicates("group").set_index("group")
        # two groups: each vs the rest is the same test (same p-value)
        assert g["p_value"].nunique() == 1
        p_values.append(g["p_value"].iloc[0])
        rejections += bool(g["p_value"].iloc[0] < 0.05)
    assert 2 <= rejections <= 20, rejections
    # and the p-values look uniform: a Kolmogorov-Smirnov test far from rejecting
    from scipy.stats import kstest

    assert kstest(p_values, "uniform").pvalue > 0.001


def test_aa_bh_flags_nothing_in_most_runs(aa_funnel):
    """Random 4-way splits, each group vs the rest, BH across the 4 groups (q = 0.05).

    Under the global null BH controls the family-wise error at q, so about 5% of runs
    flag anything; we require at least 90% of the 200 runs to flag nothing.
    """
    per_user, spec = aa_funnel
    uid = per_user["user_id"].to_numpy()
    runs_with_flags = 0
    for salt in range(1000, 1000 + N_SPLITS):
        counts = _split_counts(per_user, _hash_split(uid, salt, 4), spec.n_steps)
        b = A.breakdown_from_counts(counts, spec, min_group_users=200)
        assert b["group"].nunique() == 4 and not b["small_group"].any()
        runs_with_flags += bool(b["significant"].any())
    assert runs_with_flags <= 0.10 * N_SPLITS, runs_with_flags


def test_hash_split_is_balanced_and_salted():
    uid = np.arange(100_000)
    a, b = _hash_split(uid, 1, 2), _hash_split(uid, 2, 2)
    assert abs(a.mean() - 0.5) < 0.01 and abs(b.mean() - 0.5) < 0.01
    assert 0.45 < (a == b).mean() < 0.55  # different salts: unrelated splits

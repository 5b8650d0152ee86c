"""The fatigue decay's interval: model or cluster-robust, its variance against statsmodels and
its coverage over simulated worlds (#22).

Why the interval is what it is (measured with the synthetic generator, 20,000 users, the fit
of tests/campaigns/test_planted_truth.py on the regular campaigns; scripts not kept):

* On 60 seeds (3 ... 73, 101 ... 120, 201 ... 220) the open-rate estimate of ``log(decay)``
  was off the plant by 1.23 model standard errors (rms; 53 of 60 intervals covered; chi-square
  p = 0.006): 1.34 and 1.24 on the first two sets of 20 seeds, 1.10 on the third (p = 0.24).
  The click-rate one: 1.11 and 1.04 on the first two sets (covers).
* Not confounding: the same fit to the *expected* counts (the generator's own per-message
  open probability, instrumented) is off the plant by 0.25 standard errors (rms), and a fit
  with that probability as an offset (the model exactly true) spreads as much (1.23 over 60
  seeds; 1.32 on the first 40, 1.02 on the last 20). Send hour, customer type and the hidden
  churn as offsets each moved the spread by under 0.1.
* Not the clustering of a user's messages: user-clustered (sandwich) standard errors equal
  the model's (ratio 1.00 on 40 seeds); the world gives users no response rate of their own
  beyond their type.
* Not campaigns: campaign-clustered standard errors are *smaller* than the model's (ratio
  0.86-0.89 for opens, 0.73-0.79 for clicks): few campaigns carry the slope (the series, a
  campaign sent soon after another) next to one fixed effect per campaign; their intervals
  covered 70-85% of seeds. Campaign x day clusters: ratio 0.87-0.91, no better.
* Given one world, the model standard error is right: re-drawing the opens from the
  generator's probabilities on a fixed world (parametric bootstrap, 200 draws) spreads the
  estimate 0.96x, 1.02x and 1.04x the model standard error (seeds 3, 11, 113), and the
  per-(campaign, band) open counts scatter around the expected ones as binomials (dispersion
  0.9-1.1). On the 40 seeds not used to raise the question (101 ... 120, 201 ... 220) the
  spread is 1.17 (36 of 40 covered; chi-square p = 0.06): no mechanism found reproduces the
  larger spread of the first 20, so it is read as chance plus the small design part; an open
  question if it recurs, not a reason for a wider interval.

So the report keeps the model interval (correct for independent responses, as in this world),
and :func:`~crm_helpers.campaigns.frequency.fit_decay` offers the user-clustered one
(``cluster="user_id"`` on counts by user) for logs where users have a response rate of their
own. These tests pin: the point estimate and both variances equal statsmodels' message-level
GLM (model and ``cov_type="cluster"``), and over simulated worlds the model interval covers
near 95% when responses are independent, while with user-level response rates it undercovers
and the user-clustered interval covers near 95%.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from crm_helpers.campaigns import frequency


def _messages(seed: int, n_users: int = 300, spread: float = 0.0) -> pd.DataFrame:
    """A message log's facts: 3 campaigns; each user gets 4 messages, each of a random
    campaign, and is messaged at a steady pace: every message of the user has the same
    ``prior_messages`` k (0-4, drawn per user, as for a user on a weekly programme);
    clicks ~ Bernoulli(base_c x 0.8**k x u), ``u`` the user's own rate (log-normal with sd
    ``spread``, mean 1; 1 for everyone when 0)."""
    rng = np.random.default_rng(seed)
    u = np.exp(rng.normal(-(spread**2) / 2, spread, n_users)) if spread else np.ones(n_users)
    user = np.repeat(np.arange(n_users), 4)
    k = rng.integers(0, 5, n_users)[user]
    c = rng.integers(0, 3, len(user))
    p = np.array([0.25, 0.15, 0.2])[c] * 0.8**k * u[user]
    return pd.DataFrame(
        {"user_id": user, "campaign_id": c, "prior_messages": k, "sent": 1,
         "clicked": (rng.random(len(user)) < np.minimum(p, 0.95)).astype(int)}
    )  # fmt: skip


def _counts(facts: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return facts.groupby([*by, "prior_messages"], as_index=False)[["sent", "clicked"]].sum()


def _statsmodels(facts: pd.DataFrame, cluster: bool):
    import statsmodels.api as sm

    x = np.column_stack(
        [np.ones(len(facts)), facts["prior_messages"].to_numpy(float),
         pd.get_dummies(facts["campaign_id"], drop_first=True, dtype=float).to_numpy()]
    )  # fmt: skip
    family = sm.families.Binomial(link=sm.families.links.Log())
    kw = {"cov_type": "cluster", "cov_kwds": {"groups": facts["user_id"].to_numpy()}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = np.r_[math.log(facts["clicked"].mean()), np.zeros(x.shape[1] - 1)]
        return sm.GLM(facts["clicked"].to_numpy(float), x, family=family).fit(
            start_params=start, tol=1e-12, **(kw if cluster else {})
        )


def test_model_and_user_clustered_variance_equal_statsmodels():
    facts = _messages(5, spread=0.8)
    model = frequency.fit_decay(_counts(facts, ["campaign_id"]))
    robust = frequency.fit_decay(_counts(facts, ["campaign_id", "user_id"]), cluster="user_id")
    ref_model, ref_robust = _statsmodels(facts, False), _statsmodels(facts, True)
    # the same point estimate, to the fits' convergence (fit_decay: statsmodels' default tol)
    assert math.log(model.decay) == pytest.approx(ref_model.params[1], abs=1e-6)
    assert math.log(robust.decay) == pytest.approx(ref_model.params[1], abs=1e-6)
    # variances: relative 1e-4 (model: expected information; robust: observed information
    # as the bread and statsmodels' CR1 factor; the rest is the convergence above)
    assert model.log_decay_se == pytest.approx(ref_model.bse[1], rel=1e-4)
    assert robust.log_decay_se == pytest.approx(ref_robust.bse[1], rel=1e-4)
    assert robust.variance == "cluster-robust by user_id" and robust.clusters == 300
    assert model.variance == "model" and model.clusters == 0
    # the model interval is kept beside the robust one; users with their own rates: wider
    assert robust.decay_ci_low_model == pytest.approx(model.decay_ci_low)
    assert robust.log_decay_se > 1.1 * model.log_decay_se


def test_the_fatigue_record_says_which_interval():
    from crm_helpers.campaigns import narrative

    counts = _counts(_messages(7, spread=0.8), ["campaign_id", "user_id"])
    fit = frequency.fit_decay(counts, cluster="user_id")
    rec = narrative.fatigue_record(frequency.frequency_table(counts), "click_rate", None, fit)
    assert rec["decay_variance"] == "cluster-robust by user_id"
    assert rec["log_decay_se"] == fit.log_decay_se
    assert {"by_count", "cap"} <= set(rec)  # the interface keys stay


def test_an_absent_cluster_column_gives_the_model_interval():
    counts = _counts(_messages(6), ["campaign_id"])
    a = frequency.fit_decay(counts)
    b = frequency.fit_decay(counts, cluster="user_id")
    assert a == b and a.variance == "model"


def _coverage(spread: float, seeds: range) -> tuple[float, float]:
    planted = math.log(0.8)
    hits_model = hits_robust = 0
    for seed in seeds:
        facts = _messages(seed, spread=spread)
        m = frequency.fit_decay(_counts(facts, ["campaign_id"]))
        r = frequency.fit_decay(_counts(facts, ["campaign_id", "user_id"]), cluster="user_id")
        hits_model += math.log(m.decay_ci_low) <= planted <= math.log(m.decay_ci_high)
        hits_robust += math.log(r.decay_ci_low) <= planted <= math.log(r.decay_ci_high)
    return hits_model / len(seeds), hits_robust / len(seeds)


SEEDS = range(100, 200)  # 100 simulated worlds: a coverage of 0.95 is seen in [0.90, 0.99]


@pytest.mark.slow  # ~10 s idle: 200 fits
def test_independent_responses_the_model_interval_covers():
    model, robust = _coverage(0.0, SEEDS)
    assert 0.90 <= model <= 0.99, model
    assert 0.90 <= robust <= 0.99, robust


@pytest.mark.slow
def test_users_with_their_own_rates_need_the_clustered_interval():
    model, robust = _coverage(1.0, SEEDS)
    assert model < 0.88, model  # the model interval undercovers
    assert 0.90 <= robust <= 0.99, robust

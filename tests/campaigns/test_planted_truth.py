"""The campaign analysis recovers the campaign truths planted in the synthetic world (#22).

One generated world (``SynthConfig(n_users=20_000, seed=11)``, written as Parquet and read
back with :func:`crm_helpers.load`, as a report reads it) is analysed with the helpers the
campaign notebook calls, in the notebook's order and with its defaults (attribution 3 days,
fatigue window 7 days, the hour metric and the holdout derived as the notebook derives
them). Planted truths: ``ground_truth["campaigns"]`` (data/README.md, "Campaign truths").

* best send hour per channel: the report's send window (``analysis.send_windows``) names the
  planted hour, or one next to it (the plant's bump is wide: x1.60 at the hour, x1.46 one
  hour away);
* fatigue: the decay fitted by ``frequency.fit_decay`` has a 95% interval covering the
  planted ``exp(-0.4)`` per earlier message;
* holdout: the incremental conversions per 1,000 recipients of ``promo_email_holdout``
  (``holdout.incremental_report``) have a 95% interval covering the planted effect.
"""

from __future__ import annotations

import json
import math

import pytest

from crm_helpers import load
from crm_helpers.campaigns import analysis, core, frequency, holdout, narrative
from crm_helpers.synth import SynthConfig, generate, write_world

N_USERS = 20_000  # ~3 s to generate, ~140k messages; the holdout's control arm ~1,600 users
ATTRIBUTION_DAYS = 3.0
WINDOW_DAYS = 7.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("campaign_truth_world")
    write_world(generate(SynthConfig(n_users=N_USERS, seed=11)), out, fmt="parquet")
    data = load(str(out), engine="duckdb", require=["messages"])
    truth = json.loads((out / "ground_truth.json").read_text())["campaigns"]
    conv = core.conversions_of(data, "")
    return data, conv, truth


def _facts(data, conv, messages=None):
    facts = core.message_facts(
        data.messages if messages is None else messages,
        conv.table,
        attribution_days=ATTRIBUTION_DAYS,
        machine_open_seconds=5.0,
        timezone="UTC",
        fatigue_window_days=WINDOW_DAYS,
    )
    return facts.cache()


def test_best_send_hour_per_channel_is_the_planted_one(world):
    data, conv, truth = world
    planted = truth["best_send_hour"]["by_channel"]
    assert truth["best_send_hour"]["timezone"] == "UTC"
    metric, _ = narrative.choose_hour_metric(core.responses_of(data.messages))
    assert metric == "click_rate"  # the log records clicks: the notebook's default
    counts = core.hour_counts(_facts(data, conv), ("channel", "campaign_id"))
    for m in (metric, "open_rate"):
        windows = analysis.send_windows(analysis.hour_table(counts, m, min_sends=100))
        got = dict(zip(windows["channel"], windows["best_hour"], strict=True))
        assert set(got) == set(planted)
        for channel, hour in planted.items():
            assert got[channel] is not None and not math.isnan(got[channel]), (m, channel)
            assert abs(int(got[channel]) - hour) <= 1, (m, channel, got[channel], hour)


def test_fitted_fatigue_decay_covers_the_planted_curve(world):
    """The plant fatigues the messages of regular campaigns (id >= 100) and counts, as k,
    every earlier message except the cart-abandoner coupon (campaign 90): the fit reads those
    messages with that count. (On all campaigns the fit is pulled towards 1 by the experiment
    campaigns 90-94, which the plant does not fatigue: 0.75 on this world.)

    Seed 11 is the seed of tests/synth/test_campaign_truth.py (not chosen by result). On
    seeds 3, 7, 11, 23, 31, 41 the click-rate interval covered the planted 0.670 six times;
    the open-rate interval four times (seed 3: 0.648 [0.628, 0.668], seed 31: 0.695
    [0.674, 0.716]): the open-rate estimates spread more across seeds (sd 0.017) than their
    standard error (0.010) says, and a jackknife over user groups did not widen them, so the
    extra spread is not the clustering of one user's messages.

    Measured over 20 seeds (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61,
    67, 71, 73; 20,000 users; this fit on the regular campaigns): no bias (mean z of the
    log-decay against the plant -0.04 for opens, +0.05 for clicks), but z spreads with sd
    1.38 for opens (17 of 20 intervals cover; sum of z^2 36 on 20 df, p = 0.015) and 1.14
    for clicks (18 of 20; 25, p = 0.22). User-clustered (sandwich) standard errors equal
    the model's (ratio 1.00 on 16 seeds): not clustering within users. Campaign-clustered
    ones are 23% wider for opens on average (coverage 18 of 20, z sd 1.30): part of the
    spread is a slope that differs between campaigns. Leaving out the users of the hidden
    "churned" type (their opens drop x0.2 at a churn time the tables do not show) brings
    the open z sd from 1.49 to 1.38 (16 seeds). The rest is not explained (open question);
    the click-rate interval, twice as wide, covers. The report keeps the model interval.
    """
    data, conv, truth = world
    fat = truth["fatigue"]
    assert fat["window_days"] == WINDOW_DAYS
    planted = math.exp(-fat["decay"])
    m = data.messages
    facts = _facts(data, conv, m.filter(m.campaign_id != 90))
    regular = facts.filter(facts.campaign_id >= 100)
    counts = core.frequency_counts(regular, ("channel", "campaign_id"))
    for metric in ("click_rate", "open_rate"):
        fit = frequency.fit_decay(counts, metric)
        assert fit is not None and fit.significant
        assert fit.decay_ci_low <= planted <= fit.decay_ci_high, (metric, fit, planted)
        assert fit.decay_ci_high - fit.decay_ci_low < 0.1  # an interval that can miss


def test_fatigue_fit_without_campaign_effect_misses_the_plant(world):
    """Why the fit has a campaign fixed effect: pooled over campaigns, the daily push series
    (many earlier messages, a low click rate) makes the decay look steeper than planted."""
    data, conv, truth = world
    planted = math.exp(-truth["fatigue"]["decay"])
    m = data.messages
    facts = _facts(data, conv, m.filter(m.campaign_id != 90))
    counts = core.frequency_counts(facts.filter(facts.campaign_id >= 100), ("channel",))
    pooled = frequency.fit_decay(counts, "open_rate")
    assert pooled.decay_ci_high < planted


def test_incremental_interval_covers_the_planted_effect(world):
    data, conv, truth = world
    planted = truth["holdout"]
    candidates = holdout.holdout_candidates(data.messages, data.assignments)
    # derived as the notebook derives them: the one candidate, else every candidate
    choice = narrative.choose_holdout(candidates)
    if choice is not None:
        rows = holdout.holdout_rows(candidates, choice[0], choice[1])
    else:
        rows = candidates
    found = rows[rows["experiment_id"] == planted["experiment_id"]]
    assert found["control_variant"].tolist() == [planted["control_variant"]]
    assert found["campaign_id"].tolist() == [planted["campaign_id"]]
    scorecard = analysis.rates_table(core.scorecard_counts(_facts(data, conv)))
    attributed = scorecard.groupby("campaign_id")["conversions"].sum().to_dict()
    inc = holdout.incremental_report(
        data.messages, data.assignments, conv.table, rows, attributed, ATTRIBUTION_DAYS
    )
    r = inc[inc["campaign_id"] == planted["campaign_id"]].iloc[0]
    n = planted["realised_counts"]
    assert (r["treated_users"], r["control_users"]) == (n["treatment"], n["holdout"])
    want = 1000 * planted["true_incremental_conversion_rate"]
    assert r["ci_low"] <= want <= r["ci_high"], (r.to_dict(), want)
    assert r["ci_low"] > 0  # the effect is detected, not just covered by a wide interval

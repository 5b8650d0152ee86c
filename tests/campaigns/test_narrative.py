"""metrics.json records (names are an interface) and the summary's escaping."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from crm_helpers.campaigns import analysis, frequency, narrative
from tests.notebooks.payloads import PAYLOAD_IMG, PAYLOAD_SCRIPT


def _scorecard(ids=("spring", "winback"), channel="email") -> pd.DataFrame:
    c = pd.DataFrame(
        {"campaign_id": list(ids), "channel": channel, "sent": [2000, 1500],
         "opened": [400, 300], "machine_opened": [10, 5], "human_opened": [390, 295],
         "clicked": [80, 30], "clicked_opened": [70, 25], "converted": [20, 5],
         "conversions": [22, 5], "revenue": [800.0, 120.0]}
    )  # fmt: skip
    return analysis.rates_table(c)


def test_campaign_records_have_the_interface_fields():
    recs = narrative.campaign_records(_scorecard())
    want = {"campaign_id", "channel", "sent", "opened", "clicked", "converted", "open_rate",
            "click_rate", "conversion_rate", "revenue"}  # fmt: skip
    assert want <= set(recs[0])
    assert recs[0]["click_rate"] == 80 / 2000 and recs[1]["campaign_id"] == "winback"
    json.dumps(recs)  # plain JSON types


def test_by_hour_and_fatigue_records():
    hc = pd.DataFrame(
        {"channel": "push", "campaign_id": ["a", "b", "a"], "weekday": [0, 0, 1],
         "hour": [9, 9, 20], "sent": [10, 30, 20], "opened": [1, 2, 3], "machine_opened": 0,
         "human_opened": [1, 2, 3], "clicked": [1, 3, 4], "clicked_opened": 0, "converted": 0,
         "conversions": 0, "revenue": 0.0}
    )  # fmt: skip
    rec = narrative.by_hour_records(narrative.hour_rates(hc))
    assert list(rec) == ["push"]
    assert [(r["hour"], r["sent"], r["clicked"]) for r in rec["push"]] == [(9, 40, 4), (20, 20, 4)]
    assert set(rec["push"][0]) == {"hour", "sent", "opened", "clicked", "click_rate", "ci_low",
                                   "ci_high"}  # fmt: skip
    fc = pd.DataFrame({"prior_messages": [0, 1, 2], "sent": [5000, 4000, 3000],
                       "clicked": [500, 320, 190]})  # fmt: skip
    freq = frequency.frequency_table(fc)
    fit = frequency.fit_decay(fc)
    cap = frequency.frequency_cap(fit, 0.07)
    f = narrative.fatigue_record(freq, "click_rate", cap, fit)
    assert f["cap"] == cap == 2
    assert [(r["count"], r["sent"]) for r in f["by_count"]] == [(0, 5000), (1, 4000), (2, 3000)]
    assert f["by_count"][0]["click_rate"] == 0.1
    json.dumps(f)


def test_summary_escapes_names_from_the_data():
    sc = _scorecard(ids=(PAYLOAD_SCRIPT, PAYLOAD_IMG))
    channels = analysis.rates_table(
        sc.drop(columns=[c for c in sc.columns if c.endswith(("_rate", "_low", "_high"))])
        .groupby("channel", as_index=False)
        .sum(numeric_only=True)
    )
    inc = pd.DataFrame(
        [{"campaign_id": PAYLOAD_SCRIPT, "control_variant": PAYLOAD_IMG,
          "incremental_per_1000": 12.0, "incremental_conversions": 24.0,
          "conversions_ci_low": 3.0, "conversions_ci_high": 45.0, "attributed_conversions": 22}]
    )  # fmt: skip
    windows = pd.DataFrame(
        [{"channel": "email", "best_hour": 19, "best_rate": 0.05, "adjusted_rate": 0.05,
          "rest_rate": 0.03, "group_rate": 0.035, "odds_ratio": 1.4, "hours": [19]}]
    )  # fmt: skip
    lines = narrative.campaign_summary(channels, sc, incremental=inc, windows=windows,
                                       min_sends=1000)  # fmt: skip
    text = "\n".join(lines)
    assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;" in text
    assert lines[0].startswith("**3,500 messages** in 2 campaigns")
    assert "attributed 22 conversions; incremental 24 [3, 45]" in lines[1]
    assert "Send <code>email</code> at 19:00: click rate 5.0% on the channel's mix of" in text
    assert "vs 3.5% on average (odds x1.40 within campaigns)" in text


def test_holdout_is_derived_only_when_unambiguous():
    one = pd.DataFrame({"experiment_id": ["e"], "campaign_id": [7], "control_variant": ["ho"]})
    assert narrative.choose_holdout(one)[:2] == ("e", "ho")
    two = pd.concat([one, one.assign(experiment_id="f")])
    assert narrative.choose_holdout(two) is None
    assert narrative.choose_holdout(one.iloc[:0]) is None


def test_rates_are_nan_safe_in_records():
    sc = _scorecard().assign(opened=pd.array([pd.NA, pd.NA], dtype="Int64"))
    recs = narrative.campaign_records(analysis.rates_table(sc))
    assert recs[0]["opened"] is None and recs[0]["open_rate"] is None
    assert not any(isinstance(v, float) and np.isnan(v) for r in recs for v in r.values())


def test_hour_metric_follows_the_responses_the_log_has():
    from crm_helpers.campaigns.core import Responses

    assert narrative.choose_hour_metric(Responses(True, True))[0] == "click_rate"
    assert narrative.choose_hour_metric(Responses(True, False))[0] == "open_rate"
    assert narrative.choose_hour_metric(Responses(False, False))[0] == "conversion_rate"

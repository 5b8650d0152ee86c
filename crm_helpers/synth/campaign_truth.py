"""``ground_truth["campaigns"]`` and the truth of the ``promo_email_holdout`` experiment.

Built from the merged chunk counters (:mod:`crm_helpers.synth.tables`,
:func:`crm_helpers.synth.sends.send_counters`); see ``data/README.md`` ("Campaign truths").
"""

from __future__ import annotations

from crm_helpers.synth import config as C
from crm_helpers.synth.config import SynthConfig
from crm_helpers.synth.grid import COUPON_CAMPAIGN_ID, EXPERIMENTS, HOLDOUT_CAMPAIGN_ID, Globals
from crm_helpers.synth.sends import FATIGUE_MAX_COUNT, fatigue_multiplier


def _rate(num, den) -> float | None:
    return float(num) / float(den) if den else None


def holdout_experiment_truth(cfg: SynthConfig, c: dict, ho: dict, day) -> None:
    """Add the planted parameters and the true incremental effect to ``ho`` (in place)."""
    n_h = sum(ho["realised_counts"].values())
    e = EXPERIMENTS.index("promo_email_holdout")
    q_h = _rate(sum(c["exp_converted_not_holdout_response"][e, :2]), n_h) or 0.0
    effect = (1 - q_h) * cfg.holdout_p
    ho.update(
        {
            "experiment_id": "promo_email_holdout",
            "campaign_id": HOLDOUT_CAMPAIGN_ID,
            "channel": cfg.holdout_channel,
            "treatment_variant": "treatment",
            "control_variant": "holdout",
            "intended_split": {
                "treatment": 1 - cfg.holdout_control_share,
                "holdout": cfg.holdout_control_share,
            },
            "send_date": day(cfg.holdout_day)[:10],
            "send_hours_utc": list(C.SEND_HOURS),
            "audience": f"random {cfg.holdout_share:.0%} of users signed up before the send day "
            "(blind to churn)",
            "window_days": cfg.holdout_window_days,
            "metric": "any order in (assigned_at, assigned_at + window_days]; assigned_at = the "
            "planned send time (the treatment arm is sent the message then, the holdout nothing)",
            "true_response_probability": cfg.holdout_p,
            "other_conversion_rate": q_h,
            "true_incremental_conversion_rate": effect,
            "expected_conversion": {"treatment": q_h + effect, "holdout": q_h},
            "true_lifts": {
                "baseline_variant": "holdout",
                "response_probability": {"treatment": cfg.holdout_p},
                "conversion_in_window": {"treatment": effect},
                "rule": "absolute difference to holdout: (1 - other_conversion_rate) x "
                "true_response_probability",
            },
            "rule": "the treatment arm is sent one message of campaign_id at assigned_at, the "
            "holdout nothing; a treated user responds with true_response_probability: opens, "
            "clicks and buys in a session of the channel Exp(1 d) after the send (truncated to "
            "the window less 6 h); other treated users open at the channel's base rate x its "
            "send-hour multiplier and never click; the message has no other planted effect (no "
            "nudge). Orders from other sources come on top in both arms (other_conversion_rate:"
            " both arms' share with such an order in the window), so the true incremental "
            "conversion rate per user is (1 - other_conversion_rate) x "
            "true_response_probability. Second-order effect not included: the e-mail counts "
            "towards the fatigue of the recipient's regular messages in the next "
            f"{cfg.fatigue_window_days} days (fewer opens and clicks of those; well under "
            "0.0005 on the metric)",
        }
    )


def campaigns_truth(gl: Globals, c: dict, holdout: dict, day) -> dict:
    """``ground_truth["campaigns"]``: best send hour, fatigue, the series and the holdout."""
    cfg = gl.cfg
    M = C.MESSAGE_CHANNELS
    series = gl.campaigns.iloc[-1]
    kk = FATIGUE_MAX_COUNT + 1
    fatigue = {
        "window_days": cfg.fatigue_window_days,
        "decay": cfg.fatigue_decay,
        "formula": "multiplier(k) = exp(-decay x k)",
        "multiplier_by_count": [
            float(fatigue_multiplier(k, cfg.fatigue_decay)) for k in range(kk + 2)
        ],
        "count_rule": f"k = messages the user was sent in [sent_at - {cfg.fatigue_window_days} "
        "days, sent_at) of every campaign (regular, the series, message_test_3arm, "
        "promo_email_holdout) except the cart_abandoner_coupon e-mail (campaign "
        f"{COUPON_CAMPAIGN_ID}, triggered by the user's own abandoned cart, is not counted)",
        "applies_to": "messages of regular campaigns (campaign_id >= 100, incl. the series): "
        "p(open) is multiplied by multiplier(k), so the open rate and the click rate (clicks / "
        "sent; p(click|open) is not fatigued) fall by the multiplier, and with the clicks the "
        "click sessions and their orders; the nudge (behaviour.nudges: a later visit through "
        "another channel, clicked or not) is not fatigued; the experiment messages "
        "(campaign_id 90-94) have their own planted responses",
        "realised_regular_by_channel": {
            ch: [
                {
                    "count": k,
                    "count_rule": "k" if k < FATIGUE_MAX_COUNT else f">= {FATIGUE_MAX_COUNT}",
                    "sent": int(c["fatigue_sent"][i, k]),
                    "opened": int(c["fatigue_opened"][i, k]),
                    "clicked": int(c["fatigue_clicked"][i, k]),
                    "expected_opened": float(c["fatigue_p_open"][i, k]),
                }
                for k in range(kk)
                if c["fatigue_sent"][i, k]
            ]
            for i, ch in enumerate(M)
        },
    }
    send_hour = {
        "by_channel": dict(C.OPEN_PEAK_HOUR),
        "timezone": "UTC",
        "formula": f"open multiplier = {C.OPEN_HOUR_BASE} + {C.OPEN_HOUR_AMPLITUDE} x "
        f"exp(-d^2 / (2 x {C.OPEN_HOUR_SIGMA}^2)), d = hours between the send hour and the "
        "channel's best hour (messages.open_hour_multiplier_by_channel)",
        "applies_to": "opens of regular campaigns, and so clicks (clicks / sent) and click "
        "sessions; sends are uniform over send_hours_utc",
        "send_hours_utc": list(C.SEND_HOURS),
    }
    series_truth = {
        "campaign_id": int(series["campaign_id"]),
        "channel": str(series["channel"]),
        "first_send_date": day(int(series["day"]))[:10],
        "sends": int(series["sends"]),
        "audience_share": float(series["audience_share"]),
        "rule": "a random audience_share of the users signed up before the first send day get "
        "one message a day for `sends` days, each at a uniform send hour; position p (0-based) "
        "has k >= p, so its open and click rates fall by the fatigue multiplier",
        "realised_by_position": [
            {
                "position": j,
                "sent": int(c["series_sent"][j]),
                "opened": int(c["series_opened"][j]),
                "clicked": int(c["series_clicked"][j]),
            }
            for j in range(cfg.series_sends)
        ],
    }
    return {
        "best_send_hour": send_hour,
        "fatigue": fatigue,
        "series": series_truth,
        "holdout": {
            k: holdout[k]
            for k in (
                "experiment_id",
                "campaign_id",
                "channel",
                "treatment_variant",
                "control_variant",
                "send_date",
                "window_days",
                "metric",
                "true_response_probability",
                "other_conversion_rate",
                "true_incremental_conversion_rate",
                "realised_counts",
                "converted_in_window",
                "rule",
            )
        },
    }

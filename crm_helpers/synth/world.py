"""The :class:`World` container, :func:`generate`, and the ground truth built from counters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crm_helpers.synth import config as C
from crm_helpers.synth.campaign_truth import campaigns_truth, holdout_experiment_truth
from crm_helpers.synth.config import SynthConfig
from crm_helpers.synth.generate import (
    COUPON_CAMPAIGN_ID,
    EXPERIMENTS,
    HOLDOUT_CAMPAIGN_ID,
    MSG3_CAMPAIGN_IDS,
    SOURCES,
    VARIANTS,
    Chunk,
    Globals,
    _coupon_code,
    generate_chunk,
    make_globals,
)
from crm_helpers.synth.journeys import behaviour_truth

TABLE_NAMES: tuple[str, ...] = ("users", "events", "orders", "messages", "assignments")
GROUND_TRUTH_VERSION = 1


@dataclass
class World:
    """A generated CRM world: the five contract tables, the hidden truth and ground truth.

    Attributes
    ----------
    users, events, orders, messages, assignments
        The data contract's tables (pandas; timestamps tz-aware UTC, microseconds).
    ground_truth
        JSON-able dict of planted parameters and realised counts (``ground_truth.json``).
    truth
        Hidden per-row truth, written under ``truth/``: ``users`` (user_id, customer_type,
        is_seed, session_rate, churn_at, n_sessions, n_orders) and ``assignments`` (every
        intended assignment incl. ones dropped by the SRM bug: ``logged``; and
        ``planted_response``: a planted experiment conversion session was generated).
    """

    users: pd.DataFrame
    events: pd.DataFrame
    orders: pd.DataFrame
    messages: pd.DataFrame
    assignments: pd.DataFrame
    ground_truth: dict
    truth: dict[str, pd.DataFrame] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The five contract tables by name."""
        return {name: getattr(self, name) for name in TABLE_NAMES}


def chunk_bounds(cfg: SynthConfig) -> list[tuple[int, int, int]]:
    """(chunk index, first user id, number of users) of every chunk."""
    out = []
    first = 1
    for i, lo in enumerate(range(0, cfg.n_users, cfg.chunk_size)):
        n = min(cfg.chunk_size, cfg.n_users - lo)
        out.append((i, first, n))
        first += n
    return out


def iter_chunks(cfg: SynthConfig, gl: Globals | None = None) -> Iterator[Chunk]:
    """Generate the world chunk by chunk (each chunk seeded on its own)."""
    gl = gl or make_globals(cfg)
    for i, first, n in chunk_bounds(cfg):
        yield generate_chunk(gl, i, first, n)


def generate(cfg: SynthConfig | None = None) -> World:
    """Generate the synthetic CRM world of ``cfg`` in memory.

    Parameters
    ----------
    cfg
        The configuration (default :class:`SynthConfig()`: 100k users, seed 42).

    Returns
    -------
    World
        ``users`` (one row per user), ``events`` (a few dozen rows per user), ``orders``
        (one per purchase event, same user and ts), ``messages``, ``assignments`` and
        ``ground_truth``. The same ``cfg`` gives identical rows (and Parquet bytes).
    """
    cfg = cfg or SynthConfig()
    gl = make_globals(cfg)
    chunks = list(iter_chunks(cfg, gl))
    tables = {
        name: (
            getattr(chunks[0], name)
            if len(chunks) == 1
            else pd.concat([getattr(c, name) for c in chunks], ignore_index=True)
        )
        for name in (*TABLE_NAMES, "truth_users", "truth_assignments")
    }
    counters = merge_counters([c.counters for c in chunks])
    gt = build_ground_truth(gl, counters)
    return World(
        **{name: tables[name] for name in TABLE_NAMES},
        ground_truth=gt,
        truth={"users": tables["truth_users"], "assignments": tables["truth_assignments"]},
    )


def merge_counters(parts: list[dict]) -> dict:
    """Sum the additive counters of several chunks."""
    out: dict = {}
    for p in parts:
        for k, v in p.items():
            out[k] = v if k not in out else out[k] + v
    return out


def _rate(num, den) -> float | None:
    return float(num) / float(den) if den else None


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating | float):
        return round(float(x), 10)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def build_ground_truth(gl: Globals, c: dict) -> dict:
    """The JSON-able ground truth: planted parameters + realised counts from ``c``."""
    cfg = gl.cfg
    day = lambda d: (cfg.start_ts + pd.Timedelta(days=d)).isoformat()  # noqa: E731
    tc = c["type_counts"]

    types = {
        "names": list(C.TYPES),
        "shares_planned": dict(cfg.type_shares),
        "counts": {t: int(tc[i]) for i, t in enumerate(C.TYPES)},
        "shares_realised": {t: _rate(tc[i], c["n_users"]) for i, t in enumerate(C.TYPES)},
        "profiles": {t: C.TYPE_PROFILES[t] for t in C.TYPES},
        "profile_vocabularies": {
            "age_band": list(C.AGE_BANDS),
            "gender": list(C.GENDERS),
            "device": list(C.PLATFORMS),
            "acquisition": list(C.ACQUISITION),
            "categories": list(C.CATEGORIES),
            "funnel": [
                "product_view|visit",
                "add_to_cart|product_view",
                "checkout|add_to_cart",
                "purchase|checkout",
            ],
            "organic_channels": ["direct", "organic", "paid"],
            "coupon": ["code", "probability_per_order", "discount"],
        },  # fmt: skip
        "churned": {
            "rule": "sessions stop at churn_at = signup-or-start + U(churn_after_days), capped at "
            "end - churn_quiet_days; truth/users.churn_at is the last activity (>= that time "
            "only if an experiment-triggered session came later)",
            "churn_after_days": list(cfg.churn_after_days),
            "churn_quiet_days": cfg.churn_quiet_days,
        },
        "at_risk": {
            "rule": "session rate declines linearly to at_risk_floor x over the last "
            "at_risk_decline_days of the period",
            "decline_start": day(cfg.days - cfg.at_risk_decline_days),
            "floor": cfg.at_risk_floor,
        },
        "truth_file": "truth/users.parquet",
    }
    ev = c["events_by_platform_event"]
    steps = c["sessions_reaching_step_by_platform"]
    funnel = {
        "steps": list(C.FUNNEL_STEPS),
        "step_probability_rule": "p(step) = profiles[type].funnel[step] x platform_step_multiplier"
        "[platform][step] (x promo_cart_lift in the promo window and x the session's journey/"
        "nudge intent on add_to_cart, x dropoff factor on purchase|checkout in the drop-off "
        "window), capped at 0.99; add_to_cart|product_view is per browsing session (several "
        "views, one of them the focus product that is carted), see behaviour.browsing",
        "platform_step_multiplier": {p: list(v) for p, v in C.PLATFORM_STEP_MULT.items()},
        "own_device_share": C.OWN_DEVICE_SHARE,
        "cart_return_probability": C.CART_RETURN_P,
        "cart_return_median_hours": C.CART_RETURN_MEDIAN_H,
        "cart_return_rule": "a returning checkout happens 1 h + LogNormal(ln median, "
        f"{C.CART_RETURN_SIGMA}) hours after add_to_cart in a new session (app_open, visit, "
        "product_view again with cart_return_view_probability, checkout, purchase; channel "
        "direct)",
        "timing_seconds": {
            "app_open->visit": "U(1, 3)",
            "visit->product_view": "2 + Exp(20)",
            "product_view->product_view": "3 + Exp(35)",
            "product_view->add_to_cart": "5 + Exp(30) after the focus product's view",
            "add_to_cart->checkout": "10 + Exp(60) after the last view or the cart (or a cart "
            "return)",
            "checkout->purchase": "5 + Exp(40)",
        },
        "sessions_reaching_step": {
            p: {s: int(steps[i, j]) for j, s in enumerate(C.FUNNEL_STEPS)}
            for i, p in enumerate(C.PLATFORMS)
        },
        "cart_returns": int(c["cart_returns"]),
        "events_by_platform": {
            p: {e: int(ev[i, j]) for j, e in enumerate(C.EVENTS)} for i, p in enumerate(C.PLATFORMS)
        },
        "engagement_events": {
            "per_session_poisson_mean_by_type": {
                t: C.TYPE_PROFILES[t]["engagement_rate"] for t in C.TYPES
            },
            "kind_probabilities": dict(zip(C.ENGAGEMENT_EVENTS, C.ENGAGEMENT_P, strict=True)),
            "counts": {
                e: int(c["engagement_events"][k]) for k, e in enumerate(C.ENGAGEMENT_EVENTS)
            },
            "push_open": "one event per opened push message, at opened_at, no session",
        },
    }
    chk, pur = c["checkouts_by_platform_window"], c["purchases_by_platform_window"]
    pi = C.PLATFORMS.index(cfg.dropoff_platform)

    def cell(rows, col):
        n_c, n_p = int(chk[rows, col].sum()), int(pur[rows, col].sum())
        return {"checkouts": n_c, "purchases": n_p, "rate": _rate(n_p, n_c)}

    others = [i for i in range(len(C.PLATFORMS)) if i != pi]
    affected = cell([pi], 1)
    baseline = cell([pi], 0)
    dropoff = {
        "platform": cfg.dropoff_platform,
        "step": "checkout->purchase",
        "from_step": "checkout",
        "to_step": "purchase",
        "window_start": day(cfg.dropoff_start_day),
        "window_end": day(cfg.dropoff_start_day + cfg.dropoff_days),
        "window_rule": "checkout ts in [window_start, window_end)",
        "factor": cfg.dropoff_factor,
        "realised": {
            "affected": affected,
            "baseline_same_platform_outside_window": baseline,
            "other_platforms_in_window": cell(others, 1),
            "other_platforms_outside_window": cell(others, 0),
            "ratio_affected_to_baseline": _rate(affected["rate"], baseline["rate"])
            if affected["rate"] is not None
            else None,
        },
        "by_platform": {
            p: {"outside_window": cell([i], 0), "in_window": cell([i], 1)}
            for i, p in enumerate(C.PLATFORMS)
        },
    }
    seasonality = {
        "weekend_lift": cfg.weekend_lift,
        "promo_window_start": day(cfg.promo_start_day),
        "promo_window_end": day(cfg.promo_start_day + cfg.promo_days),
        "promo_traffic_lift": cfg.promo_traffic_lift,
        "promo_cart_lift": cfg.promo_cart_lift,
        "hour_profile_weekday": list(np.asarray(C.HOUR_WEEKDAY) / np.sum(C.HOUR_WEEKDAY)),
        "hour_profile_weekend": list(np.asarray(C.HOUR_WEEKEND) / np.sum(C.HOUR_WEEKEND)),
        "rule": "session intensity = type rate x day weight (weekend_lift, promo_traffic_lift) x "
        "hour-of-day profile (UTC); rate is sessions per ordinary weekday",
    }
    M = C.MESSAGE_CHANNELS
    camp = gl.campaigns.drop(columns=["channel_code"]).copy()
    camp["sent"] = c["regular_sent_by_campaign"]
    camp["send_date"] = [day(int(d))[:10] for d in camp["day"]]
    messages = {
        "campaigns": camp.to_dict(orient="records"),
        "experiment_campaigns": {
            "cart_abandoner_coupon": {"campaign_id": COUPON_CAMPAIGN_ID, "channel": "email"},
            "message_test_3arm": {
                v: {"campaign_id": cid, "channel": "push"}
                for v, cid in zip(VARIANTS["message_test_3arm"], MSG3_CAMPAIGN_IDS, strict=True)
            },
            "promo_email_holdout": {
                "treatment": {"campaign_id": HOLDOUT_CAMPAIGN_ID, "channel": cfg.holdout_channel}
            },
        },
        "open_probability_base": dict(C.OPEN_P),
        "click_given_open_probability_base": dict(C.CLICK_P),
        "open_hour_multiplier_by_channel": {ch: list(v) for ch, v in C.OPEN_HOUR_MULT.items()},
        "best_send_hour": dict(C.OPEN_PEAK_HOUR),
        "open_delay_median_minutes": dict(C.OPEN_DELAY_MEDIAN_MIN),
        "send_hours_utc": list(C.SEND_HOURS),
        "rule": "regular campaigns (campaign_id >= 100, incl. the series): p(open) = "
        "open_probability_base[channel] x open_hour_multiplier_by_channel[channel][send hour] "
        "x profiles[type].open_mult x the fatigue multiplier (campaigns.fatigue) (x0.2 and no "
        "click for churned users after churn), capped at 0.95; p(click|open) = "
        "click_base[channel] x click_mult; a click starts a session at clicked_at + 1 s whose "
        "channel is the message channel",
        "realised_regular": {
            "by_channel": {
                ch: {
                    "sent": int(c["regular_sent_by_channel"][k]),
                    "opened": int(c["regular_opened_by_channel"][k]),
                    "clicked": int(c["regular_clicked_by_channel"][k]),
                }
                for k, ch in enumerate(M)
            },
            "by_channel_send_hour": {
                ch: {
                    str(h): {
                        "sent": int(c["hour_sent"][k, h]),
                        "opened": int(c["hour_opened"][k, h]),
                        "clicked": int(c["hour_clicked"][k, h]),
                    }
                    for h in range(24)
                    if c["hour_sent"][k, h]
                }
                for k, ch in enumerate(M)
            },
            "by_send_hour": {
                str(h): {
                    "sent": int(c["regular_sent_by_hour"][h]),
                    "opened": int(c["regular_opened_by_hour"][h]),
                    "clicked": int(c["regular_clicked_by_hour"][h]),
                }
                for h in range(24)
            },
        },
        "total_rows": int(c["messages_total"]),
    }
    seed = {
        "type": cfg.seed_type,
        "fraction": cfg.seed_fraction,
        "column": "users.lookalike_seed",
        "seed_count": int(c["seed_count"]),
        "type_count": int(tc[C.TYPES.index(cfg.seed_type)]),
        "hidden_rest_count": int(tc[C.TYPES.index(cfg.seed_type)] - c["seed_count"]),
        "truth_file": "truth/users.parquet (customer_type, is_seed)",
    }
    experiments = _experiments_truth(cfg, c, day)
    counts = {
        "users": int(c["n_users"]),
        "events": int(c["n_events"]),
        "sessions": int(c["n_sessions"]),
        "orders": int(c["orders_total"]),
        "messages": int(c["messages_total"]),
        "assignments": int(c["exp_logged"].sum()),
        "sessions_by_channel": {
            ch: int(c["sessions_by_channel"][k]) for k, ch in enumerate(C.SESSION_CHANNELS)
        },
        "sessions_by_source": {s: int(c["sessions_by_source"][k]) for k, s in enumerate(SOURCES)},
        "orders_by_source": {s: int(c["orders_by_source"][k]) for k, s in enumerate(SOURCES)},
        "orders_with_coupon": int(c["orders_with_coupon"]),
        "revenue_total": float(c["revenue_total"]),
        "note": "clean counts; with dirt the written tables have the extra rows in 'dirt'",
    }
    if cfg.dirt:
        dirt = {
            "enabled": True,
            "duplicate_event_rows": int(c["dirt_duplicate_event_rows"]),
            "null_user_id_events": int(c["dirt_null_user_id_events"]),
            "late_events": int(c["dirt_late_events"]),
            "late_event_rule": "ts moved 30-400 days after the period end",
            "duplicate_order_id_rows": int(c["dirt_duplicate_order_id_rows"]),
            "negative_quantity_orders": int(c["dirt_negative_quantity_orders"]),
            "rules": "chosen among non-purchase events / all orders, disjoint sets; duplicate "
            "events are exact copies; duplicate orders repeat order_id with ts + 1-119 s",
        }
    else:
        dirt = {"enabled": False}
    gt = {
        "version": GROUND_TRUTH_VERSION,
        "config": cfg.to_dict(),
        "period": {"start": cfg.start_ts.isoformat(), "end": cfg.end_ts.isoformat()},
        "vocabularies": {
            "events": list(C.EVENTS),
            "categories": list(C.CATEGORIES),
            "platforms": list(C.PLATFORMS),
            "session_channels": list(C.SESSION_CHANNELS),
            "message_channels": list(C.MESSAGE_CHANNELS),
            "coupons": list(gl.coupons),
        },
        "ids": {
            "rule": f"session_id, order_id, message_id = user_id x {C.ID_STRIDE} + rank within "
            "the user (by time)",
        },
        "counts": counts,
        "customer_types": types,
        "funnel": funnel,
        "dropoff": dropoff,
        "seasonality": seasonality,
        "messages": messages,
        "lookalike_seed": seed,
        "experiments": experiments,
        "campaigns": campaigns_truth(gl, c, experiments["promo_email_holdout"], day),
        "behaviour": behaviour_truth(cfg, c, counts["sessions_by_source"]),
        "dirt": dirt,
        "truth_files": {
            "users": "truth/users.parquet",
            "assignments": "truth/assignments.parquet",
        },
    }
    return _jsonable(gt)


def _experiments_truth(cfg: SynthConfig, c: dict, day) -> dict:
    out = {}
    for e, exp in enumerate(EXPERIMENTS):
        vs = VARIANTS[exp]
        out[exp] = {
            "variants": list(vs),
            "intended_counts": {v: int(c["exp_intended"][e, k]) for k, v in enumerate(vs)},
            "realised_counts": {v: int(c["exp_logged"][e, k]) for k, v in enumerate(vs)},
            "planted_responses": {
                v: int(c["exp_planted_response"][e, k]) for k, v in enumerate(vs)
            },
            "converted_in_window": {v: int(c["exp_converted"][e, k]) for k, v in enumerate(vs)},
            "converted_in_window_organic": {
                v: int(c["exp_converted_organic"][e, k]) for k, v in enumerate(vs)
            },
            "revenue_in_window": {v: float(c["exp_revenue"][e, k]) for k, v in enumerate(vs)},
        }
        n_v = out[exp]["realised_counts"]
        out[exp]["conversion_rate"] = {
            v: _rate(out[exp]["converted_in_window"][v], n_v[v]) for v in vs
        }
        out[exp]["revenue_per_user"] = {
            v: _rate(out[exp]["revenue_in_window"][v], n_v[v]) for v in vs
        }
    cp = out["cart_abandoner_coupon"]
    hold = cp["converted_in_window_organic"]
    q = _rate(sum(hold.values()), sum(cp["realised_counts"].values())) or 0.0
    cp.update(
        {
            "intended_split": {
                "treatment": 1 - cfg.coupon_holdout_share,
                "holdout": cfg.coupon_holdout_share,
            },  # fmt: skip
            "eligibility": "first add_to_cart without purchase in the session, cart ts in "
            "[eligible_start, eligible_end); assigned_at = that add_to_cart + 1 h",
            "eligible_start": day(cfg.coupon_eligible_start_day),
            "eligible_end": day(cfg.coupon_eligible_start_day + cfg.coupon_eligible_days),
            "window_days": cfg.coupon_window_days,
            "metric": "any order in (assigned_at, assigned_at + window_days]",
            "true_recovery_probability": {
                "treatment": cfg.coupon_p_treatment,
                "holdout": cfg.coupon_p_holdout,
            },
            "true_lift_recovery": cfg.coupon_p_treatment - cfg.coupon_p_holdout,
            "organic_conversion_rate": q,
            "expected_conversion": {
                "treatment": 1 - (1 - q) * (1 - cfg.coupon_p_treatment),
                "holdout": 1 - (1 - q) * (1 - cfg.coupon_p_holdout),
            },
            "expected_lift": (1 - q) * (cfg.coupon_p_treatment - cfg.coupon_p_holdout),
            "coupon_code": _coupon_code(cfg),
            "coupon_discount": cfg.coupon_discount,
            "coupon_use_given_recovery": 0.9,
            "rule": "a planted recovery session (visit..purchase of the abandoned product) "
            "starts Exp(2 d) truncated to the window after assignment with the arm's "
            "probability; organic purchases come on top in both arms, so the expected lift on "
            "any-order conversion is (1 - organic_conversion_rate) x true_lift_recovery",
        }
    )
    m3 = out["message_test_3arm"]
    m3.update(
        {
            "intended_split": {v: 1 / 3 for v in VARIANTS["message_test_3arm"]},
            "send_date": day(cfg.msg3_day)[:10],
            "send_hours_utc": [17, 20],
            "audience": f"random {cfg.msg3_share:.0%} of users signed up before the send day "
            "(blind to churn)",
            "window_days": cfg.msg3_window_days,
            "metric": "any order in (assigned_at, assigned_at + window_days]",
            "true_response_probability": dict(
                zip(VARIANTS["message_test_3arm"], cfg.msg3_p, strict=True)
            ),
            "true_revenue_multiplier": dict(
                zip(VARIANTS["message_test_3arm"], cfg.msg3_revenue_mult, strict=True)
            ),
            "rule": "each arm gets a push (its own campaign_id); a responder opens it, clicks "
            "and buys in a push session Exp(1.5 d) truncated to the window after the send; "
            "the responder's order revenue is multiplied by the arm's revenue multiplier",
        }
    )
    # message_test_3arm: expected any-order conversion per arm (organic orders on top)
    q3 = _rate(sum(m3["converted_in_window_organic"].values()), sum(m3["realised_counts"].values()))
    q3 = q3 or 0.0
    p3 = dict(zip(VARIANTS["message_test_3arm"], cfg.msg3_p, strict=True))
    m3["organic_conversion_rate"] = q3
    m3["expected_conversion"] = {v: 1 - (1 - q3) * (1 - p) for v, p in p3.items()}
    m3["true_lifts"] = {
        "baseline_variant": "control",
        "response_probability": {v: p - p3["control"] for v, p in p3.items() if v != "control"},
        "conversion_in_window": {
            v: (1 - q3) * (p - p3["control"]) for v, p in p3.items() if v != "control"
        },
        "responder_revenue_multiplier": {
            v: r / cfg.msg3_revenue_mult[0]
            for v, r in zip(VARIANTS["message_test_3arm"], cfg.msg3_revenue_mult, strict=True)
            if v != "control"
        },
        "rule": "absolute differences to control; conversion_in_window = (1 - organic "
        "conversion rate) x response difference",
    }
    cp["true_lifts"] = {
        "baseline_variant": "holdout",
        "recovery_probability": {"treatment": cfg.coupon_p_treatment - cfg.coupon_p_holdout},
        "conversion_in_window": {"treatment": cp["expected_lift"]},
        "rule": "absolute differences to holdout",
    }
    holdout_experiment_truth(cfg, c, out["promo_email_holdout"], day)
    srm = out["checkout_redesign"]
    intended = srm["intended_counts"]
    srm.update(
        {
            "intended_split": {"control": 0.5, "treatment": 0.5},
            "srm_planted": True,
            "dropped_from": "treatment",
            "drop_fraction": cfg.srm_drop_fraction,
            "dropped_count": int(intended["treatment"] - srm["realised_counts"]["treatment"]),
            "expected_realised_share_control": 1 / (2 - cfg.srm_drop_fraction),
            "true_effect": 0.0,
            "true_lifts": {
                "baseline_variant": "control",
                "conversion_in_window": {"treatment": 0.0},
                "rule": "no true effect on any metric",
            },
            "window_start": day(cfg.srm_start_day),
            "window_end": day(cfg.srm_start_day + cfg.srm_days),
            "rule": f"random {cfg.srm_share:.0%} of users with a session in the window, assigned "
            "at their first session there, 50/50; drop_fraction of treatment rows are lost "
            "(logging bug) -> sample-ratio mismatch; no true effect",
        }
    )
    return out

"""Who is active when: customer lifetimes (dropout), shopping journeys and CRM nudges.

Semantics (all times in hours from the period start; ``G`` = cumulative traffic intensity
in "ordinary weekdays", see :mod:`crm_helpers.synth.grid`):

* **Dropout** (the Pareto part of Pareto/NBD): an ordinary customer is active from signup
  for an Exp(``lifetime_days`` of the type) lifetime, then stops starting sessions by
  herself. Users who signed up before the period may have dropped out before it began.
* **Occasions and journeys**: while active, a user starts shopping occasions as a Poisson
  process with intensity type rate x per-user activity (Gamma, mean 1) x the traffic
  profile / ``journey_sessions_mean``. An occasion is a journey of Geometric(mean
  ``journey_sessions_mean``) sessions on one focus product; consecutive sessions are
  LogNormal(ln ``journey_gap_median_days``, ``journey_gap_sigma``) apart in ``G`` units.
  The first session of a several-session journey carts with x ``journey_first_intent``,
  later ones with x ``journey_later_intent``.
* **Nudges**: a regular CRM message starts a journey (channel direct/organic/paid, not
  the message's) with probability ``nudge_p`` of the type (x ``nudge_dormant_mult`` after
  dropout), Exp(``nudge_delay_days``) truncated to ``nudge_window_days`` after the send,
  whether or not the message was opened or clicked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crm_helpers.synth.grid import Globals, _choice_rows, _G_at, _G_inv, _power_rank


@dataclass
class JourneySessions:
    """Sessions of expanded journeys: user row, start (hours), focus product, intent."""

    su: np.ndarray
    x_h: np.ndarray
    category: np.ndarray
    rank: np.ndarray
    intent: np.ndarray
    n_journeys: int = 0


def expand_journeys(
    rng: np.random.Generator,
    gl: Globals,
    ctype: np.ndarray,
    j_user: np.ndarray,
    j_c0: np.ndarray,
    j_stop: np.ndarray,
) -> JourneySessions:
    """Journeys (user row, start and stop in ``G`` units; shape (m,)) -> their sessions.

    Sessions after the journey's stop are dropped (the user left or the period ended).
    """
    cfg = gl.cfg
    m = len(j_user)
    length = rng.geometric(1.0 / cfg.journey_sessions_mean, size=m)
    cat = _choice_rows(rng, gl.cat_p[ctype[j_user]])
    rank = _power_rank(rng, m)
    js = np.repeat(np.arange(m), length)
    first = np.cumsum(length) - length
    pos = np.arange(len(js)) - first[js]
    gap = rng.lognormal(np.log(cfg.journey_gap_median_days), cfg.journey_gap_sigma, size=len(js))
    gap[pos == 0] = 0.0
    cs = np.cumsum(gap)
    c = j_c0[js] + cs - cs[first[js]]
    intent = np.where(
        length[js] == 1,
        1.0,
        np.where(pos == 0, cfg.journey_first_intent, cfg.journey_later_intent),
    )
    ok = c < j_stop[js]
    js, c, intent = js[ok], c[ok], intent[ok]
    return JourneySessions(
        su=j_user[js],
        x_h=_G_inv(gl, c),
        category=cat[js],
        rank=rank[js],
        intent=intent,
        n_journeys=m,
    )


def organic_journeys(
    rng: np.random.Generator,
    gl: Globals,
    ctype: np.ndarray,
    activity: np.ndarray,
    signup_h: np.ndarray,
    a_h: np.ndarray,
    b_h: np.ndarray,
) -> JourneySessions:
    """Self-started journeys of users active in hours [a_h, b_h) (arrays of shape (n,))."""
    cfg = gl.cfg
    n = len(ctype)
    Ga, Gb = _G_at(gl, a_h), _G_at(gl, b_h)
    span = np.maximum(Gb - Ga, 0.0)
    lam = gl.rate[ctype] * activity * span / cfg.journey_sessions_mean
    n_occ = rng.poisson(lam)
    ju = np.repeat(np.arange(n), n_occ)
    c0 = Ga[ju] + rng.random(len(ju)) * span[ju]
    # new users often browse right at signup (30 s after it)
    at_signup = np.flatnonzero(
        (signup_h >= 0) & (span > 0) & (rng.random(n) < cfg.signup_journey_p)
    )
    ju = np.concatenate([ju, at_signup])
    c0 = np.concatenate([c0, _G_at(gl, a_h[at_signup] + 30.0 / 3600.0)])
    return expand_journeys(rng, gl, ctype, ju, c0, Gb[ju])


def behaviour_truth(cfg, c: dict, sessions_by_source: dict) -> dict:
    """``ground_truth["behaviour"]``: browsing, journeys, dropout and nudges (planted + realised).

    ``c`` are the merged chunk counters; ``sessions_by_source`` the realised session counts.
    """
    from crm_helpers.synth import config as C

    types = C.TYPES

    def by_type(arr):
        return {t: int(arr[i]) for i, t in enumerate(types)}

    return {
        "browsing": {
            "views_per_session": "round(LogNormal(ln views_median, views_sigma)) in 1..views_max",
            "views_median": C.VIEWS_MEDIAN,
            "views_sigma": C.VIEWS_SIGMA,
            "views_max": C.VIEWS_MAX,
            "view_gap_seconds": f"{C.VIEW_GAP_S[0]} + Exp({C.VIEW_GAP_S[1]})",
            "other_category_view_probability": C.OTHER_CATEGORY_VIEW_P,
            "listing_view_probability": C.LISTING_P,
            "cart_return_view_probability": C.RETURN_VIEW_P,
            "product_views": int(c["views_total"]),
            "listing_views": int(c["listing_views_total"]),
        },
        "journeys": {
            "rule": "occasions ~ Poisson(type session_rate x activity x traffic profile / "
            "sessions_mean) while active; each is Geometric(sessions_mean) sessions on one "
            "focus product, LogNormal(ln gap_median_days, gap_sigma) apart in ordinary-weekday "
            "units of the traffic profile",
            "sessions_mean": cfg.journey_sessions_mean,
            "gap_median_days": cfg.journey_gap_median_days,
            "gap_sigma": cfg.journey_gap_sigma,
            "first_session_cart_multiplier": cfg.journey_first_intent,
            "later_session_cart_multiplier": cfg.journey_later_intent,
            "signup_journey_probability": cfg.signup_journey_p,
            "organic_journeys": int(c["journeys_organic"]),
        },
        "dropout": {
            "rule": "ordinary customers stop starting sessions at signup + Exp(lifetime_days of "
            "the type) (no dropout where lifetime_days is null: loyalists; at_risk and churned "
            "keep their own planted curves); truth/users.dropout_at when it falls before the "
            "period end; clicks and nudges can still bring a dropped-out user back",
            "lifetime_days_by_type": {t: C.TYPE_PROFILES[t]["lifetime_days"] for t in types},
            "activity_gamma_shape": cfg.activity_shape,
            "users_with_a_lifetime": by_type(c["dropout_users"]),
            "dropped_before_start": by_type(c["dropped_before_start"]),
            "dropped_in_period": by_type(c["dropped_in_period"]),
            "truth_file": "truth/users.parquet (dropout_at, activity)",
        },
        "nudges": {
            "rule": "each regular campaign message starts a journey of its recipient with "
            "nudge_p of the type (x dormant_multiplier after dropout; never for churned users "
            "after churn), Exp(delay_days) truncated to window_days after the send, on a "
            "direct/organic/paid session (not the message channel), whether or not the "
            "message was opened or clicked; its sessions cart with x intent_multiplier",
            "nudge_p_by_type": {t: C.TYPE_PROFILES[t]["nudge_p"] for t in types},
            "dormant_multiplier": cfg.nudge_dormant_mult,
            "delay_days": cfg.nudge_delay_days,
            "window_days": cfg.nudge_window_days,
            "intent_multiplier": cfg.nudge_intent,
            "nudged_messages": int(c["nudge_messages"]),
            "nudged_messages_without_click": int(c["nudge_messages_without_click"]),
            "nudged_sessions": int(sessions_by_source["message_nudge"]),
        },
        "realism": "crm_helpers.synth.realism (rates, real reference figures and ranges); "
        "data/README.md",
    }

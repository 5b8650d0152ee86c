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
    # new users often browse right at signup
    at_signup = np.flatnonzero(
        (signup_h >= 0) & (span > 0) & (rng.random(n) < cfg.signup_journey_p)
    )
    ju = np.concatenate([ju, at_signup])
    c0 = np.concatenate([c0, Ga[at_signup]])
    return expand_journeys(rng, gl, ctype, ju, c0, Gb[ju])

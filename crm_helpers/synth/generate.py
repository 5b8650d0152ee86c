"""Vectorised generation of one chunk of the synthetic CRM world (no per-user Python loops).

A chunk is a contiguous block of users with its own random stream
(``SeedSequence(seed, spawn_key=(1, chunk))``); chunk outputs are independent, so the world
can be generated whole (:func:`generate`) or streamed to Parquet row groups
(:func:`crm_helpers.synth.io.generate_to`) with identical rows. Times are handled as int64
microseconds since the epoch until the tables are built.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import pandas as pd

from crm_helpers.synth import config as C
from crm_helpers.synth.browse import Funnel, Sessions, _materialise_events, simulate_funnel
from crm_helpers.synth.grid import (  # noqa: F401  (re-exported for world.py)
    CH,
    COUPON_CAMPAIGN_ID,
    EXPERIMENTS,
    HOLDOUT_CAMPAIGN_ID,
    MCH,
    MSG3_CAMPAIGN_IDS,
    MSG_TO_SESSION_CH,
    NAT,
    PL,
    SOURCES,
    US_D,
    US_H,
    US_S,
    VARIANTS,
    Globals,
    _app_platform,
    _choice_rows,
    _coupon_code,
    _G_at,
    _G_inv,
    _order_user_time,
    _other_platform,
    _rank_within,
    _trunc_exp,
    make_globals,
)
from crm_helpers.synth.journeys import expand_journeys, organic_journeys
from crm_helpers.synth.sends import (
    fatigue_count,
    fatigue_multiplier,
    holdout_sends,
    regular_sends,
    send_counters,
)
from crm_helpers.synth.tables import (
    Chunk,
    _add_dirt,
    _build_tables,
    _counters,
    _events_table,
    _strings,
    _ts,
    _variant_strings,
)

T = TypeVar("T")


def _in_background(fn: Callable[..., T], *args) -> Future[T]:
    """Run ``fn(*args)`` on a thread of its own; its result (or error) comes by ``result()``.

    For work without random draws that numpy/pyarrow do mostly outside the GIL.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=fn.__name__)
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)  # the thread ends when fn returns


def generate_chunk(gl: Globals, chunk: int, first_user: int, n: int) -> Chunk:
    """Generate users ``first_user .. first_user + n - 1`` (user ids are 1-based) and all
    their sessions, events, orders, messages and experiment assignments."""
    cfg = gl.cfg
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(1, chunk)))
    H = gl.n_hours
    user_id = np.arange(first_user, first_user + n, dtype=np.int64)

    # ---- users ------------------------------------------------------------------------
    ctype = np.minimum(
        np.searchsorted(np.cumsum(gl.shares), rng.random(n), side="right"), len(C.TYPES) - 1
    )
    age = _choice_rows(rng, gl.age_p[ctype])
    gender = _choice_rows(rng, gl.gender_p[ctype])
    device = _choice_rows(rng, gl.device_p[ctype])
    acq = _choice_rows(rng, gl.acq_p[ctype])
    country = rng.choice(len(C.COUNTRIES), size=n, p=C.COUNTRY_P)
    prior = rng.random(n) < cfg.prior_signup_share
    new_h = _G_inv(gl, rng.random(n) * gl.G[-1])
    signup_h = np.where(prior, -rng.uniform(24.0, 720.0 * 24.0, size=n), new_h)
    signup_us = gl.start_us + (signup_h * US_H).astype(np.int64)
    a_h = np.maximum(signup_h, 0.0)
    churned = ctype == C.TYPES.index("churned")
    churn_h = np.minimum(
        a_h + rng.uniform(*cfg.churn_after_days, size=n) * 24.0,
        (cfg.days - cfg.churn_quiet_days) * 24.0,
    )
    churn_h = np.maximum(churn_h, a_h)
    b_h = np.where(churned, churn_h, float(H))
    is_seed = (ctype == C.TYPES.index(cfg.seed_type)) & (rng.random(n) < cfg.seed_fraction)
    # ordinary customers drop out after an exponential lifetime from signup
    activity = rng.gamma(cfg.activity_shape, 1.0 / cfg.activity_shape, size=n)
    # buying propensity: heavy visitors are also the keen buyers (mean 1 over users)
    k, q = cfg.activity_shape, cfg.propensity_power
    propensity = activity**q / np.exp(math.lgamma(k + q) - math.lgamma(k) - q * math.log(k))
    life_h = rng.exponential(1.0, size=n) * gl.lifetime_h[ctype]
    drop_h = np.where(np.isfinite(life_h), signup_h + life_h, np.inf)
    b_h = np.minimum(b_h, np.maximum(drop_h, a_h))

    # ---- organic sessions: journeys started on an inhomogeneous Poisson process ----------
    js = organic_journeys(rng, gl, ctype, activity, signup_h, a_h, b_h)
    su, x_h = js.su, js.x_h
    # at_risk: thin sessions over the last `at_risk_decline_days` down to `at_risk_floor`
    decline_h = (cfg.days - cfg.at_risk_decline_days) * 24.0
    m = 1.0 - (1.0 - cfg.at_risk_floor) * np.clip((x_h - decline_h) / (H - decline_h), 0.0, 1.0)
    at_risk = ctype[su] == C.TYPES.index("at_risk")
    keep = ~at_risk | (rng.random(len(su)) < m)
    su, x_h = su[keep], x_h[keep]
    org_ch_codes = np.array([CH["direct"], CH["organic"], CH["paid"]])
    organic = Sessions.new(
        rng,
        gl,
        su,
        gl.start_us + (x_h * US_H).astype(np.int64),
        ctype,
        _other_platform(rng, device[su]),
        org_ch_codes[_choice_rows(rng, gl.org_ch[ctype[su]])],
        source=0,
        category=js.category[keep],
        rank=js.rank[keep],
        intent=js.intent[keep],
    )

    # ---- CRM sends: regular campaigns (and the series), message_test_3arm, the holdout ---
    # (all drawn before any response, so that every one of them counts towards fatigue)
    rs = regular_sends(rng, gl, signup_us)
    m_u, m_cid, m_ch, m_sent = rs["uidx"], rs["campaign_id"], rs["channel"], rs["sent"]
    nm = len(m_u)
    churn_us = gl.start_us + (churn_h * US_H).astype(np.int64)
    # message_test_3arm: a random share of the users signed up by the send day (like every
    # audience, blind to churn, which a CRM cannot see: so experiment messages are no more
    # likely for active users and do not confound the fatigue of the regular messages)
    send_day = gl.day_us(cfg.msg3_day)
    m3 = np.flatnonzero((signup_us < send_day) & (rng.random(n) < cfg.msg3_share))
    m3_arm = rng.integers(0, 3, size=len(m3))
    m3_sent = send_day + (rng.uniform(17.0, 20.0, size=len(m3)) * US_H).astype(np.int64)
    # promo_email_holdout: treatment arm sent the e-mail, holdout nothing
    h_u, h_treat, h_at = holdout_sends(rng, gl, signup_us)
    ht = np.flatnonzero(h_treat)
    # fatigue: messages of the user in the window before each regular message
    k_fat = fatigue_count(
        m_u,
        m_sent,
        np.concatenate([m_u, m3, h_u[ht]]),
        np.concatenate([m_sent, m3_sent, h_at[ht]]),
        cfg.fatigue_window_days * US_D,
    )
    fatigue = fatigue_multiplier(k_fat, cfg.fatigue_decay)
    hour = ((m_sent - gl.start_us) // US_H) % 24
    gone = churned[m_u] & (m_sent >= churn_us[m_u])
    open_base = np.array([C.OPEN_P[ch] for ch in C.MESSAGE_CHANNELS])
    click_base = np.array([C.CLICK_P[ch] for ch in C.MESSAGE_CHANNELS])
    delay_med = np.array([C.OPEN_DELAY_MEDIAN_MIN[ch] for ch in C.MESSAGE_CHANNELS])
    hour_mult = np.array([C.OPEN_HOUR_MULT[ch] for ch in C.MESSAGE_CHANNELS])
    p_open = open_base[m_ch] * hour_mult[m_ch, hour] * gl.open_mult[ctype[m_u]] * fatigue
    p_open = np.minimum(np.where(gone, 0.2 * p_open, p_open), 0.95)
    opened_t = m_sent + (rng.lognormal(np.log(delay_med[m_ch]), 1.0, size=nm) * 60 * US_S).astype(
        np.int64
    )
    opened = (rng.random(nm) < p_open) & (opened_t < gl.end_us)
    p_click = np.minimum(click_base[m_ch] * gl.click_mult[ctype[m_u]], 0.95)
    clicked_t = opened_t + (2.0 * US_S + rng.exponential(40.0, size=nm) * US_S).astype(np.int64)
    clicked = opened & ~gone & (rng.random(nm) < p_click) & (clicked_t + US_S < gl.end_us)
    app_ch = (m_ch == MCH["push"]) | (m_ch == MCH["in-app"])
    m_plat = np.where(app_ch, _app_platform(rng, device[m_u]), _other_platform(rng, device[m_u]))
    ci = np.flatnonzero(clicked)
    click_sessions = Sessions.new(
        rng,
        gl,
        m_u[ci],
        clicked_t[ci] + US_S,
        ctype,
        m_plat[ci],
        MSG_TO_SESSION_CH[m_ch[ci]],
        source=1,
    )
    push_open_idx = np.flatnonzero(opened & (m_ch == MCH["push"]))

    # nudges: a message starts a journey through another channel, clicked or not (not
    # fatigued: fatigue lowers the opens and clicks only)
    sent_h = (m_sent - gl.start_us) / US_H
    alive = (sent_h >= a_h[m_u]) & (sent_h < b_h[m_u])
    p_nudge = gl.nudge_p[ctype[m_u]] * np.where(alive, 1.0, cfg.nudge_dormant_mult)
    nudge = ~gone & (rng.random(nm) < p_nudge)
    ni = np.flatnonzero(nudge)
    n_delay = _trunc_exp(rng, cfg.nudge_delay_days * 24.0, cfg.nudge_window_days * 24.0, len(ni))
    n_stop_h = np.where(churned, churn_h, float(H))[m_u[ni]]
    nj = expand_journeys(
        rng, gl, ctype, m_u[ni], _G_at(gl, sent_h[ni] + n_delay), _G_at(gl, n_stop_h)
    )
    nudged = Sessions.new(
        rng,
        gl,
        nj.su,
        gl.start_us + (nj.x_h * US_H).astype(np.int64),
        ctype,
        _other_platform(rng, device[nj.su]),
        org_ch_codes[_choice_rows(rng, gl.org_ch[ctype[nj.su]])],
        source=SOURCES.index("message_nudge"),
        category=nj.category,
        rank=nj.rank,
        intent=nj.intent * cfg.nudge_intent,
    )

    base = Sessions.concat([organic, click_sessions, nudged])
    base.intent = base.intent * propensity[base.uidx]
    f_base = simulate_funnel(rng, gl, base, ctype, np.where(churned, churn_us, gl.end_us))

    # ---- experiment 1: cart_abandoner_coupon ----------------------------------------------
    el_lo = gl.day_us(cfg.coupon_eligible_start_day)
    el_hi = gl.day_us(cfg.coupon_eligible_start_day + cfg.coupon_eligible_days)
    abandoned = (
        (f_base.t_cart != NAT)
        & (f_base.t_purchase == NAT)
        & (f_base.t_cart >= el_lo)
        & (f_base.t_cart < el_hi)
    )
    ab = np.flatnonzero(abandoned)
    ab = ab[np.lexsort((f_base.t_cart[ab], base.uidx[ab]))]
    ab = ab[_rank_within(base.uidx[ab]) == 0]  # first abandonment per user
    cu = base.uidx[ab]
    c_assigned = f_base.t_cart[ab] + US_H
    c_treat = rng.random(len(ab)) >= cfg.coupon_holdout_share
    c_p = np.where(c_treat, cfg.coupon_p_treatment, cfg.coupon_p_holdout)
    c_conv = rng.random(len(ab)) < c_p
    c_delay = _trunc_exp(rng, 2.0 * US_D, cfg.coupon_window_days * US_D, len(ab)).astype(np.int64)
    c_start = c_assigned + c_delay
    c_conv &= c_start < gl.end_us - US_H
    ci = np.flatnonzero(c_conv)
    recovery = Sessions.new(
        rng,
        gl,
        cu[ci],
        c_start[ci],
        ctype,
        device[cu[ci]],
        np.where(c_treat[ci], CH["email"], CH["direct"]),
        source=2,
        forced=True,
        category=base.category[ab[ci]],
        rank=base.rank[ab[ci]],
    )
    use_code = c_treat[ci] & (rng.random(len(ci)) < 0.9)
    recovery.coupon = np.where(use_code, gl.coupons.index(_coupon_code(cfg)), -2)
    recovery.discount = np.where(use_code, cfg.coupon_discount, 0.0)
    # coupon e-mails to the treatment arm
    ct = np.flatnonzero(c_treat)
    ce_sent = c_assigned[ct]
    conv_t = c_conv[ct]
    ce_click = np.where(conv_t, c_start[ct] - US_S, NAT)
    ce_open = np.where(
        conv_t,
        ce_sent
        + ((c_start[ct] - US_S - ce_sent) * rng.uniform(0.0, 0.9, size=len(ct))).astype(np.int64),
        NAT,
    )
    other_open = ~conv_t & (rng.random(len(ct)) < 0.3)
    late_open = ce_sent + (rng.lognormal(np.log(90.0), 1.0, size=len(ct)) * 60 * US_S).astype(
        np.int64
    )
    ce_open = np.where(other_open & (late_open < gl.end_us), late_open, ce_open)

    # ---- experiment 2: message_test_3arm ------------------------------------------------
    m3_resp = rng.random(len(m3)) < np.asarray(cfg.msg3_p)[m3_arm]
    m3_delay = _trunc_exp(rng, 1.5 * US_D, cfg.msg3_window_days * US_D, len(m3)).astype(np.int64)
    m3_start = m3_sent + 60 * US_S + m3_delay
    m3_resp &= m3_start < gl.end_us - US_H
    ri = np.flatnonzero(m3_resp)
    response = Sessions.new(
        rng,
        gl,
        m3[ri],
        m3_start[ri],
        ctype,
        _other_platform(rng, device[m3[ri]]),
        CH["push"],
        source=3,
        forced=True,
    )
    response.rev_mult = np.asarray(cfg.msg3_revenue_mult, dtype=float)[m3_arm[ri]]
    m3_click = np.where(m3_resp, m3_start - US_S, NAT)
    m3_open = np.where(
        m3_resp,
        m3_sent
        + ((m3_start - US_S - m3_sent) * rng.uniform(0.0, 0.5, size=len(m3))).astype(np.int64),
        NAT,
    )
    m3_other = ~m3_resp & (rng.random(len(m3)) < C.OPEN_P["push"])
    m3_late = m3_sent + (rng.lognormal(np.log(8.0), 1.0, size=len(m3)) * 60 * US_S).astype(np.int64)
    m3_open = np.where(m3_other, m3_late, m3_open)

    # ---- experiment 4: promo_email_holdout (randomised no-message holdout) ------------------
    # a treated member responds with holdout_p: opens, clicks and buys in a session of the
    # campaign's channel Exp(1 d) after the send, truncated to the window less 6 h (so the
    # order falls inside it); the holdout gets no message and no planted response
    h_ch = MCH[cfg.holdout_channel]
    h_resp = h_treat & (rng.random(len(h_u)) < cfg.holdout_p)
    h_win = cfg.holdout_window_days * US_D - 6 * US_H
    h_start = h_at + 60 * US_S + _trunc_exp(rng, US_D, h_win, len(h_u)).astype(np.int64)
    ri = np.flatnonzero(h_resp)
    h_sessions = Sessions.new(
        rng,
        gl,
        h_u[ri],
        h_start[ri],
        ctype,
        _other_platform(rng, device[h_u[ri]]),
        MSG_TO_SESSION_CH[h_ch],
        source=SOURCES.index("holdout_response"),
        forced=True,
    )
    h_resp_t = h_resp[ht]
    h_click = np.where(h_resp_t, h_start[ht] - US_S, NAT)
    h_open = np.where(
        h_resp_t,
        h_at[ht]
        + ((h_start[ht] - US_S - h_at[ht]) * rng.uniform(0.0, 0.5, len(ht))).astype(np.int64),
        NAT,
    )
    # other treated members open at the channel's base rate x its send-hour multiplier
    h_hour = ((h_at[ht] - gl.start_us) // US_H) % 24
    h_other = ~h_resp_t & (rng.random(len(ht)) < open_base[h_ch] * hour_mult[h_ch, h_hour])
    h_late = h_at[ht] + (
        rng.lognormal(np.log(delay_med[h_ch]), 1.0, size=len(ht)) * 60 * US_S
    ).astype(np.int64)
    h_open = np.where(h_other, h_late, h_open)

    # ---- experiment 3: checkout_redesign with a planted sample-ratio mismatch -------------
    s_lo = gl.day_us(cfg.srm_start_day)
    s_hi = gl.day_us(cfg.srm_start_day + cfg.srm_days)
    win = np.flatnonzero((base.t0 >= s_lo) & (base.t0 < s_hi))
    win = win[np.lexsort((base.t0[win], base.uidx[win]))]
    win = win[_rank_within(base.uidx[win]) == 0]
    win = win[rng.random(len(win)) < cfg.srm_share]
    srm_u = base.uidx[win]
    srm_at = base.t0[win]
    srm_treat = rng.random(len(win)) < 0.5
    srm_logged = ~(srm_treat & (rng.random(len(win)) < cfg.srm_drop_fraction))

    # ---- all sessions -> events ----------------------------------------------------------
    forced_sessions = Sessions.concat([recovery, response, h_sessions])
    f_forced = simulate_funnel(rng, gl, forced_sessions, ctype)
    S = Sessions.concat([base, forced_sessions])
    F = Funnel.concat([f_base, f_forced])
    events, sess_start, sess_user, purchases, eng_n = _materialise_events(
        rng, gl, S, F, ctype, m_u[push_open_idx], opened_t[push_open_idx], m_plat[push_open_idx]
    )

    # session ids: rank of the session's start within the user
    order = _order_user_time(gl, sess_user, sess_start)
    sid = np.empty(len(order), dtype=np.int64)
    sid[order] = user_id[sess_user[order]] * C.ID_STRIDE + _rank_within(sess_user[order])
    if len(order) and _rank_within(sess_user[order]).max() >= C.ID_STRIDE:
        raise OverflowError("a user has more sessions than the id stride allows")
    ev = events
    ev_sid = np.where(ev["key"] >= 0, sid[np.maximum(ev["key"], 0)], -1)
    # the events table needs no more random draws: build it on a second thread meanwhile
    events_table = _in_background(_events_table, user_id, ev, ev_sid)

    # ---- orders ---------------------------------------------------------------------------
    pi = purchases
    ptype = ctype[S.uidx[pi]]
    qty = 1 + rng.poisson(gl.qty_extra[ptype])
    habitual = rng.random(len(pi)) < gl.coupon_p[ptype]
    code = np.where(
        S.coupon[pi] >= 0,
        S.coupon[pi],
        np.where((S.coupon[pi] == -1) & habitual, gl.coupon_code[ptype], -1),
    )
    disc = np.where(
        S.coupon[pi] >= 0, S.discount[pi], np.where(code >= 0, gl.coupon_disc[ptype], 0.0)
    )
    unit = gl.price[S.category[pi], S.rank[pi]]
    revenue = np.round(unit * qty * (1.0 - disc) * S.rev_mult[pi], 2)
    o_t = F.t_purchase[pi]
    o_u = S.uidx[pi]
    oo = np.lexsort((o_t, o_u))
    o_rank = _rank_within(o_u[oo])
    orders_cols = {
        "uidx": o_u[oo],
        "order_rank": o_rank,
        "ts": o_t[oo],
        "revenue": revenue[oo],
        "category": S.category[pi][oo],
        "coupon": code[oo],
        "quantity": qty[oo].astype(np.int64),
        "source": S.source[pi][oo],
    }

    # ---- messages table ------------------------------------------------------------------
    all_m = {
        "uidx": np.concatenate([m_u, cu[ct], m3, h_u[ht]]),
        "campaign_id": np.concatenate(
            [
                m_cid,
                np.full(len(ct), COUPON_CAMPAIGN_ID),
                np.asarray(MSG3_CAMPAIGN_IDS)[m3_arm],
                np.full(len(ht), HOLDOUT_CAMPAIGN_ID),
            ]
        ),
        "channel": np.concatenate(
            [m_ch, np.full(len(ct), MCH["email"]), np.full(len(m3), MCH["push"]), [h_ch] * len(ht)]
        ).astype(np.int64),
        "sent": np.concatenate([m_sent, ce_sent, m3_sent, h_at[ht]]),
        "opened": np.concatenate([np.where(opened, opened_t, NAT), ce_open, m3_open, h_open]),
        "clicked": np.concatenate([np.where(clicked, clicked_t, NAT), ce_click, m3_click, h_click]),
    }
    mo = np.lexsort((all_m["campaign_id"], all_m["sent"], all_m["uidx"]))
    all_m = {k: v[mo] for k, v in all_m.items()}
    all_m["rank"] = _rank_within(all_m["uidx"])

    # ---- assignments -----------------------------------------------------------------------
    a_exp = np.concatenate(
        [np.zeros(len(ab)), np.ones(len(m3)), np.full(len(win), 2), np.full(len(h_u), 3)]
    ).astype(np.int64)
    a_u = np.concatenate([cu, m3, srm_u, h_u])
    a_var = np.concatenate(
        [np.where(c_treat, 0, 1), m3_arm, srm_treat.astype(np.int64), np.where(h_treat, 0, 1)]
    )
    a_at = np.concatenate([c_assigned, m3_sent, srm_at, h_at])
    a_logged = np.concatenate(
        [np.ones(len(ab) + len(m3), dtype=bool), srm_logged, np.ones(len(h_u), dtype=bool)]
    )
    a_resp = np.concatenate([c_conv, m3_resp, np.zeros(len(win), dtype=bool), h_resp])

    # ---- counters (additive over chunks) ------------------------------------------------
    counters = _counters(
        gl, ctype, is_seed, S, F, events, orders_cols, all_m, m_cid, m_ch, hour, opened, clicked,
        a_exp, a_u, a_var, a_at, a_logged, a_resp, eng_n,
    )  # fmt: skip
    counters.update(
        send_counters(gl, m_ch, hour, k_fat, rs["position"], m_cid, p_open, opened, clicked)
    )
    finite = np.isfinite(drop_h)
    counters["dropout_users"] = np.bincount(ctype[finite], minlength=len(C.TYPES))
    counters["dropped_before_start"] = np.bincount(
        ctype[finite & (drop_h < 0)], minlength=len(C.TYPES)
    )
    counters["dropped_in_period"] = np.bincount(
        ctype[finite & (drop_h >= 0) & (drop_h < H)], minlength=len(C.TYPES)
    )
    counters["nudge_messages"] = int(nudge.sum())
    counters["nudge_messages_without_click"] = int((nudge & ~clicked).sum())
    counters["journeys_organic"] = int(js.n_journeys)
    counters["views_total"] = int(len(F.v_sess) + F.return_view.sum())
    counters["listing_views_total"] = int(F.v_listing.sum())

    # ---- tables ----------------------------------------------------------------------------
    tables = _build_tables(
        gl, user_id, signup_us, country, gender, age, acq, device, is_seed,
        orders_cols, all_m, a_exp, a_u, a_var, a_at, a_logged,
    )  # fmt: skip
    last_event = np.full(n, NAT)
    in_session = ev["key"] >= 0  # push_open of a churned user is not activity
    np.maximum.at(last_event, ev["uidx"][in_session], ev["ts"][in_session])
    churn_at = np.where(churned, np.maximum(churn_us, last_event), NAT)
    truth_users = pd.DataFrame(
        {
            "user_id": user_id,
            "customer_type": _strings(ctype, C.TYPES),
            "is_seed": is_seed,
            "session_rate": gl.rate[ctype],
            "churn_at": _ts(churn_at),
            "n_sessions": np.bincount(S.uidx, minlength=n).astype(np.int64),
            "n_orders": np.bincount(orders_cols["uidx"], minlength=n).astype(np.int64),
            "activity": activity,
            "propensity": propensity,
            "dropout_at": _ts(
                np.where(
                    np.isfinite(drop_h) & (drop_h < H),
                    gl.start_us
                    + (np.where(np.isfinite(drop_h), drop_h, 0.0) * US_H).astype(np.int64),
                    NAT,
                )
            ),
        }
    )
    truth_assign = pd.DataFrame(
        {
            "experiment_id": _strings(a_exp, EXPERIMENTS),
            "user_id": user_id[a_u],
            "variant": _variant_strings(a_exp, a_var),
            "assigned_at": _ts(a_at),
            "logged": a_logged,
            "planted_response": a_resp,
        }
    )
    chunk_out = Chunk(
        **tables,
        events=events_table.result(),
        truth_users=truth_users,
        truth_assignments=truth_assign,
        counters=counters,
    )
    if cfg.dirt:
        _add_dirt(rng, gl, chunk_out)
    return chunk_out

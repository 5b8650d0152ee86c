"""Vectorised generation of one chunk of the synthetic CRM world (no per-user Python loops).

A chunk is a contiguous block of users with its own random stream
(``SeedSequence(seed, spawn_key=(1, chunk))``); chunk outputs are independent, so the world
can be generated whole (:func:`generate`) or streamed to Parquet row groups
(:func:`crm_helpers.synth.io.generate_to`) with identical rows. Times are handled as int64
microseconds since the epoch until the tables are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from crm_helpers.synth import config as C
from crm_helpers.synth.config import SynthConfig

US_S = 1_000_000
US_H = 3_600 * US_S
US_D = 24 * US_H
NAT = np.iinfo(np.int64).min

EV = {name: i for i, name in enumerate(C.EVENTS)}
CH = {name: i for i, name in enumerate(C.SESSION_CHANNELS)}
PL = {name: i for i, name in enumerate(C.PLATFORMS)}
MCH = {name: i for i, name in enumerate(C.MESSAGE_CHANNELS)}
#: message channel code -> session channel code
MSG_TO_SESSION_CH = np.array([CH[c] for c in C.MESSAGE_CHANNELS])

SOURCES = ("organic", "message_click", "coupon_recovery", "message_test_response")
COUPON_CAMPAIGN_ID = 90
MSG3_CAMPAIGN_IDS = (91, 92, 93)
EXPERIMENTS = ("cart_abandoner_coupon", "message_test_3arm", "checkout_redesign")
VARIANTS = {
    "cart_abandoner_coupon": ("treatment", "holdout"),
    "message_test_3arm": ("control", "variant_a", "variant_b"),
    "checkout_redesign": ("control", "treatment"),
}


# --------------------------------------------------------------------------------------
# world-wide (chunk-independent) parameters
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Globals:
    """Everything shared by all chunks: time grid, type tables, prices, campaigns."""

    cfg: SynthConfig
    start_us: int
    end_us: int
    n_hours: int
    g: np.ndarray  # relative session intensity per hour of the period (mean 1 on a weekday)
    G: np.ndarray  # cumulative intensity in "ordinary days", len n_hours + 1
    shares: np.ndarray
    rate: np.ndarray
    age_p: np.ndarray
    gender_p: np.ndarray
    device_p: np.ndarray
    acq_p: np.ndarray
    cat_p: np.ndarray
    funnel: np.ndarray  # (types, 4)
    engage: np.ndarray
    qty_extra: np.ndarray
    open_mult: np.ndarray
    click_mult: np.ndarray
    org_ch: np.ndarray  # (types, 3) over direct, organic, paid
    coupon_code: np.ndarray
    coupon_p: np.ndarray
    coupon_disc: np.ndarray
    coupons: tuple[str, ...]
    price: np.ndarray  # (categories, products per category)
    campaigns: pd.DataFrame = field(repr=False)

    def day_us(self, day: float) -> int:
        return int(self.start_us + round(day * US_D))


def make_globals(cfg: SynthConfig) -> Globals:
    """Derive the chunk-independent tables of ``cfg`` (seeded by ``spawn_key=(0,)``)."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(0,)))
    start = cfg.start_ts
    n_hours = cfg.days * 24
    hour_idx = np.arange(n_hours)
    day = hour_idx // 24
    dow = (start.dayofweek + day) % 7
    weekend = dow >= 5
    wd = np.asarray(C.HOUR_WEEKDAY) / np.sum(C.HOUR_WEEKDAY) * 24
    we = np.asarray(C.HOUR_WEEKEND) / np.sum(C.HOUR_WEEKEND) * 24
    prof = np.where(weekend, we[hour_idx % 24], wd[hour_idx % 24])
    promo = (day >= cfg.promo_start_day) & (day < cfg.promo_start_day + cfg.promo_days)
    dayw = np.where(weekend, cfg.weekend_lift, 1.0) * np.where(promo, cfg.promo_traffic_lift, 1.0)
    g = dayw * prof
    G = np.concatenate([[0.0], np.cumsum(g / 24.0)])

    shares_map = dict(cfg.type_shares)
    prof_t = [C.TYPE_PROFILES[t] for t in C.TYPES]

    def arr(key):
        return np.array([p[key] for p in prof_t], dtype=float)

    coupons = tuple(sorted({p["coupon"][0] for p in prof_t} | {_coupon_code(cfg)}))
    price = np.asarray(C.CATEGORY_PRICE)[:, None] * rng.lognormal(
        -0.18, 0.6, size=(len(C.CATEGORIES), C.PRODUCTS_PER_CATEGORY)
    )
    price = np.round(np.maximum(price, 1.99), 2)

    # regular CRM campaigns: one every `campaign_every_days`, random channel and audience
    n_camp = cfg.days // cfg.campaign_every_days
    camp_day = np.minimum(
        np.arange(n_camp) * cfg.campaign_every_days
        + rng.integers(0, cfg.campaign_every_days, size=n_camp),
        cfg.days - 2,
    )
    camp_ch = rng.choice(len(C.MESSAGE_CHANNELS), size=n_camp, p=C.CAMPAIGN_CHANNEL_P)
    audience = rng.uniform(*cfg.campaign_audience, size=n_camp)
    campaigns = pd.DataFrame(
        {
            "campaign_id": 100 + np.arange(n_camp, dtype=np.int64),
            "day": camp_day.astype(np.int64),
            "channel": [C.MESSAGE_CHANNELS[c] for c in camp_ch],
            "channel_code": camp_ch,
            "audience_share": np.round(audience, 4),
        }
    )
    return Globals(
        cfg=cfg,
        start_us=int(start.value // 1000),
        end_us=int(cfg.end_ts.value // 1000),
        n_hours=n_hours,
        g=g,
        G=G,
        shares=np.array([shares_map[t] for t in C.TYPES]),
        rate=arr("session_rate") * cfg.activity_scale,
        age_p=np.array([p["age_band"] for p in prof_t]),
        gender_p=np.array([p["gender"] for p in prof_t]),
        device_p=np.array([p["device"] for p in prof_t]),
        acq_p=np.array([p["acquisition"] for p in prof_t]),
        cat_p=np.array([p["categories"] for p in prof_t]),
        funnel=np.array([p["funnel"] for p in prof_t]),
        engage=arr("engagement_rate"),
        qty_extra=arr("quantity_extra"),
        open_mult=arr("open_mult"),
        click_mult=arr("click_mult"),
        org_ch=np.array([p["organic_channels"] for p in prof_t]),
        coupon_code=np.array([coupons.index(p["coupon"][0]) for p in prof_t]),
        coupon_p=np.array([p["coupon"][1] for p in prof_t]),
        coupon_disc=np.array([p["coupon"][2] for p in prof_t]),
        coupons=coupons,
        price=price,
        campaigns=campaigns,
    )


def _coupon_code(cfg: SynthConfig) -> str:
    return f"CART{round(cfg.coupon_discount * 100)}"


# --------------------------------------------------------------------------------------
# small vectorised helpers
# --------------------------------------------------------------------------------------
def _choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (n, k) -> codes (n,)."""
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(probs))
    return np.minimum((u[:, None] > cum).sum(axis=1), probs.shape[1] - 1)


def _G_at(gl: Globals, hours: np.ndarray) -> np.ndarray:
    """Cumulative intensity at fractional hour offsets (clipped to the period)."""
    x = np.clip(hours, 0.0, gl.n_hours)
    k = np.minimum(np.floor(x).astype(np.int64), gl.n_hours - 1)
    return gl.G[k] + (x - k) * gl.g[k] / 24.0


def _G_inv(gl: Globals, c: np.ndarray) -> np.ndarray:
    """Fractional hour offset where the cumulative intensity reaches ``c``."""
    k = np.clip(np.searchsorted(gl.G, c, side="right") - 1, 0, gl.n_hours - 1)
    x = k + (c - gl.G[k]) * 24.0 / gl.g[k]
    return np.clip(x, 0.0, gl.n_hours - 1e-9)


def _trunc_exp(rng: np.random.Generator, mean: float, upper: float, n: int) -> np.ndarray:
    """Exponential(mean) truncated to (0, upper), by inversion."""
    u = rng.random(n)
    return -mean * np.log1p(-u * (1.0 - np.exp(-upper / mean)))


def _other_platform(rng: np.random.Generator, device: np.ndarray) -> np.ndarray:
    """Session platform: the user's device with prob OWN_DEVICE_SHARE, else another one."""
    n = len(device)
    switch = rng.random(n) >= C.OWN_DEVICE_SHARE
    other = (device + 1 + (rng.random(n) < 0.5)) % 3
    return np.where(switch, other, device)


def _app_platform(rng: np.random.Generator, device: np.ndarray) -> np.ndarray:
    """Platform of an app session (push/in-app): the device if it is an app, else ios/android."""
    return np.where(device == PL["web"], rng.integers(0, 2, size=len(device)), device)


def _order_user_time(gl: Globals, uidx: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Stable permutation sorting rows by (user, ts); ts within [start, end + 1 day)."""
    span = gl.end_us + US_D - gl.start_us
    t_bits = int(span).bit_length()
    u_bits = int(max(int(uidx.max(initial=0)), 1)).bit_length()
    if t_bits + u_bits <= 62:
        key = (uidx.astype(np.int64) << t_bits) + (ts - gl.start_us)
        return np.argsort(key, kind="stable")
    return np.lexsort((ts, uidx))


def _rank_within(group: np.ndarray) -> np.ndarray:
    """0-based position of each row within its run of equal ``group`` values (sorted input)."""
    n = len(group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, lengths)


# --------------------------------------------------------------------------------------
# sessions and the funnel
# --------------------------------------------------------------------------------------
@dataclass
class Sessions:
    """Column arrays of sessions (one row per session started by a user)."""

    uidx: np.ndarray
    t0: np.ndarray
    platform: np.ndarray
    channel: np.ndarray
    category: np.ndarray
    rank: np.ndarray
    source: np.ndarray
    forced: np.ndarray
    coupon: np.ndarray  # coupon code override (-1: habitual coupon behaviour)
    discount: np.ndarray
    rev_mult: np.ndarray

    def __len__(self) -> int:
        return len(self.uidx)

    @staticmethod
    def concat(parts: list[Sessions]) -> Sessions:
        return Sessions(
            **{
                f: np.concatenate([getattr(p, f) for p in parts])
                for f in Sessions.__dataclass_fields__
            }
        )

    @staticmethod
    def new(
        rng: np.random.Generator,
        gl: Globals,
        uidx: np.ndarray,
        t0: np.ndarray,
        ctype: np.ndarray,
        platform: np.ndarray,
        channel: np.ndarray,
        source: int,
        forced: bool = False,
        category: np.ndarray | None = None,
        rank: np.ndarray | None = None,
    ) -> Sessions:
        n = len(uidx)
        if category is None:
            category = _choice_rows(rng, gl.cat_p[ctype[uidx]])
        if rank is None:
            rank = np.floor(C.PRODUCTS_PER_CATEGORY * rng.random(n) ** 2.2).astype(np.int64)
        return Sessions(
            uidx=uidx.astype(np.int64),
            t0=t0.astype(np.int64),
            platform=platform.astype(np.int64),
            channel=np.broadcast_to(np.asarray(channel, dtype=np.int64), (n,)).copy(),
            category=category.astype(np.int64),
            rank=rank.astype(np.int64),
            source=np.full(n, source, dtype=np.int64),
            forced=np.full(n, forced),
            coupon=np.full(n, -1, dtype=np.int64),
            discount=np.zeros(n),
            rev_mult=np.ones(n),
        )


@dataclass
class Funnel:
    """Step times per session (NAT where the step is not reached or falls after the end)."""

    t_visit: np.ndarray
    t_view: np.ndarray
    t_cart: np.ndarray
    t_checkout: np.ndarray
    t_purchase: np.ndarray
    cart_return: np.ndarray  # checkout+purchase happen in a new session hours/days later
    dropoff: np.ndarray  # checkout fell in the planted drop-off window on its platform

    @staticmethod
    def concat(parts: list[Funnel]) -> Funnel:
        return Funnel(
            **{
                f: np.concatenate([getattr(p, f) for p in parts])
                for f in Funnel.__dataclass_fields__
            }
        )


def simulate_funnel(
    rng: np.random.Generator,
    gl: Globals,
    s: Sessions,
    ctype: np.ndarray,
    stop_us: np.ndarray | None = None,
) -> Funnel:
    """Walk every session down visit -> product_view -> add_to_cart -> checkout -> purchase.

    Step probabilities are the type's ``funnel`` times the platform multipliers, the promo
    lift on add_to_cart and the planted drop-off factor on checkout -> purchase for the
    drop-off platform when the checkout falls in the window. Forced sessions (planted
    experiment conversions) pass every step.
    """
    cfg = gl.cfg
    n = len(s)
    t_ = ctype[s.uidx]
    plat_mult = np.array([C.PLATFORM_STEP_MULT[p] for p in C.PLATFORMS])[s.platform]
    p = gl.funnel[t_] * plat_mult
    u = rng.random((n, 5))
    forced = s.forced
    app = s.platform != PL["web"]
    t_visit = s.t0 + np.where(app, rng.integers(1 * US_S, 3 * US_S, size=n), 0)
    ok_view = forced | (u[:, 0] < p[:, 0])
    t_view = t_visit + 2 * US_S + (rng.exponential(20.0, size=n) * US_S).astype(np.int64)
    promo_lo, promo_hi = (
        gl.day_us(cfg.promo_start_day),
        gl.day_us(cfg.promo_start_day + cfg.promo_days),
    )
    in_promo = (t_view >= promo_lo) & (t_view < promo_hi)
    p_cart = np.minimum(p[:, 1] * np.where(in_promo, cfg.promo_cart_lift, 1.0), 0.99)
    ok_cart = ok_view & (forced | (u[:, 1] < p_cart))
    t_cart = t_view + 5 * US_S + (rng.exponential(60.0, size=n) * US_S).astype(np.int64)
    ok_chk = ok_cart & (forced | (u[:, 2] < np.minimum(p[:, 2], 0.99)))
    ret = ok_chk & ~forced & (u[:, 3] < C.CART_RETURN_P)
    ret_gap = rng.lognormal(np.log(C.CART_RETURN_MEDIAN_H), 1.0, size=n) * US_H
    quick_gap = (10.0 + rng.exponential(90.0, size=n)) * US_S
    t_chk = t_cart + np.where(ret, ret_gap, quick_gap).astype(np.int64)
    drop_lo = gl.day_us(cfg.dropoff_start_day)
    drop_hi = gl.day_us(cfg.dropoff_start_day + cfg.dropoff_days)
    dropoff = (s.platform == PL[cfg.dropoff_platform]) & (t_chk >= drop_lo) & (t_chk < drop_hi)
    p_pur = np.minimum(p[:, 3] * np.where(dropoff, cfg.dropoff_factor, 1.0), 0.99)
    ok_pur = ok_chk & (forced | (u[:, 4] < p_pur))
    t_pur = t_chk + 5 * US_S + (rng.exponential(40.0, size=n) * US_S).astype(np.int64)

    # steps after the period end (or after a churned user's churn time) never happen
    end = gl.end_us if stop_us is None else np.minimum(stop_us[s.uidx], gl.end_us)

    def keep(ok, t):
        return np.where(ok & (t < end), t, NAT)

    t_visit_k = keep(np.ones(n, dtype=bool), t_visit)
    t_view_k = keep(ok_view, t_view)
    t_cart_k = keep(ok_cart & (t_view_k != NAT), t_cart)
    t_chk_k = keep(ok_chk & (t_cart_k != NAT), t_chk)
    t_pur_k = keep(ok_pur & (t_chk_k != NAT), t_pur)
    return Funnel(
        t_visit=t_visit_k,
        t_view=t_view_k,
        t_cart=t_cart_k,
        t_checkout=t_chk_k,
        t_purchase=t_pur_k,
        cart_return=ret & (t_chk_k != NAT),
        dropoff=dropoff,
    )


# --------------------------------------------------------------------------------------
# one chunk
# --------------------------------------------------------------------------------------
@dataclass
class Chunk:
    """Tables of one chunk (pandas) plus its hidden truth and additive counters."""

    users: pd.DataFrame
    events: pd.DataFrame
    orders: pd.DataFrame
    messages: pd.DataFrame
    assignments: pd.DataFrame
    truth_users: pd.DataFrame
    truth_assignments: pd.DataFrame
    counters: dict


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

    # ---- organic sessions: inhomogeneous Poisson on the hourly grid -----------------------
    Ga, Gb = _G_at(gl, a_h), _G_at(gl, b_h)
    lam = gl.rate[ctype] * np.maximum(Gb - Ga, 0.0)
    n_sess = rng.poisson(lam)
    su = np.repeat(np.arange(n), n_sess)
    c = Ga[su] + rng.random(len(su)) * (Gb - Ga)[su]
    x_h = _G_inv(gl, c)
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
    )

    # ---- regular CRM campaigns ----------------------------------------------------------
    msg_parts = []
    camp = gl.campaigns
    for cid, day, ch, share in zip(
        camp["campaign_id"], camp["day"], camp["channel_code"], camp["audience_share"], strict=True
    ):
        day_start = gl.day_us(int(day))
        sel = np.flatnonzero((signup_us < day_start) & (rng.random(n) < share))
        k = len(sel)
        sent = day_start + (rng.uniform(*C.SEND_HOURS, size=k) * US_H).astype(np.int64)
        msg_parts.append((sel, np.full(k, cid), np.full(k, ch), sent))
    m_u = np.concatenate([p[0] for p in msg_parts]).astype(np.int64)
    m_cid = np.concatenate([p[1] for p in msg_parts]).astype(np.int64)
    m_ch = np.concatenate([p[2] for p in msg_parts]).astype(np.int64)
    m_sent = np.concatenate([p[3] for p in msg_parts]).astype(np.int64)
    nm = len(m_u)
    hour = ((m_sent - gl.start_us) // US_H) % 24
    gone = churned[m_u] & (m_sent >= gl.start_us + (churn_h[m_u] * US_H).astype(np.int64))
    open_base = np.array([C.OPEN_P[ch] for ch in C.MESSAGE_CHANNELS])
    click_base = np.array([C.CLICK_P[ch] for ch in C.MESSAGE_CHANNELS])
    delay_med = np.array([C.OPEN_DELAY_MEDIAN_MIN[ch] for ch in C.MESSAGE_CHANNELS])
    p_open = open_base[m_ch] * np.asarray(C.OPEN_HOUR_MULT)[hour] * gl.open_mult[ctype[m_u]]
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

    base = Sessions.concat([organic, click_sessions])
    churn_us = gl.start_us + (churn_h * US_H).astype(np.int64)
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
    send_day = gl.day_us(cfg.msg3_day)
    active = ~(churned & (churn_h * US_H + gl.start_us < send_day))
    m3 = np.flatnonzero((signup_us < send_day) & active & (rng.random(n) < cfg.msg3_share))
    m3_arm = rng.integers(0, 3, size=len(m3))
    m3_sent = send_day + (rng.uniform(17.0, 20.0, size=len(m3)) * US_H).astype(np.int64)
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
        _app_platform(rng, device[m3[ri]]),
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
    forced_sessions = Sessions.concat([recovery, response])
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
        "uidx": np.concatenate([m_u, cu[ct], m3]),
        "campaign_id": np.concatenate(
            [m_cid, np.full(len(ct), COUPON_CAMPAIGN_ID), np.asarray(MSG3_CAMPAIGN_IDS)[m3_arm]]
        ),
        "channel": np.concatenate(
            [m_ch, np.full(len(ct), MCH["email"]), np.full(len(m3), MCH["push"])]
        ),
        "sent": np.concatenate([m_sent, ce_sent, m3_sent]),
        "opened": np.concatenate([np.where(opened, opened_t, NAT), ce_open, m3_open]),
        "clicked": np.concatenate([np.where(clicked, clicked_t, NAT), ce_click, m3_click]),
    }
    mo = np.lexsort((all_m["campaign_id"], all_m["sent"], all_m["uidx"]))
    all_m = {k: v[mo] for k, v in all_m.items()}
    all_m["rank"] = _rank_within(all_m["uidx"])

    # ---- assignments -----------------------------------------------------------------------
    a_exp = np.concatenate([np.zeros(len(ab)), np.ones(len(m3)), np.full(len(win), 2)]).astype(
        np.int64
    )
    a_u = np.concatenate([cu, m3, srm_u])
    a_var = np.concatenate([np.where(c_treat, 0, 1), m3_arm, srm_treat.astype(np.int64)])
    a_at = np.concatenate([c_assigned, m3_sent, srm_at])
    a_logged = np.concatenate([np.ones(len(ab) + len(m3), dtype=bool), srm_logged])
    a_resp = np.concatenate([c_conv, m3_resp, np.zeros(len(win), dtype=bool)])

    # ---- counters (additive over chunks) ------------------------------------------------
    counters = _counters(
        gl, ctype, is_seed, S, F, events, orders_cols, all_m, m_cid, m_ch, hour, opened, clicked,
        a_exp, a_u, a_var, a_at, a_logged, a_resp, eng_n,
    )  # fmt: skip

    # ---- tables ----------------------------------------------------------------------------
    ev = events
    ev_sid = np.where(ev["key"] >= 0, sid[np.maximum(ev["key"], 0)], -1)
    tables = _build_tables(
        gl, user_id, signup_us, country, gender, age, acq, device, is_seed, ev, ev_sid,
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
        **tables, truth_users=truth_users, truth_assignments=truth_assign, counters=counters
    )
    if cfg.dirt:
        _add_dirt(rng, gl, chunk_out)
    return chunk_out


def _materialise_events(rng, gl, S: Sessions, F: Funnel, ctype, po_u, po_t, po_plat):
    """Event rows of all sessions (plus out-of-session push_open) as column arrays."""
    n = len(S)
    app = S.platform != PL["web"]
    ret = np.flatnonzero(F.cart_return)
    # return sessions get keys n .. n + len(ret) - 1
    ret_key = np.full(n, -1, dtype=np.int64)
    ret_key[ret] = n + np.arange(len(ret))
    ret_t0 = F.t_checkout[ret] - 4 * US_S
    sess_start = np.concatenate([S.t0, ret_t0])
    sess_user = np.concatenate([S.uidx, S.uidx[ret]])
    idx = np.arange(n)
    key_late = np.where(F.cart_return, ret_key, idx)  # session of checkout/purchase

    parts = []

    def add(rows, key, event, ts, with_cat, with_prod, channel=None):
        parts.append(
            {
                "uidx": S.uidx[rows],
                "key": key,
                "event": np.full(len(rows), EV[event]),
                "ts": ts,
                "category": S.category[rows] if with_cat else np.full(len(rows), -1),
                "product": (S.category[rows] + 1) * 1000 + S.rank[rows] if with_prod else np.full(len(rows), -1),
                "platform": S.platform[rows],
                "channel": S.channel[rows] if channel is None else np.full(len(rows), channel),
            }
        )  # fmt: skip

    a = np.flatnonzero(app)
    add(a, a, "app_open", S.t0[a], False, False)
    v = np.flatnonzero(F.t_visit != NAT)
    add(v, v, "visit", F.t_visit[v], False, False)
    for name, t in (("product_view", F.t_view), ("add_to_cart", F.t_cart)):
        r = np.flatnonzero(t != NAT)
        add(r, r, name, t[r], True, True)
    ra = ret[app[ret]]
    add(ra, ret_key[ra], "app_open", F.t_checkout[ra] - 4 * US_S, False, False, CH["direct"])
    add(ret, ret_key[ret], "visit", F.t_checkout[ret] - 2 * US_S, False, False, CH["direct"])
    for name, t in (("checkout", F.t_checkout), ("purchase", F.t_purchase)):
        r = np.flatnonzero(t != NAT)
        ch = np.where(F.cart_return[r], CH["direct"], S.channel[r])
        add(r, key_late[r], name, t[r], True, True)
        parts[-1]["channel"] = ch
    purchases = np.flatnonzero(F.t_purchase != NAT)

    # engagement events inside the (first) session
    n_eng = np.where(S.forced | (F.t_visit == NAT), 0, rng.poisson(gl.engage[ctype[S.uidx]]))
    er = np.repeat(idx, n_eng)
    last = np.maximum.reduce(
        [F.t_visit, F.t_view, F.t_cart, np.where(F.cart_return, NAT, F.t_checkout),
         np.where(F.cart_return, NAT, F.t_purchase)]
    )  # fmt: skip
    span = last[er] - F.t_visit[er] + 120 * US_S
    et = F.t_visit[er] + (rng.random(len(er)) * span).astype(np.int64)
    kind = rng.choice(len(C.ENGAGEMENT_EVENTS), size=len(er), p=C.ENGAGEMENT_P)
    ok = et < gl.end_us
    er, et, kind = er[ok], et[ok], kind[ok]
    eng_n = np.zeros(len(C.ENGAGEMENT_EVENTS), dtype=np.int64)
    for k, name in enumerate(C.ENGAGEMENT_EVENTS):
        r = er[kind == k]
        add(r, r, name, et[kind == k], True, name != "search")
        eng_n[k] = len(r)
    # push_open events: outside any session (session_id null)
    parts.append(
        {
            "uidx": po_u,
            "key": np.full(len(po_u), -1),
            "event": np.full(len(po_u), EV["push_open"]),
            "ts": po_t,
            "category": np.full(len(po_u), -1),
            "product": np.full(len(po_u), -1),
            "platform": po_plat,
            "channel": np.full(len(po_u), CH["push"]),
        }
    )
    ev = {k: np.concatenate([p[k] for p in parts]).astype(np.int64) for k in parts[0]}
    o = _order_user_time(gl, ev["uidx"], ev["ts"])
    ev = {k: v[o] for k, v in ev.items()}
    return ev, sess_start, sess_user, purchases, eng_n


# --------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------
_STR = pd.StringDtype("pyarrow", na_value=np.nan)


def _strings(codes: np.ndarray, vocab: tuple[str, ...]) -> pd.Series:
    """Codes -> pandas string Series (``str`` dtype); negative code -> missing."""
    codes = np.asarray(codes)
    arr = pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32), mask=codes < 0), pa.array(list(vocab), pa.string())
    ).cast(pa.string())
    return pd.Series(arr.to_pandas(types_mapper={pa.string(): _STR}.get), dtype="str")


def _variant_strings(a_exp: np.ndarray, a_var: np.ndarray) -> pd.Series:
    vocab = [v for e in EXPERIMENTS for v in VARIANTS[e]]
    offset = np.cumsum([0] + [len(VARIANTS[e]) for e in EXPERIMENTS])[:-1]
    return _strings(offset[a_exp] + a_var, tuple(vocab))


def _ts(us: np.ndarray) -> pd.Series:
    """int64 microseconds (NAT -> NaT) -> tz-aware UTC timestamps with microsecond unit."""
    return pd.Series(np.asarray(us, dtype=np.int64).view("datetime64[us]")).dt.tz_localize("UTC")


def _nullable_int(values: np.ndarray, missing: np.ndarray) -> pd.Series:
    return pd.Series(pd.arrays.IntegerArray(values.astype(np.int64), missing.copy()))


def _build_tables(
    gl, user_id, signup_us, country, gender, age, acq, device, is_seed, ev, ev_sid,
    oc, am, a_exp, a_u, a_var, a_at, a_logged,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    users = pd.DataFrame(
        {
            "user_id": user_id,
            "signup_at": _ts(signup_us),
            "country": _strings(country, C.COUNTRIES),
            "gender": _strings(gender, C.GENDERS),
            "age_band": _strings(age, C.AGE_BANDS),
            "acquisition_channel": _strings(acq, C.ACQUISITION),
            "device": _strings(device, C.PLATFORMS),
            "lookalike_seed": is_seed,
        }
    )
    events = pd.DataFrame(
        {
            "user_id": user_id[ev["uidx"]],
            "event": _strings(ev["event"], C.EVENTS),
            "ts": _ts(ev["ts"]),
            "session_id": _nullable_int(ev_sid, ev_sid < 0),
            "category": _strings(ev["category"], C.CATEGORIES),
            "product_id": _nullable_int(ev["product"], ev["product"] < 0),
            "platform": _strings(ev["platform"], C.PLATFORMS),
            "channel": _strings(ev["channel"], C.SESSION_CHANNELS),
        }
    )
    o_user = user_id[oc["uidx"]]
    orders = pd.DataFrame(
        {
            "order_id": o_user * C.ID_STRIDE + oc["order_rank"],
            "user_id": o_user,
            "ts": _ts(oc["ts"]),
            "revenue": oc["revenue"].astype(float),
            "category": _strings(oc["category"], C.CATEGORIES),
            "coupon": _strings(oc["coupon"], gl.coupons),
            "quantity": oc["quantity"],
        }
    )
    m_user = user_id[am["uidx"]]
    messages = pd.DataFrame(
        {
            "message_id": m_user * C.ID_STRIDE + am["rank"],
            "user_id": m_user,
            "campaign_id": am["campaign_id"].astype(np.int64),
            "channel": _strings(am["channel"], C.MESSAGE_CHANNELS),
            "sent_at": _ts(am["sent"]),
            "opened_at": _ts(am["opened"]),
            "clicked_at": _ts(am["clicked"]),
        }
    )
    keep = np.flatnonzero(a_logged)
    ao = keep[np.lexsort((a_u[keep], a_exp[keep]))]
    assignments = pd.DataFrame(
        {
            "experiment_id": _strings(a_exp[ao], EXPERIMENTS),
            "user_id": user_id[a_u[ao]],
            "variant": _variant_strings(a_exp[ao], a_var[ao]),
            "assigned_at": _ts(a_at[ao]),
        }
    )
    return {
        "users": users,
        "events": events,
        "orders": orders,
        "messages": messages,
        "assignments": assignments,
    }


# --------------------------------------------------------------------------------------
# counters -> ground truth
# --------------------------------------------------------------------------------------
def _counters(
    gl, ctype, is_seed, S, F, ev, oc, am, m_cid, m_ch, hour, opened, clicked,
    a_exp, a_u, a_var, a_at, a_logged, a_resp, eng_n,
) -> dict:  # fmt: skip
    """Integer/float sums that merge across chunks by addition."""
    cfg = gl.cfg
    nT, nP = len(C.TYPES), len(C.PLATFORMS)
    out: dict = {}
    out["type_counts"] = np.bincount(ctype, minlength=nT)
    out["seed_count"] = int(is_seed.sum())
    out["events_by_platform_event"] = np.bincount(
        ev["platform"] * len(C.EVENTS) + ev["event"], minlength=nP * len(C.EVENTS)
    ).reshape(nP, len(C.EVENTS))
    out["sessions_by_channel"] = np.bincount(S.channel, minlength=len(C.SESSION_CHANNELS))
    out["sessions_by_source"] = np.bincount(S.source, minlength=len(SOURCES))
    out["cart_returns"] = int(F.cart_return.sum())
    out["engagement_events"] = eng_n
    # drop-off: checkouts and their purchases by platform x (checkout in window)
    drop_lo = gl.day_us(cfg.dropoff_start_day)
    drop_hi = gl.day_us(cfg.dropoff_start_day + cfg.dropoff_days)
    chk = F.t_checkout != NAT
    inwin = (F.t_checkout >= drop_lo) & (F.t_checkout < drop_hi)
    cell = S.platform * 2 + inwin
    out["checkouts_by_platform_window"] = np.bincount(cell[chk], minlength=nP * 2).reshape(nP, 2)
    bought = chk & (F.t_purchase != NAT)
    out["purchases_by_platform_window"] = np.bincount(cell[bought], minlength=nP * 2).reshape(nP, 2)
    # funnel steps reached per session (cart returns counted on their original session)
    steps = np.stack([F.t_visit, F.t_view, F.t_cart, F.t_checkout, F.t_purchase]) != NAT
    out["sessions_reaching_step_by_platform"] = np.stack(
        [np.bincount(S.platform[s], minlength=nP) for s in steps], axis=1
    )
    # regular campaigns: sent / opened / clicked by channel and by send hour
    nM = len(C.MESSAGE_CHANNELS)
    out["regular_sent_by_channel"] = np.bincount(m_ch, minlength=nM)
    out["regular_opened_by_channel"] = np.bincount(m_ch[opened], minlength=nM)
    out["regular_clicked_by_channel"] = np.bincount(m_ch[clicked], minlength=nM)
    out["regular_sent_by_hour"] = np.bincount(hour, minlength=24)
    out["regular_opened_by_hour"] = np.bincount(hour[opened], minlength=24)
    out["regular_clicked_by_hour"] = np.bincount(hour[clicked], minlength=24)
    out["regular_sent_by_campaign"] = np.bincount(m_cid - 100, minlength=len(gl.campaigns))
    out["messages_total"] = len(am["uidx"])
    out["orders_total"] = len(oc["uidx"])
    out["revenue_total"] = float(oc["revenue"].sum())
    out["orders_by_source"] = np.bincount(oc["source"], minlength=len(SOURCES))
    out["orders_with_coupon"] = int((oc["coupon"] >= 0).sum())
    # experiments: per experiment x variant
    windows = np.array([cfg.coupon_window_days, cfg.msg3_window_days, cfg.srm_days]) * US_D
    max_v = 3
    cell = a_exp * max_v + a_var
    out["exp_intended"] = np.bincount(cell, minlength=3 * max_v).reshape(3, max_v)
    out["exp_logged"] = np.bincount(cell[a_logged], minlength=3 * max_v).reshape(3, max_v)
    out["exp_planted_response"] = np.bincount(cell[a_resp], minlength=3 * max_v).reshape(3, max_v)
    conv, conv_organic, rev = _window_outcomes(oc, a_u, a_at, a_at + windows[a_exp])
    out["exp_converted"] = np.bincount(cell[conv & a_logged], minlength=3 * max_v).reshape(3, max_v)
    out["exp_converted_organic"] = np.bincount(
        cell[conv_organic & a_logged], minlength=3 * max_v
    ).reshape(3, max_v)
    out["exp_revenue"] = np.bincount(
        cell[a_logged], weights=rev[a_logged], minlength=3 * max_v
    ).reshape(3, max_v)
    out["n_users"] = len(ctype)
    out["n_events"] = len(ev["uidx"])
    out["n_sessions"] = len(S) + int(F.cart_return.sum())
    return out


def _window_outcomes(oc: dict, a_u, a_from, a_to):
    """Per assignment: any order in (from, to], any organic/message-click order, revenue."""
    o = pd.DataFrame(
        {"uidx": oc["uidx"], "ts": oc["ts"], "rev": oc["revenue"], "organic": oc["source"] <= 1}
    )
    a = pd.DataFrame({"uidx": a_u, "lo": a_from, "hi": a_to, "row": np.arange(len(a_u))})
    j = a.merge(o, on="uidx", how="inner")
    j = j[(j["ts"] > j["lo"]) & (j["ts"] <= j["hi"])]
    conv = np.zeros(len(a_u), dtype=bool)
    conv[j["row"].to_numpy()] = True
    conv_org = np.zeros(len(a_u), dtype=bool)
    conv_org[j.loc[j["organic"], "row"].to_numpy()] = True
    rev = np.bincount(j["row"].to_numpy(), weights=j["rev"].to_numpy(), minlength=len(a_u))
    return conv, conv_org, rev


# --------------------------------------------------------------------------------------
# dirt
# --------------------------------------------------------------------------------------
def _add_dirt(rng: np.random.Generator, gl: Globals, ch: Chunk) -> None:
    """Plant countable data-quality problems into a chunk's tables (in place)."""
    cfg = gl.cfg
    ev = ch.events
    n_ev = len(ev)
    cand = np.flatnonzero((ev["event"] != "purchase").to_numpy())
    k_dup = int(round(cfg.dirt_duplicate_event_rate * n_ev))
    k_null = max(1, int(round(cfg.dirt_null_user_rate * n_ev)))
    k_late = max(3, int(round(cfg.dirt_late_event_rate * n_ev)))
    k_dup = min(k_dup, len(cand) // 4)
    pick = rng.choice(cand, size=k_dup + k_null + k_late, replace=False)
    dup, null, late = np.split(pick, [k_dup, k_dup + k_null])
    late_ts = gl.end_us + (rng.uniform(30.0, 400.0, size=k_late) * US_D).astype(np.int64)
    ev_ts = ev["ts"].copy()
    ev_ts.iloc[late] = _ts(late_ts).to_numpy()
    ev["ts"] = ev_ts
    uid = pd.array(ev["user_id"].to_numpy(), dtype="Int64")
    uid[null] = pd.NA
    ev["user_id"] = uid
    dirty = pd.concat([ev, ev.iloc[np.sort(dup)]], ignore_index=True)
    ch.events = dirty

    od = ch.orders
    cand_o = np.arange(len(od))
    k_do = max(2, int(round(cfg.dirt_duplicate_order_rate * len(od))))
    k_neg = max(2, int(round(cfg.dirt_negative_quantity_rate * len(od))))
    k_do, k_neg = min(k_do, len(od) // 4), min(k_neg, len(od) // 4)
    pick = rng.choice(cand_o, size=k_do + k_neg, replace=False)
    dup_o, neg = pick[:k_do], pick[k_do:]
    od = od.copy()
    q = od["quantity"].to_numpy().copy()
    q[neg] = -q[neg]
    od["quantity"] = q
    copies = od.iloc[np.sort(dup_o)].copy()
    copies["ts"] = copies["ts"] + pd.to_timedelta(rng.integers(1, 120, size=len(copies)), unit="s")
    ch.orders = pd.concat([od, copies], ignore_index=True)
    c = ch.counters
    c["dirt_duplicate_event_rows"] = len(dup)
    c["dirt_null_user_id_events"] = len(null)
    c["dirt_late_events"] = len(late)
    c["dirt_duplicate_order_id_rows"] = len(dup_o)
    c["dirt_negative_quantity_orders"] = len(neg)

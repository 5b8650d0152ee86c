"""Chunk-independent parameters of the synthetic world: time grid, codes, small helpers.

Times are int64 microseconds since the epoch; the session intensity of the period is a
piecewise-constant function on the hourly grid (``Globals.g``) with its cumulative
integral ``Globals.G`` in "ordinary weekdays", so sessions are placed by inversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

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

SOURCES = (
    "organic",
    "message_click",
    "coupon_recovery",
    "message_test_response",
    "message_nudge",
    "holdout_response",
)
#: sources whose orders are not planted experiment conversions
ORGANIC_SOURCES = (0, 1, 4)
COUPON_CAMPAIGN_ID = 90
MSG3_CAMPAIGN_IDS = (91, 92, 93)
HOLDOUT_CAMPAIGN_ID = 94
EXPERIMENTS = (
    "cart_abandoner_coupon",
    "message_test_3arm",
    "checkout_redesign",
    "promo_email_holdout",
)
VARIANTS = {
    "cart_abandoner_coupon": ("treatment", "holdout"),
    "message_test_3arm": ("control", "variant_a", "variant_b"),
    "checkout_redesign": ("control", "treatment"),
    "promo_email_holdout": ("treatment", "holdout"),
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
    lifetime_h: np.ndarray  # mean hours from signup to dropout (inf: no dropout)
    nudge_p: np.ndarray
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
    # ... and the series (one more regular campaign, sent series_sends times a day apart)
    series_ch = C.MESSAGE_CHANNELS.index(cfg.series_channel)
    campaigns = pd.DataFrame(
        {
            "campaign_id": 100 + np.arange(n_camp + 1, dtype=np.int64),
            "day": np.r_[camp_day, cfg.series_day].astype(np.int64),
            "channel": [C.MESSAGE_CHANNELS[c] for c in camp_ch] + [cfg.series_channel],
            "channel_code": np.r_[camp_ch, series_ch].astype(np.int64),
            "audience_share": np.r_[np.round(audience, 4), cfg.series_share],
            "sends": np.r_[np.ones(n_camp), cfg.series_sends].astype(np.int64),
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
        lifetime_h=np.array(
            [np.inf if p["lifetime_days"] is None else 24.0 * p["lifetime_days"] for p in prof_t]
        ),
        nudge_p=arr("nudge_p"),
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


def _power_rank(rng: np.random.Generator, n: int) -> np.ndarray:
    """Popularity rank of a product within its category (low ranks are popular)."""
    return np.floor(C.PRODUCTS_PER_CATEGORY * rng.random(n) ** 2.2).astype(np.int64)


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

"""Configuration and planted profiles of the synthetic CRM world.

Everything the generator plants is a number in this module or in :class:`SynthConfig`,
and every one of them is copied into ``ground_truth.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

# --- vocabularies (code order is part of the seeded output: append only) ---------------
TYPES: tuple[str, ...] = (
    "loyalists",
    "sports_fans",
    "bargain_hunters",
    "at_risk",
    "churned",
    "casual",
)
CATEGORIES: tuple[str, ...] = (
    "sports",
    "electronics",
    "fashion",
    "home",
    "beauty",
    "grocery",
    "toys",
)
AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55+")
GENDERS: tuple[str, ...] = ("female", "male", "unknown")
COUNTRIES: tuple[str, ...] = ("DE", "FR", "ES", "IT", "NL", "PL", "GB")
COUNTRY_P: tuple[float, ...] = (0.26, 0.18, 0.14, 0.14, 0.08, 0.10, 0.10)
ACQUISITION: tuple[str, ...] = ("organic", "paid_search", "paid_social", "referral", "affiliate")
PLATFORMS: tuple[str, ...] = ("ios", "android", "web")
SESSION_CHANNELS: tuple[str, ...] = ("direct", "push", "email", "sms", "in-app", "paid", "organic")
MESSAGE_CHANNELS: tuple[str, ...] = ("push", "email", "sms", "in-app")
EVENTS: tuple[str, ...] = (
    "app_open",
    "visit",
    "product_view",
    "add_to_cart",
    "checkout",
    "purchase",
    "search",
    "wishlist_add",
    "review",
    "push_open",
    "listing_view",
)
FUNNEL_STEPS: tuple[str, ...] = ("visit", "product_view", "add_to_cart", "checkout", "purchase")
ENGAGEMENT_EVENTS: tuple[str, ...] = ("search", "wishlist_add", "review")
ENGAGEMENT_P: tuple[float, ...] = (0.55, 0.32, 0.13)
PRODUCTS_PER_CATEGORY = 200
#: Mean list price per category (product prices are log-normal around it, fixed per seed).
CATEGORY_PRICE: tuple[float, ...] = (45.0, 180.0, 55.0, 70.0, 28.0, 18.0, 32.0)

#: Id strides: ``session_id = user_id * ID_STRIDE + rank of the session within the user``
#: (same for orders and messages), so ids depend only on the user, never on chunking.
ID_STRIDE = 10_000

# --- latent customer types ------------------------------------------------------------
#: Per type: weekday session rate (sessions/day), attribute distributions, preferred
#: categories, funnel step probabilities (product_view | visit, add_to_cart | view,
#: checkout | cart, purchase | checkout), engagement events per session, extra quantity
#: (Poisson), CRM open/click multipliers, organic session channels (direct, organic, paid),
#: and a habitual coupon (code, probability per order, discount). ``funnel[1]`` is the
#: probability that a browsing session (several product views) carts its focus product.
#: Category tastes differ by type, as real customer groups' do (loyalists: home; sports fans:
#: sports; bargain hunters: fashion and grocery; at-risk: electronics; churned: electronics
#: and toys; casual: spread), so that behavioural clusters can find the types from what users
#: browse even when they rarely buy (``tests/segments/test_segments_planted.py``).
#: ``lifetime_days``: mean of the exponential time from signup to dropout (ordinary
#: customers leave, Pareto/NBD-style; None: the type has its own planted activity curve).
#: ``nudge_p``: probability that a regular CRM message starts a shopping journey of a
#: recipient who has not dropped out (a visit through another channel, with or without a
#: click); dropped-out recipients come back with ``SynthConfig.nudge_dormant_mult`` x that.
TYPE_PROFILES: dict[str, dict] = {
    "loyalists": {
        "session_rate": 0.04,
        "age_band": (0.10, 0.30, 0.30, 0.20, 0.10),
        "gender": (0.55, 0.43, 0.02),
        "device": (0.48, 0.32, 0.20),
        "acquisition": (0.45, 0.10, 0.08, 0.27, 0.10),
        "categories": (0.04, 0.08, 0.10, 0.52, 0.16, 0.05, 0.05),
        "funnel": (0.90, 0.18, 0.29, 0.86),
        "lifetime_days": None,
        "nudge_p": 0.20,
        "engagement_rate": 1.0,
        "quantity_extra": 0.6,
        "open_mult": 1.6,
        "click_mult": 1.3,
        "organic_channels": (0.60, 0.32, 0.08),
        "coupon": ("LOYAL5", 0.05, 0.05),
    },
    "sports_fans": {
        "session_rate": 0.02,
        "age_band": (0.36, 0.36, 0.15, 0.09, 0.04),
        "gender": (0.22, 0.76, 0.02),
        "device": (0.40, 0.46, 0.14),
        "acquisition": (0.25, 0.18, 0.37, 0.10, 0.10),
        "categories": (0.70, 0.10, 0.08, 0.04, 0.02, 0.03, 0.03),
        "funnel": (0.88, 0.14, 0.26, 0.84),
        "lifetime_days": 240.0,
        "nudge_p": 0.15,
        "engagement_rate": 0.8,
        "quantity_extra": 0.4,
        "open_mult": 1.0,
        "click_mult": 1.1,
        "organic_channels": (0.40, 0.30, 0.30),
        "coupon": ("SAVE10", 0.04, 0.10),
    },
    "bargain_hunters": {
        "session_rate": 0.022,
        "age_band": (0.20, 0.30, 0.25, 0.15, 0.10),
        "gender": (0.58, 0.40, 0.02),
        "device": (0.24, 0.56, 0.20),
        "acquisition": (0.15, 0.17, 0.20, 0.08, 0.40),
        "categories": (0.04, 0.08, 0.30, 0.06, 0.06, 0.36, 0.10),
        "funnel": (0.90, 0.15, 0.24, 0.80),
        "lifetime_days": 200.0,
        "nudge_p": 0.18,
        "engagement_rate": 1.5,
        "quantity_extra": 0.3,
        "open_mult": 1.2,
        "click_mult": 1.4,
        "organic_channels": (0.30, 0.30, 0.40),
        "coupon": ("SAVE10", 0.35, 0.10),
    },
    "at_risk": {
        "session_rate": 0.02,
        "age_band": (0.10, 0.24, 0.30, 0.21, 0.15),
        "gender": (0.50, 0.48, 0.02),
        "device": (0.34, 0.40, 0.26),
        "acquisition": (0.30, 0.20, 0.20, 0.15, 0.15),
        "categories": (0.06, 0.40, 0.14, 0.12, 0.08, 0.08, 0.12),
        "funnel": (0.84, 0.12, 0.25, 0.82),
        "lifetime_days": None,
        "nudge_p": 0.08,
        "engagement_rate": 0.6,
        "quantity_extra": 0.3,
        "open_mult": 0.7,
        "click_mult": 0.7,
        "organic_channels": (0.45, 0.35, 0.20),
        "coupon": ("SAVE10", 0.06, 0.10),
    },
    "churned": {
        "session_rate": 0.018,
        "age_band": (0.18, 0.26, 0.24, 0.18, 0.14),
        "gender": (0.50, 0.48, 0.02),
        "device": (0.30, 0.40, 0.30),
        "acquisition": (0.20, 0.22, 0.30, 0.06, 0.22),
        "categories": (0.08, 0.30, 0.10, 0.10, 0.08, 0.06, 0.28),
        "funnel": (0.80, 0.10, 0.24, 0.80),
        "lifetime_days": None,
        "nudge_p": 0.06,
        "engagement_rate": 0.5,
        "quantity_extra": 0.2,
        "open_mult": 0.35,
        "click_mult": 0.5,
        "organic_channels": (0.35, 0.30, 0.35),
        "coupon": ("SAVE10", 0.06, 0.10),
    },
    "casual": {
        "session_rate": 0.008,
        "age_band": (0.20, 0.25, 0.20, 0.20, 0.15),
        "gender": (0.50, 0.47, 0.03),
        "device": (0.30, 0.34, 0.36),
        "acquisition": (0.35, 0.20, 0.20, 0.10, 0.15),
        "categories": (0.13, 0.15, 0.17, 0.17, 0.13, 0.15, 0.10),
        "funnel": (0.78, 0.10, 0.24, 0.82),
        "lifetime_days": 120.0,
        "nudge_p": 0.13,
        "engagement_rate": 0.5,
        "quantity_extra": 0.2,
        "open_mult": 0.8,
        "click_mult": 0.8,
        "organic_channels": (0.45, 0.40, 0.15),
        "coupon": ("SAVE10", 0.05, 0.10),
    },
}

#: Multipliers of the four step probabilities by session platform (ios, android, web).
PLATFORM_STEP_MULT: dict[str, tuple[float, ...]] = {
    "ios": (1.00, 1.05, 1.00, 1.00),
    "android": (1.00, 1.00, 0.97, 0.97),
    "web": (0.95, 0.90, 0.95, 0.97),
}
#: Share of sessions on the user's own device (else one of the other two platforms).
OWN_DEVICE_SHARE = 0.85
#: Probability that a checkout is a "cart return": it happens hours to days after the
#: add_to_cart, in a new session (visit -> [product_view] -> checkout -> purchase), with a
#: log-normal delay (median CART_RETURN_MEDIAN_H, sigma CART_RETURN_SIGMA).
CART_RETURN_P = 0.75
CART_RETURN_MEDIAN_H = 20.0
CART_RETURN_SIGMA = 1.2
#: A cart-return session views the product again before the checkout with this probability.
RETURN_VIEW_P = 0.35

# --- browsing inside a session ----------------------------------------------------------
#: Product views per browsing session: round(LogNormal(ln VIEWS_MEDIAN, VIEWS_SIGMA)),
#: clipped to 1..VIEWS_MAX (Taobao UserBehavior: median 3, mean 5.7).
VIEWS_MEDIAN = 3.0
VIEWS_SIGMA = 1.1
VIEWS_MAX = 150
#: Seconds between two product views: VIEW_GAP_S[0] + Exp(VIEW_GAP_S[1]).
VIEW_GAP_S: tuple[float, float] = (3.0, 35.0)
#: One view of the session is its focus product (the one carted/bought); the others are
#: products of the same category, or of another one with this probability.
OTHER_CATEGORY_VIEW_P = 0.2
#: A listing/search-result page (``listing_view``, 1 s before) precedes a product view.
LISTING_P = 0.3

#: Hour-of-day profiles of traffic (share of a day's sessions per hour, UTC).
HOUR_WEEKDAY: tuple[float, ...] = (
    0.8, 0.5, 0.3, 0.2, 0.2, 0.4, 1.2, 2.6, 3.6, 3.4, 3.2, 3.6,
    4.6, 4.4, 3.6, 3.4, 3.6, 4.2, 5.4, 6.4, 6.8, 6.0, 4.0, 2.0,
)  # fmt: skip
HOUR_WEEKEND: tuple[float, ...] = (
    1.4, 1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.0, 2.0, 3.4, 4.6, 5.2,
    5.4, 5.2, 5.0, 4.8, 4.8, 5.0, 5.4, 5.8, 6.0, 5.4, 4.0, 2.6,
)  # fmt: skip

#: CRM messages: base open probability and click-given-open by channel.
OPEN_P: dict[str, float] = {"push": 0.10, "email": 0.22, "sms": 0.14, "in-app": 0.32}
CLICK_P: dict[str, float] = {"push": 0.30, "email": 0.14, "sms": 0.18, "in-app": 0.24}
OPEN_DELAY_MEDIAN_MIN: dict[str, float] = {"push": 8.0, "email": 90.0, "sms": 15.0, "in-app": 3.0}
#: The planted best send hour (UTC) of each channel: the open probability is multiplied by
#: ``OPEN_HOUR_BASE + OPEN_HOUR_AMPLITUDE * exp(-d**2 / (2 * OPEN_HOUR_SIGMA**2))``, where
#: ``d`` is the distance in hours (on the 24-hour circle) between the send hour and the
#: channel's peak hour: x1.60 at the peak, x1.46 one hour away, x1.18 two, x0.99 three,
#: x0.92 four (sends are 06-23 UTC, so every peak is inside the send hours).
OPEN_PEAK_HOUR: dict[str, int] = {"push": 20, "email": 9, "sms": 12, "in-app": 17}
OPEN_HOUR_BASE = 0.9
OPEN_HOUR_AMPLITUDE = 0.7
OPEN_HOUR_SIGMA = 1.5


def _hour_curve(peak: int) -> tuple[float, ...]:
    d = np.minimum(np.abs(np.arange(24) - peak), 24 - np.abs(np.arange(24) - peak))
    m = OPEN_HOUR_BASE + OPEN_HOUR_AMPLITUDE * np.exp(-(d**2) / (2 * OPEN_HOUR_SIGMA**2))
    return tuple(float(round(v, 4)) for v in m)


#: Open-probability multiplier by channel and hour of day (UTC) of the send.
OPEN_HOUR_MULT: dict[str, tuple[float, ...]] = {
    ch: _hour_curve(h) for ch, h in OPEN_PEAK_HOUR.items()
}
CAMPAIGN_CHANNEL_P: tuple[float, ...] = (0.40, 0.35, 0.10, 0.15)
SEND_HOURS: tuple[int, int] = (6, 23)  # sends spread uniformly over [6, 23) UTC

DEFAULT_TYPE_SHARES: tuple[tuple[str, float], ...] = (
    ("loyalists", 0.12),
    ("sports_fans", 0.15),
    ("bargain_hunters", 0.18),
    ("at_risk", 0.10),
    ("churned", 0.15),
    ("casual", 0.30),
)


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the synthetic world (all recorded in ``ground_truth["config"]``).

    Days are offsets from ``start`` (day 0 = ``start``); windows are ``[start_day,
    start_day + days)``. Defaults give ~100k users and a few million events.
    """

    n_users: int = 100_000
    seed: int = 42
    start: str = "2025-01-01"
    days: int = 180
    dirt: bool = False
    type_shares: tuple[tuple[str, float], ...] = DEFAULT_TYPE_SHARES
    #: share of users signed up before ``start`` (the rest sign up during the period)
    prior_signup_share: float = 0.6
    #: multiplies every session rate (scale events per user)
    activity_scale: float = 1.0
    #: per-user activity multiplier ~ Gamma(activity_shape, 1 / activity_shape) (mean 1):
    #: heavy and light users within a type (the NBD part of Pareto/NBD)
    activity_shape: float = 1.0
    #: per-user buying propensity = activity ** propensity_power / its mean: multiplies the
    #: add_to_cart probability of every session of the user, so most visitors rarely buy
    #: and the few heavy visitors buy again and again
    propensity_power: float = 5.0
    #: shopping journeys: an organic occasion starts a journey of Geometric sessions (mean
    #: journey_sessions_mean) that revisit the same focus product; the gaps between them are
    #: LogNormal(ln journey_gap_median_days, journey_gap_sigma) in "ordinary weekday" units
    #: of the traffic profile (so later sessions keep the hour-of-day and weekly pattern)
    journey_sessions_mean: float = 2.2
    journey_gap_median_days: float = 0.3
    journey_gap_sigma: float = 1.3
    #: add_to_cart multiplier of the first session of a journey of several sessions and of
    #: its later sessions (people compare first and buy on a later visit)
    journey_first_intent: float = 0.6
    journey_later_intent: float = 1.3
    #: new users start a journey at signup with this probability
    signup_journey_p: float = 0.6
    #: CRM nudge: delay from the send to the nudged journey ~ Exp(nudge_delay_days)
    #: truncated to nudge_window_days; its sessions cart with x nudge_intent
    nudge_delay_days: float = 2.5
    nudge_window_days: int = 14
    nudge_intent: float = 6.0
    nudge_dormant_mult: float = 0.25
    # seasonality
    weekend_lift: float = 1.3
    promo_start_day: int = 60
    promo_days: int = 7
    promo_traffic_lift: float = 1.8
    promo_cart_lift: float = 1.25
    # churn / at-risk behaviour
    churn_after_days: tuple[float, float] = (10.0, 90.0)
    churn_quiet_days: int = 21
    at_risk_decline_days: int = 42
    at_risk_floor: float = 0.15
    # the planted platform drop-off
    dropoff_platform: str = "android"
    dropoff_start_day: int = 100
    dropoff_days: int = 14
    dropoff_factor: float = 0.6
    # CRM campaigns
    campaign_every_days: int = 6
    campaign_audience: tuple[float, float] = (0.10, 0.35)
    #: fatigue: the open probability of a regular campaign's message (and so its click
    #: probability) is multiplied by exp(-fatigue_decay x k), k = the user's messages sent
    #: in the fatigue_window_days before it (all campaigns except the triggered cart coupon
    #: e-mail, see ground_truth["campaigns"]["fatigue"]); the nudge is not fatigued
    fatigue_window_days: int = 7
    fatigue_decay: float = 0.4
    #: a regular campaign sent as a series: series_sends messages one day apart (one per
    #: day at a random send hour) to a random series_share of the users signed up before
    #: series_day, so that sends pile up and fatigue shows
    series_day: int = 85
    series_sends: int = 5
    series_share: float = 0.25
    series_channel: str = "push"
    # experiment 4: promo_email_holdout, a campaign with a randomised no-message holdout
    holdout_day: int = 95
    holdout_share: float = 0.5
    holdout_control_share: float = 0.2
    holdout_p: float = 0.005
    holdout_window_days: int = 3
    holdout_channel: str = "email"
    # lookalike seed
    seed_type: str = "loyalists"
    seed_fraction: float = 0.10
    # experiment 1: cart_abandoner_coupon
    coupon_eligible_start_day: int = 30
    coupon_eligible_days: int = 90
    coupon_holdout_share: float = 0.2
    coupon_p_holdout: float = 0.08
    coupon_p_treatment: float = 0.14
    coupon_window_days: int = 14
    coupon_discount: float = 0.20
    # experiment 2: message_test_3arm
    msg3_day: int = 125
    msg3_share: float = 0.30
    msg3_p: tuple[float, float, float] = (0.04, 0.055, 0.07)
    msg3_revenue_mult: tuple[float, float, float] = (1.0, 1.0, 1.2)
    msg3_window_days: int = 7
    # experiment 3: checkout_redesign (planted sample-ratio mismatch)
    srm_start_day: int = 20
    srm_days: int = 90
    srm_share: float = 1.0
    srm_drop_fraction: float = 0.0769
    # dirt (dirt=True)
    dirt_duplicate_event_rate: float = 0.005
    dirt_null_user_rate: float = 0.001
    dirt_late_event_rate: float = 1e-5
    dirt_duplicate_order_rate: float = 0.005
    dirt_negative_quantity_rate: float = 0.002
    #: users per generation chunk (output depends on it; memory scales with it)
    chunk_size: int = 250_000

    def __post_init__(self) -> None:
        names = [t for t, _ in self.type_shares]
        if sorted(names) != sorted(TYPES):
            raise ValueError(f"type_shares must name each of {TYPES} once; got {names}")
        shares = np.array([s for _, s in self.type_shares], dtype=float)
        if (shares < 0).any() or abs(shares.sum() - 1.0) > 1e-9:
            raise ValueError(f"type_shares must be >= 0 and sum to 1; got {shares.sum():.6f}")
        if self.n_users < 1 or self.days < 28 or self.chunk_size < 1:
            raise ValueError("need n_users >= 1, days >= 28 and chunk_size >= 1")
        if self.n_users * ID_STRIDE >= 2**62:
            raise ValueError("n_users too large for the id scheme")
        if self.dropoff_platform not in PLATFORMS:
            raise ValueError(f"dropoff_platform must be one of {PLATFORMS}")
        if self.seed_type not in TYPES:
            raise ValueError(f"seed_type must be one of {TYPES}")
        for name, first, length in (
            ("dropoff", self.dropoff_start_day, self.dropoff_days),
            ("promo", self.promo_start_day, self.promo_days),
            ("srm", self.srm_start_day, self.srm_days),
            ("coupon eligibility", self.coupon_eligible_start_day, self.coupon_eligible_days),
        ):
            if first < 0 or length < 1 or first + length > self.days:
                raise ValueError(
                    f"the {name} window must lie inside the period of {self.days} days"
                )
        if self.coupon_eligible_start_day + self.coupon_eligible_days + self.coupon_window_days > (
            self.days
        ):
            raise ValueError("coupon eligibility + conversion window must end inside the period")
        for name, ch in (("series", self.series_channel), ("holdout", self.holdout_channel)):
            if ch not in MESSAGE_CHANNELS:
                raise ValueError(f"{name}_channel must be one of {MESSAGE_CHANNELS}")
        if (
            self.series_sends < 1
            or self.series_day < 0
            or (self.series_day + self.series_sends > self.days)
        ):
            raise ValueError("the message series must be sent inside the period")
        if self.holdout_day < 0 or self.holdout_day + self.holdout_window_days + 1 > self.days:
            raise ValueError("promo_email_holdout and its window must end inside the period")
        if self.fatigue_window_days < 1 or self.fatigue_decay < 0:
            raise ValueError("need fatigue_window_days >= 1 and fatigue_decay >= 0")
        if self.msg3_day + self.msg3_window_days + 1 > self.days:
            raise ValueError("message_test_3arm and its window must end inside the period")
        pd.Timestamp(self.start)  # raises on a bad date

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, tz="UTC")

    @property
    def end_ts(self) -> pd.Timestamp:
        return self.start_ts + pd.Timedelta(days=self.days)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

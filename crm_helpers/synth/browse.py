"""Sessions, the browsing funnel and their event rows (vectorised, one chunk at a time).

A session (``Sessions``) has a start, platform, channel and a *focus product* (category,
rank): the product it may cart and buy. :func:`simulate_funnel` walks it through
``visit -> product_view (x K) -> add_to_cart -> checkout -> purchase``:

* K product views, K = round(LogNormal(ln VIEWS_MEDIAN, VIEWS_SIGMA)) clipped to
  1..VIEWS_MAX, ``VIEW_GAP_S`` apart; one of them (at a uniform position) is the focus
  product, the others are products of the same category (of another one with
  ``OTHER_CATEGORY_VIEW_P``); a ``listing_view`` precedes a view with ``LISTING_P``;
* add_to_cart of the focus product right after its view, with the type's ``funnel[1]``
  x platform multiplier x promo lift x the session's ``intent``;
* checkout after the last view (seconds to minutes), or, with ``CART_RETURN_P``, in a new
  "cart return" session hours to days later (visit, maybe a view again, checkout,
  purchase) -- so many purchases have no add_to_cart (or view) in their own session;
* purchase after checkout with ``funnel[3]`` (x the planted drop-off factor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crm_helpers.synth import config as C
from crm_helpers.synth.grid import (
    CH,
    EV,
    NAT,
    PL,
    US_H,
    US_S,
    Globals,
    _choice_rows,
    _order_user_time,
    _power_rank,
)


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
    category: np.ndarray  # focus product
    rank: np.ndarray
    source: np.ndarray
    forced: np.ndarray
    coupon: np.ndarray  # coupon code override (-1: habitual coupon behaviour)
    discount: np.ndarray
    rev_mult: np.ndarray
    intent: np.ndarray  # add_to_cart probability multiplier

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
        intent: np.ndarray | float = 1.0,
    ) -> Sessions:
        n = len(uidx)
        if category is None:
            category = _choice_rows(rng, gl.cat_p[ctype[uidx]])
        if rank is None:
            rank = _power_rank(rng, n)
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
            intent=np.broadcast_to(np.asarray(intent, dtype=float), (n,)).copy(),
        )


@dataclass
class Funnel:
    """Step times per session (NAT where the step is not reached or falls after the end),
    plus the flat product views of all sessions (``v_*``, ``v_sess`` = session row)."""

    t_visit: np.ndarray
    t_view: np.ndarray  # first product view
    t_cart: np.ndarray
    t_checkout: np.ndarray
    t_purchase: np.ndarray
    cart_return: np.ndarray  # checkout+purchase happen in a new session hours/days later
    return_view: np.ndarray  # the cart-return session views the product again
    dropoff: np.ndarray  # checkout fell in the planted drop-off window on its platform
    n_views: np.ndarray
    v_sess: np.ndarray
    v_ts: np.ndarray
    v_cat: np.ndarray
    v_rank: np.ndarray
    v_listing: np.ndarray  # a listing_view 1 s before this view

    @staticmethod
    def concat(parts: list[Funnel]) -> Funnel:
        offsets = np.cumsum([0] + [len(p.t_visit) for p in parts])[:-1]
        out = {}
        for f in Funnel.__dataclass_fields__:
            arrs = [getattr(p, f) for p in parts]
            if f == "v_sess":
                arrs = [a + o for a, o in zip(arrs, offsets, strict=True)]
            out[f] = np.concatenate(arrs)
        return Funnel(**out)


def _views_per_session(rng: np.random.Generator, n: int) -> np.ndarray:
    k = np.rint(rng.lognormal(np.log(C.VIEWS_MEDIAN), C.VIEWS_SIGMA, size=n))
    return np.clip(k, 1, C.VIEWS_MAX).astype(np.int64)


def simulate_funnel(
    rng: np.random.Generator,
    gl: Globals,
    s: Sessions,
    ctype: np.ndarray,
    stop_us: np.ndarray | None = None,
) -> Funnel:
    """Walk every session down visit -> product views -> add_to_cart -> checkout -> purchase.

    Step probabilities are the type's ``funnel`` times the platform multipliers, the promo
    lift and the session's ``intent`` on add_to_cart, and the planted drop-off factor on
    checkout -> purchase for the drop-off platform when the checkout falls in the window.
    Forced sessions (planted experiment conversions) pass every step (and do not return
    later). Steps after the period end (or a churned user's ``stop_us``) never happen.
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

    # product views: K per viewing session, one of them the focus product
    k = np.where(ok_view, _views_per_session(rng, n), 0)
    first = np.cumsum(k) - k
    v_sess = np.repeat(np.arange(n), k)
    pos = np.arange(len(v_sess)) - first[v_sess]
    gap = ((C.VIEW_GAP_S[0] + rng.exponential(C.VIEW_GAP_S[1], size=len(v_sess))) * US_S).astype(
        np.int64
    )
    gap[pos == 0] = 0
    cs = np.cumsum(gap)
    v_ts = t_view[v_sess] + cs - cs[first[v_sess]]
    focus_pos = np.floor(rng.random(n) * k).astype(np.int64)
    is_focus = pos == focus_pos[v_sess]
    other_cat = rng.random(len(v_sess)) < C.OTHER_CATEGORY_VIEW_P
    v_cat = np.where(
        is_focus,
        s.category[v_sess],
        np.where(
            other_cat, rng.integers(0, len(C.CATEGORIES), size=len(v_sess)), s.category[v_sess]
        ),
    )
    v_rank = np.where(is_focus, s.rank[v_sess], _power_rank(rng, len(v_sess)))
    v_listing = rng.random(len(v_sess)) < C.LISTING_P
    t_focus = np.full(n, NAT)
    t_focus[v_sess[is_focus]] = v_ts[is_focus]
    t_last = np.full(n, NAT)
    has = k > 0
    t_last[has] = v_ts[first[has] + k[has] - 1]

    promo_lo, promo_hi = (
        gl.day_us(cfg.promo_start_day),
        gl.day_us(cfg.promo_start_day + cfg.promo_days),
    )
    in_promo = (t_view >= promo_lo) & (t_view < promo_hi)
    p_cart = np.minimum(p[:, 1] * np.where(in_promo, cfg.promo_cart_lift, 1.0) * s.intent, 0.99)
    ok_cart = ok_view & (forced | (u[:, 1] < p_cart))
    t_cart = t_focus + 5 * US_S + (rng.exponential(30.0, size=n) * US_S).astype(np.int64)
    ok_chk = ok_cart & (forced | (u[:, 2] < np.minimum(p[:, 2], 0.99)))
    ret = ok_chk & ~forced & (u[:, 3] < C.CART_RETURN_P)
    ret_gap = rng.lognormal(np.log(C.CART_RETURN_MEDIAN_H), C.CART_RETURN_SIGMA, size=n) * US_H
    quick_gap = (10.0 + rng.exponential(60.0, size=n)) * US_S
    t_chk = np.where(
        ret,
        t_cart + (US_H + ret_gap).astype(np.int64),
        np.maximum(t_last, t_cart) + quick_gap.astype(np.int64),
    )
    return_view = ret & (rng.random(n) < C.RETURN_VIEW_P)
    drop_lo = gl.day_us(cfg.dropoff_start_day)
    drop_hi = gl.day_us(cfg.dropoff_start_day + cfg.dropoff_days)
    dropoff = (s.platform == PL[cfg.dropoff_platform]) & (t_chk >= drop_lo) & (t_chk < drop_hi)
    p_pur = np.minimum(p[:, 3] * np.where(dropoff, cfg.dropoff_factor, 1.0), 0.99)
    ok_pur = ok_chk & (forced | (u[:, 4] < p_pur))
    t_pur = t_chk + 5 * US_S + (rng.exponential(40.0, size=n) * US_S).astype(np.int64)

    end = gl.end_us if stop_us is None else np.minimum(stop_us[s.uidx], gl.end_us)
    end = np.broadcast_to(end, (n,))

    def keep(ok, t):
        return np.where(ok & (t < end), t, NAT)

    t_visit_k = keep(np.ones(n, dtype=bool), t_visit)
    t_view_k = keep(ok_view & (t_visit_k != NAT), t_view)
    t_cart_k = keep(ok_cart & (t_view_k != NAT), t_cart)
    t_chk_k = keep(ok_chk & (t_cart_k != NAT), t_chk)
    t_pur_k = keep(ok_pur & (t_chk_k != NAT), t_pur)
    vk = (v_ts < end[v_sess]) & (t_view_k[v_sess] != NAT)
    return Funnel(
        t_visit=t_visit_k,
        t_view=t_view_k,
        t_cart=t_cart_k,
        t_checkout=t_chk_k,
        t_purchase=t_pur_k,
        cart_return=ret & (t_chk_k != NAT),
        return_view=return_view & (t_chk_k != NAT),
        dropoff=dropoff,
        n_views=np.bincount(v_sess[vk], minlength=n),
        v_sess=v_sess[vk],
        v_ts=v_ts[vk],
        v_cat=v_cat[vk],
        v_rank=v_rank[vk],
        v_listing=v_listing[vk],
    )


#: dtype of each event column: small codes stay narrow through the sort and the one gather
#: (``uidx`` and ``key`` are int32 while they fit, see :func:`_event_dtypes`).
EVENT_DTYPES = {
    "uidx": np.int32,
    "key": np.int32,
    "event": np.int8,
    "ts": np.int64,
    "category": np.int8,
    "product": np.int32,
    "platform": np.int8,
    "channel": np.int8,
}


def _event_dtypes(n_users: int, n_sessions: int) -> dict[str, type]:
    """:data:`EVENT_DTYPES`, widened to int64 for row indices that do not fit int32."""
    big = max(n_users, n_sessions) >= np.iinfo(np.int32).max
    return {k: np.int64 if big and k in ("uidx", "key") else v for k, v in EVENT_DTYPES.items()}


def _materialise_events(rng, gl, S: Sessions, F: Funnel, ctype, po_u, po_t, po_plat):
    """Event rows of all sessions (plus out-of-session push_open) as column arrays.

    Returns the columns sorted by (user row, ts) -- ties in the order the rows were built
    -- with the dtypes of :func:`_event_dtypes` (``event``, ``category``, ``platform``,
    ``channel`` int8 codes, -1 = missing; ``product`` int32; ``ts`` int64 microseconds).
    """
    n = len(S)
    app = S.platform != PL["web"]
    ret = np.flatnonzero(F.cart_return)
    # return sessions get keys n .. n + len(ret) - 1; they start 30 s before the checkout
    ret_key = np.full(n, -1, dtype=np.int64)
    ret_key[ret] = n + np.arange(len(ret))
    ret_t0 = F.t_checkout[ret] - 30 * US_S
    sess_start = np.concatenate([S.t0, ret_t0])
    sess_user = np.concatenate([S.uidx, S.uidx[ret]])
    idx = np.arange(n)
    key_late = np.where(F.cart_return, ret_key, idx)  # session of checkout/purchase
    n_rows = max(int(S.uidx.max(initial=0)), int(np.max(po_u, initial=0))) + 1
    dt = _event_dtypes(n_rows, len(sess_start))
    # session-level columns narrowed once, so the row gathers below copy narrow values
    s_uidx = S.uidx.astype(dt["uidx"])
    s_cat = S.category.astype(np.int8)
    s_prod = ((S.category + 1) * 1000 + S.rank).astype(np.int32)
    s_plat = S.platform.astype(np.int8)
    s_chan = S.channel.astype(np.int8)

    parts = []

    def add(rows, key, event, ts, with_cat, with_prod, channel=None):
        parts.append(
            {
                "uidx": s_uidx[rows],
                "key": key,
                "event": np.full(len(rows), EV[event], dtype=np.int8),
                "ts": ts,
                "category": s_cat[rows] if with_cat else np.full(len(rows), -1, dtype=np.int8),
                "product": s_prod[rows] if with_prod else np.full(len(rows), -1, dtype=np.int32),
                "platform": s_plat[rows],
                "channel": s_chan[rows] if channel is None else np.full(len(rows), channel, dtype=np.int8),
            }
        )  # fmt: skip

    a = np.flatnonzero(app)
    add(a, a, "app_open", S.t0[a], False, False)
    v = np.flatnonzero(F.t_visit != NAT)
    add(v, v, "visit", F.t_visit[v], False, False)
    # product views (flat) and the listing pages before some of them
    vs = F.v_sess
    for name, sel, dt_s in (
        ("product_view", None, 0),
        ("listing_view", F.v_listing, US_S),
    ):
        r = vs if sel is None else vs[sel]
        v_cat = F.v_cat if sel is None else F.v_cat[sel]
        parts.append(
            {
                "uidx": s_uidx[r],
                "key": r,
                "event": np.full(len(r), EV[name], dtype=np.int8),
                "ts": (F.v_ts if sel is None else F.v_ts[sel]) - dt_s,
                "category": v_cat.astype(np.int8),
                "product": ((v_cat + 1) * 1000 + F.v_rank).astype(np.int32)
                if name == "product_view"
                else np.full(len(r), -1, dtype=np.int32),
                "platform": s_plat[r],
                "channel": s_chan[r],
            }
        )
    r = np.flatnonzero(F.t_cart != NAT)
    add(r, r, "add_to_cart", F.t_cart[r], True, True)
    ra = ret[app[ret]]
    add(ra, ret_key[ra], "app_open", F.t_checkout[ra] - 30 * US_S, False, False, CH["direct"])
    add(ret, ret_key[ret], "visit", F.t_checkout[ret] - 28 * US_S, False, False, CH["direct"])
    rv = np.flatnonzero(F.return_view)
    add(rv, ret_key[rv], "product_view", F.t_checkout[rv] - 15 * US_S, True, True, CH["direct"])
    for name, t in (("checkout", F.t_checkout), ("purchase", F.t_purchase)):
        r = np.flatnonzero(t != NAT)
        ch = np.where(F.cart_return[r], np.int8(CH["direct"]), s_chan[r])
        add(r, key_late[r], name, t[r], True, True)
        parts[-1]["channel"] = ch
    purchases = np.flatnonzero(F.t_purchase != NAT)

    # engagement events inside the (first) session
    n_eng = np.where(S.forced | (F.t_visit == NAT), 0, rng.poisson(gl.engage[ctype[S.uidx]]))
    er = np.repeat(idx, n_eng)
    t_last_view = np.full(n, NAT)
    np.maximum.at(t_last_view, F.v_sess, F.v_ts)
    last = np.maximum.reduce(
        [F.t_visit, t_last_view, F.t_cart, np.where(F.cart_return, NAT, F.t_checkout),
         np.where(F.cart_return, NAT, F.t_purchase)]
    )  # fmt: skip
    span = last[er] - F.t_visit[er] + 120 * US_S
    et = F.t_visit[er] + 1 + (rng.random(len(er)) * span).astype(np.int64)
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
            "key": np.full(len(po_u), -1, dtype=np.int8),
            "event": np.full(len(po_u), EV["push_open"], dtype=np.int8),
            "ts": po_t,
            "category": np.full(len(po_u), -1, dtype=np.int8),
            "product": np.full(len(po_u), -1, dtype=np.int32),
            "platform": po_plat,
            "channel": np.full(len(po_u), CH["push"], dtype=np.int8),
        }
    )
    uidx = np.concatenate([p["uidx"] for p in parts], dtype=dt["uidx"], casting="unsafe")
    ts = np.concatenate([p["ts"] for p in parts], dtype=np.int64)
    o = _order_user_time(gl, uidx, ts)
    ev = {"uidx": uidx[o], "ts": ts[o]}
    del uidx, ts
    for k in ("key", "event", "category", "product", "platform", "channel"):
        ev[k] = np.concatenate([p[k] for p in parts], dtype=dt[k], casting="unsafe")[o]
    return {k: ev[k] for k in EVENT_DTYPES}, sess_start, sess_user, purchases, eng_n

"""Chunk tables (pandas), the additive counters behind ground_truth.json, and planted dirt."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from crm_helpers.synth import config as C
from crm_helpers.synth.grid import (
    EXPERIMENTS,
    NAT,
    ORGANIC_SOURCES,
    SOURCES,
    US_D,
    VARIANTS,
    Globals,
)


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


# --------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------
_STR = pd.StringDtype("pyarrow", na_value=np.nan)


def _strings(codes: np.ndarray, vocab: tuple[str, ...]) -> pd.Series:
    """Codes -> pandas string Series (``str`` dtype); negative code -> missing.

    One Arrow ``take`` from the vocabulary, straight into the ``large_string`` that backs
    pandas' ``str`` dtype (no dictionary cast, no second cast in pandas).
    """
    codes = np.asarray(codes)
    idx = pa.array(codes, mask=codes < 0) if codes.dtype.kind == "i" else pa.array(codes)
    arr = pa.array(list(vocab), pa.large_string()).take(idx)
    return pd.Series(arr.to_pandas(types_mapper={pa.large_string(): _STR}.get), dtype="str")


def _variant_strings(a_exp: np.ndarray, a_var: np.ndarray) -> pd.Series:
    vocab = [v for e in EXPERIMENTS for v in VARIANTS[e]]
    offset = np.cumsum([0] + [len(VARIANTS[e]) for e in EXPERIMENTS])[:-1]
    return _strings(offset[a_exp] + a_var, tuple(vocab))


def _ts(us: np.ndarray) -> pd.Series:
    """int64 microseconds (NAT -> NaT) -> tz-aware UTC timestamps with microsecond unit."""
    return pd.Series(np.asarray(us, dtype=np.int64).view("datetime64[us]")).dt.tz_localize("UTC")


def _nullable_int(values: np.ndarray, missing: np.ndarray) -> pd.Series:
    return pd.Series(pd.arrays.IntegerArray(values.astype(np.int64), missing.copy()))


def _events_table(user_id: np.ndarray, ev: dict, ev_sid: np.ndarray) -> pd.DataFrame:
    """The events table of a chunk from its sorted event columns (no random draws, so it can
    be built on another thread while the chunk's other tables are)."""
    return pd.DataFrame(
        {
            "user_id": user_id[ev["uidx"]],
            "event": _strings(ev["event"], C.EVENTS),
            "ts": _ts(ev["ts"]),
            "session_id": _nullable_int(ev_sid, ev_sid < 0),
            "category": _strings(ev["category"], C.CATEGORIES),
            "product_id": _nullable_int(ev["product"], ev["product"] < 0),
            "platform": _strings(ev["platform"], C.PLATFORMS),
            "channel": _strings(ev["channel"], C.SESSION_CHANNELS),
        },
        copy=False,
    )


def _build_tables(
    gl, user_id, signup_us, country, gender, age, acq, device, is_seed,
    oc, am, a_exp, a_u, a_var, a_at, a_logged,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """The users, orders, messages and assignments tables of a chunk."""
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
        ev["platform"].astype(np.int64) * len(C.EVENTS) + ev["event"],
        minlength=nP * len(C.EVENTS),
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
    windows = (
        np.array(
            [cfg.coupon_window_days, cfg.msg3_window_days, cfg.srm_days, cfg.holdout_window_days]
        )
        * US_D
    )
    n_e, max_v = len(EXPERIMENTS), 3
    cell = a_exp * max_v + a_var

    def per_arm(rows, weights=None):
        return np.bincount(
            cell[rows], weights=None if weights is None else weights[rows], minlength=n_e * max_v
        ).reshape(n_e, max_v)

    out["exp_intended"] = per_arm(slice(None))
    out["exp_logged"] = per_arm(a_logged)
    out["exp_planted_response"] = per_arm(a_resp)
    conv, conv_organic, conv_other, rev = _window_outcomes(oc, a_u, a_at, a_at + windows[a_exp])
    out["exp_converted"] = per_arm(conv & a_logged)
    out["exp_converted_organic"] = per_arm(conv_organic & a_logged)
    out["exp_converted_not_holdout_response"] = per_arm(conv_other & a_logged)
    out["exp_revenue"] = per_arm(a_logged, rev)
    out["n_users"] = len(ctype)
    out["n_events"] = len(ev["uidx"])
    out["n_sessions"] = len(S) + int(F.cart_return.sum())
    return out


def _window_outcomes(oc: dict, a_u, a_from, a_to):
    """Per assignment: any order in (from, to], any organic/message-click order, any order
    not from a ``holdout_response`` session, revenue."""
    o = pd.DataFrame(
        {
            "uidx": oc["uidx"],
            "ts": oc["ts"],
            "rev": oc["revenue"],
            "organic": np.isin(oc["source"], ORGANIC_SOURCES),
            "other": oc["source"] != SOURCES.index("holdout_response"),
        }
    )
    a = pd.DataFrame({"uidx": a_u, "lo": a_from, "hi": a_to, "row": np.arange(len(a_u))})
    j = a.merge(o, on="uidx", how="inner")
    j = j[(j["ts"] > j["lo"]) & (j["ts"] <= j["hi"])]
    conv = np.zeros(len(a_u), dtype=bool)
    conv[j["row"].to_numpy()] = True
    conv_org = np.zeros(len(a_u), dtype=bool)
    conv_org[j.loc[j["organic"], "row"].to_numpy()] = True
    conv_other = np.zeros(len(a_u), dtype=bool)
    conv_other[j.loc[j["other"], "row"].to_numpy()] = True
    rev = np.bincount(j["row"].to_numpy(), weights=j["rev"].to_numpy(), minlength=len(a_u))
    return conv, conv_org, conv_other, rev


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

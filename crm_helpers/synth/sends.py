"""Who is sent which CRM message when, and how tired of messages a recipient is.

* :func:`regular_sends`: the recipients and send times of the regular campaigns of
  ``Globals.campaigns`` (one send per recipient; the series campaign ``sends`` times, one
  day apart, each at its own uniform send hour in ``SEND_HOURS``).
* :func:`fatigue_count`: for each message, the number of messages the same user was sent
  in the ``window`` before it, ``[sent - window, sent)`` (the message itself and messages
  sent at the very same microsecond are not counted).
* :func:`fatigue_multiplier`: the planted fatigue curve ``exp(-decay x k)``.
* :func:`holdout_sends`: the audience of ``promo_email_holdout``, randomised into a
  treatment arm (sent the e-mail) and a holdout (no message), with the planned send time
  that is every member's ``assigned_at``.

Times are int64 microseconds since the epoch, as everywhere in the generator.
"""

from __future__ import annotations

import numpy as np

from crm_helpers.synth import config as C
from crm_helpers.synth.grid import US_D, US_H, Globals


def regular_sends(
    rng: np.random.Generator, gl: Globals, signup_us: np.ndarray
) -> dict[str, np.ndarray]:
    """Messages of the regular campaigns for the users of a chunk.

    Each campaign draws its audience from the users signed up before its first send day
    (``audience_share`` of them, independently per campaign); a recipient of a campaign
    with ``sends`` > 1 gets one message a day for ``sends`` days.

    Returns
    -------
    dict
        ``uidx`` (user index in the chunk), ``campaign_id``, ``channel`` (code),
        ``sent`` (µs) and ``position`` (0-based index of the send within the campaign).
    """
    n = len(signup_us)
    parts = []
    camp = gl.campaigns
    for cid, day, ch, share, sends in zip(
        camp["campaign_id"],
        camp["day"],
        camp["channel_code"],
        camp["audience_share"],
        camp["sends"],
        strict=True,
    ):
        day_start = gl.day_us(int(day))
        sel = np.flatnonzero((signup_us < day_start) & (rng.random(n) < share))
        k = len(sel)
        for j in range(int(sends)):
            hours = rng.uniform(*C.SEND_HOURS, size=k)
            sent = day_start + j * US_D + (hours * US_H).astype(np.int64)
            parts.append((sel, np.full(k, cid), np.full(k, ch), sent, np.full(k, j)))
    cols = ("uidx", "campaign_id", "channel", "sent", "position")
    return {
        name: np.concatenate([p[i] for p in parts]).astype(np.int64) for i, name in enumerate(cols)
    }


def fatigue_count(
    uidx: np.ndarray,
    sent: np.ndarray,
    all_uidx: np.ndarray,
    all_sent: np.ndarray,
    window_us: int,
) -> np.ndarray:
    """Messages of the same user sent in ``[sent - window_us, sent)``, per message.

    Parameters
    ----------
    uidx, sent
        The messages to count for (user index, send time in µs).
    all_uidx, all_sent
        Every message that counts (it may include the messages of ``uidx``/``sent``).
    window_us
        Length of the look-back window in µs.

    Returns
    -------
    numpy.ndarray
        int64 counts, one per message of ``uidx``.
    """
    if len(uidx) == 0 or len(all_uidx) == 0:
        return np.zeros(len(uidx), dtype=np.int64)
    lo = min(int(sent.min()) - window_us, int(all_sent.min()))
    bits = (max(int(sent.max()), int(all_sent.max())) - lo + 1).bit_length()
    u_bits = max(int(all_uidx.max()), int(uidx.max()), 1).bit_length()
    if bits + u_bits > 62:
        raise OverflowError("too many users or too long a period for the fatigue key")
    key_all = np.sort((all_uidx.astype(np.int64) << bits) + (all_sent - lo))
    key = (uidx.astype(np.int64) << bits) + (sent - lo)
    before = np.searchsorted(key_all, key, side="left")
    first = np.searchsorted(key_all, key - window_us, side="left")
    return (before - first).astype(np.int64)


def fatigue_multiplier(k: np.ndarray | int, decay: float) -> np.ndarray:
    """The planted fatigue curve: response probability x ``exp(-decay x k)``."""
    return np.exp(-decay * np.asarray(k, dtype=float))


def holdout_sends(
    rng: np.random.Generator, gl: Globals, signup_us: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The audience of ``promo_email_holdout`` and its randomisation.

    The audience is a random ``holdout_share`` of the users signed up before the send day
    (blind to churn, like every audience); each member is in the holdout with
    ``holdout_control_share``, otherwise in the treatment arm. Every member has a planned
    send time uniform in ``SEND_HOURS`` of the day; the treatment arm is sent the message
    then.

    Returns
    -------
    tuple of numpy.ndarray
        ``(uidx, treated, at)``: user index, treatment flag and planned send time (µs).
    """
    cfg = gl.cfg
    day_start = gl.day_us(cfg.holdout_day)
    n = len(signup_us)
    uidx = np.flatnonzero((signup_us < day_start) & (rng.random(n) < cfg.holdout_share))
    treated = rng.random(len(uidx)) >= cfg.holdout_control_share
    at = day_start + (rng.uniform(*C.SEND_HOURS, size=len(uidx)) * US_H).astype(np.int64)
    return uidx, treated, at


#: Counts k of previous messages at and above this are pooled in the counters.
FATIGUE_MAX_COUNT = 8


def send_counters(
    gl: Globals,
    ch: np.ndarray,
    hour: np.ndarray,
    k: np.ndarray,
    position: np.ndarray,
    campaign_id: np.ndarray,
    p_open: np.ndarray,
    opened: np.ndarray,
    clicked: np.ndarray,
) -> dict[str, np.ndarray]:
    """Additive counters of the regular messages for ``ground_truth["campaigns"]``.

    ``fatigue_*``: (channel, min(k, FATIGUE_MAX_COUNT)) sent / opened / clicked and the sum
    of the planted open probabilities; ``hour_*``: (channel, send hour) sent / opened /
    clicked; ``series_*``: the series campaign's sent / opened / clicked by position.
    """
    nm, kk = len(C.MESSAGE_CHANNELS), FATIGUE_MAX_COUNT + 1
    cell = ch * kk + np.minimum(k, FATIGUE_MAX_COUNT)
    hcell = ch * 24 + hour
    series = campaign_id == gl.campaigns["campaign_id"].iloc[-1]
    out = {}
    for name, mask in (("sent", np.ones(len(ch), bool)), ("opened", opened), ("clicked", clicked)):
        out[f"fatigue_{name}"] = np.bincount(cell[mask], minlength=nm * kk).reshape(nm, kk)
        out[f"hour_{name}"] = np.bincount(hcell[mask], minlength=nm * 24).reshape(nm, 24)
        out[f"series_{name}"] = np.bincount(position[series & mask], minlength=gl.cfg.series_sends)
    out["fatigue_p_open"] = np.bincount(cell, weights=p_open, minlength=nm * kk).reshape(nm, kk)
    return out

"""Campaign audiences in the engine: users who stopped responding, and each user's best hour.

Semantics
---------
*Fatigued* (:func:`fatigued_users`): users with at least ``min_messages`` messages sent in
the last ``days`` days of the log (``[end - days, end]``, ``end`` = the last ``sent_at``)
and no response to any of them (no open, machine opens included, and no click; the
responses the log records). Columns ``user_id, messages, last_sent_at``.

*Best hour* (:func:`best_hours`): per user with at least ``min_responses`` responses (human
opens, else clicks), the send hour (wall time in ``timezone``) of the most responses (ties:
the earliest hour). Columns ``user_id, best_hour, responses``.

Both are lazy Ibis tables: :func:`crm_helpers.audiences.export_audience` writes them
(atomically, never under the data directory).
"""

from __future__ import annotations

from datetime import timedelta

import ibis
import ibis.expr.types as ir

from crm_helpers.campaigns.core import message_facts, responses_of

__all__ = ["best_hours", "fatigued_users"]


def fatigued_users(messages: ir.Table, min_messages: int = 5, days: float = 30.0) -> ir.Table:
    """Users with ``min_messages`` or more messages in the last ``days`` and no response.

    Raises ``ValueError`` when the log records no response at all.
    """
    resp = responses_of(messages)
    if not (resp.opens or resp.clicks):
        raise ValueError("the message log records no opens and no clicks: no one can be fatigued")
    end = messages.sent_at.max().to_pyarrow().as_py()
    if end is None:
        return messages.select("user_id").limit(0)
    since = end - timedelta(days=days)
    f = message_facts(messages)
    f = f.filter(f.sent_at >= since)
    responded = ibis.literal(0, "int64")
    for c in ("opened", "clicked"):
        responded = responded + f[c].fill_null(0)
    g = f.group_by("user_id").aggregate(
        messages=f.count(), responses=responded.sum(), last_sent_at=f.sent_at.max()
    )
    return g.filter((g.messages >= min_messages) & (g.responses == 0)).select(
        "user_id", "messages", "last_sent_at"
    )


def best_hours(messages: ir.Table, timezone: str = "UTC", min_responses: int = 3) -> ir.Table:
    """Each user's send hour with the most responses (module docstring)."""
    f = message_facts(messages, timezone=timezone)
    resp = responses_of(messages)
    col = "human_opened" if resp.opens else "clicked"
    if not (resp.opens or resp.clicks):
        raise ValueError("the message log records no opens and no clicks: no best hour")
    r = f.filter(f[col] == 1)
    per = r.group_by(["user_id", "hour"]).aggregate(k=r.count())
    tot = per.group_by("user_id").aggregate(responses=per.k.sum())
    w = ibis.window(group_by="user_id", order_by=[ibis.desc(per.k), per.hour])
    top = per.mutate(_rk=ibis.row_number().over(w)).filter(lambda t: t._rk == 0)
    out = top.join(tot, "user_id").filter(lambda t: t.responses >= min_responses)
    return out.select("user_id", best_hour=out.hour, responses=out.responses)

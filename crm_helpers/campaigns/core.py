"""The campaign engine: per-message facts (responses, last-touch conversions) in the engine.

Everything message-level is one Ibis expression that runs unchanged on DuckDB and Spark;
only aggregates (one row per campaign, channel, send hour or frequency band) come back as
pandas. :mod:`crm_helpers.campaigns.reference` is the plain-pandas brute force of the same
rules, for the tests.

Semantics
---------
Input: ``messages`` with ``message_id, user_id, campaign_id, channel, sent_at`` (naive UTC,
``message_id`` unique) and whatever responses the log has; ``conversions`` with
``user_id, ts`` and optionally ``revenue`` (:func:`conversions_of`: the orders, or the rows
of one event). Times are compared at microsecond resolution (epoch microseconds).

*Responses.* A message is *opened* when ``opened_at`` is not null (only when the log has an
``opened_at`` column; otherwise opens are unknown). An open at most
``machine_open_seconds`` after the send is a *machine open* (privacy-protecting mail clients
fetch every message on delivery): it counts in ``machine_opened`` and not in
``human_opened``; send-time tables use human opens only. A message is *clicked* when
``clicked_at`` is not null, or, for a log without ``clicked_at``, when its click flag
(the first of :data:`CLICK_FLAGS` present: true, non-zero or ``"true"/"yes"/"1"``) is set.
Clicks are counted whether or not an open was logged (blocked pixels).

*Last-touch attribution.* A conversion of user ``u`` at ``ts`` is credited to exactly one
message: among ``u``'s messages with ``sent_at < ts <= sent_at + attribution_days``, the one
sent last (ties on ``sent_at``: the largest ``message_id``). Conversions with no such
message are not credited. Per message: ``conversions`` = conversions credited to it,
``converted`` = 1 if at least one, ``revenue`` = their summed revenue (0 when none; null
revenue counts 0).

*Frequency.* ``prior_messages`` of a message = the user's messages with ``sent_at`` in
``[sent_at - fatigue_window_days, sent_at)`` (the message itself and simultaneous ones
excluded).

*Send time.* ``hour`` (0-23) and ``weekday`` (0 = Monday) of ``sent_at`` as wall time in
``timezone`` (the engines' own time-zone builtins; UTC: no conversion).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd

from crm_helpers import events as _ev
from crm_helpers.engine import _utc_to_wall, is_utc, temp_view
from crm_helpers.engine import epoch_us as _epoch_us
from crm_helpers.exact import exact_sum

__all__ = [
    "CLICK_FLAGS",
    "MESSAGE_KEYS",
    "Conversions",
    "Responses",
    "conversions_of",
    "counts_tables",
    "frequency_counts",
    "hour_counts",
    "message_facts",
    "resolve_optout",
    "responses_of",
    "scorecard_counts",
    "weekly_counts",
    "with_optouts",
    "with_position",
    "with_segment",
]

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
#: Columns of an impression log's click flag, in order of preference.
CLICK_FLAGS: tuple[str, ...] = ("clicked", "click", "is_clicked", "has_click", "clicks")
#: Columns every message log has (the contract's required ones).
MESSAGE_KEYS: tuple[str, ...] = ("message_id", "user_id", "campaign_id", "channel", "sent_at")
#: Summed per group by the ``*_counts`` functions.
COUNT_COLUMNS: tuple[str, ...] = (
    "sent",
    "opened",
    "machine_opened",
    "human_opened",
    "clicked",
    "clicked_opened",
    "converted",
    "conversions",
    "revenue",
    "opted_out",
)
_TRUE_TEXT = ("true", "t", "yes", "y", "1")


@dataclass(frozen=True)
class Responses:
    """Which responses a message log records.

    Attributes
    ----------
    opens
        The log has ``opened_at``.
    clicks
        The log has ``clicked_at`` or a click flag.
    click_flag
        The click-flag column used when there is no ``clicked_at`` (else None).
    """

    opens: bool
    clicks: bool
    click_flag: str | None = None


def responses_of(messages: ir.Table) -> Responses:
    """What ``messages`` records: opens, clicks (timestamps or a flag)."""
    cols = set(messages.columns)
    flag = None
    if "clicked_at" not in cols:
        flag = next((c for c in CLICK_FLAGS if c in cols), None)
    return Responses(
        opens="opened_at" in cols, clicks="clicked_at" in cols or flag is not None, click_flag=flag
    )


@dataclass(frozen=True)
class Conversions:
    """What counts as a conversion: a table (``user_id, ts, revenue``) and how it was chosen.

    ``source`` is ``"orders"``, ``"event"`` or ``"none"`` (no table: conversions unknown);
    ``event`` the event name for ``"event"``; ``how`` says, for a report, what was done.
    """

    table: ir.Table | None
    source: str
    event: str | None = None
    how: str = ""

    @property
    def has_revenue(self) -> bool:
        return self.table is not None and self.source == "orders"


def conversions_of(data: Any, conversion_event: str = "") -> Conversions:
    """The conversions of a data set (``CRMData``).

    ``conversion_event`` given: the events of that name (resolved with
    :func:`crm_helpers.events.resolve_event`, e.g. ``purchase`` -> ``buy``; a ``ValueError``
    naming the closest events when absent). Else the orders table when present (revenue
    from it), else the purchase event (:func:`crm_helpers.events.stage_event`), else none.
    """
    if conversion_event:
        if not data.has("events", "user_id", "event", "ts"):
            raise ValueError(
                f"conversion_event={conversion_event!r} needs an events table, which the data lack"
            )
        ev = data.events
        known = _ev.known_events(ev)
        name, how = _ev.resolve_event(conversion_event, known)
        if name is None:
            ranked = _ev.closest_first(conversion_event, known, limit=8)
            raise ValueError(
                f"conversion_event {conversion_event!r} does not occur in the events; "
                f"the closest: {ranked}"
            )
        t = ev.filter(ev.event == name).select("user_id", "ts", revenue=ibis.null("float64"))
        return Conversions(t, "event", name, how or f"the {name!r} event")
    if data.has("orders", "user_id", "ts"):
        o = data.orders
        rev = o.revenue.cast("float64") if "revenue" in o.columns else ibis.null("float64")
        return Conversions(o.select("user_id", "ts", revenue=rev), "orders", None, "orders")
    if data.has("events", "user_id", "event", "ts"):
        ev = data.events
        name = _ev.stage_event("purchase", _ev.known_events(ev))
        if name is not None:
            t = ev.filter(ev.event == name).select("user_id", "ts", revenue=ibis.null("float64"))
            return Conversions(t, "event", name, f"the purchase event {name!r} (no orders table)")
    return Conversions(None, "none", None, "no orders table and no purchase event")


def resolve_optout(data: Any, optout_event: str) -> tuple[str, str]:
    """The events' name of a user-given opt-out event (``unsubscribe``) and how it was found
    (:func:`crm_helpers.events.resolve_event`); ``ValueError`` naming the closest events
    when absent or when the data have no events table."""
    if not data.has("events", "user_id", "event", "ts"):
        raise ValueError(
            f"optout_event={optout_event!r} needs an events table, which the data lack"
        )
    known = _ev.known_events(data.events)
    name, how = _ev.resolve_event(optout_event, known)
    if name is None:
        ranked = _ev.closest_first(optout_event, known, limit=8)
        raise ValueError(
            f"optout_event {optout_event!r} does not occur in the events; the closest: {ranked}"
        )
    return name, how


def _flag(t: ir.Table, col: str) -> ir.BooleanValue:
    c = t[col]
    typ = c.type()
    if typ.is_boolean():
        return c.fill_null(False)
    if typ.is_numeric():
        return (c != 0).fill_null(False)
    return c.cast("string").lower().strip().isin(list(_TRUE_TEXT)).fill_null(False)


def _i(b: ir.BooleanValue) -> ir.IntegerValue:
    return b.ifelse(1, 0).cast("int64")


def message_facts(
    messages: ir.Table,
    conversions: ir.Table | None = None,
    *,
    attribution_days: float = 3.0,
    machine_open_seconds: float = 5.0,
    timezone: str = "UTC",
    fatigue_window_days: float | None = None,
    keep: tuple[str, ...] = (),
) -> ir.Table:
    """One row per message with its responses and last-touch conversions (module docstring).

    Parameters
    ----------
    messages
        The message log (Ibis table).
    conversions
        ``user_id, ts[, revenue]`` (Ibis table on the same backend), or None: then
        ``converted``, ``conversions`` and ``revenue`` are null.
    attribution_days
        Conversions up to this long after a send are credited to it (last touch).
    machine_open_seconds
        Opens at most this long after the send are machine opens.
    timezone
        IANA zone of ``hour`` and ``weekday``.
    fatigue_window_days
        When given, adds ``prior_messages`` (messages in the window before the send).
    keep
        Extra message columns to carry (e.g. a segment).

    Returns
    -------
    ibis.Table
        ``message_id, user_id, campaign_id, channel, sent_at, hour, weekday`` and the 0/1
        columns ``sent, opened, machine_opened, human_opened, clicked, clicked_opened``
        (null when the log lacks the response), ``converted, conversions, revenue``
        [, ``prior_messages``] plus ``keep``.
    """
    if not math.isfinite(attribution_days) or attribution_days < 0:
        raise ValueError(f"attribution_days must be a finite number >= 0, got {attribution_days!r}")
    missing = [c for c in MESSAGE_KEYS if c not in messages.columns]
    if missing:
        raise ValueError(f"messages needs the columns {list(MESSAGE_KEYS)}; missing {missing}")
    backend = _ev.backend_name(messages)
    resp = responses_of(messages)
    m = messages
    st = _epoch_us(m.sent_at, backend)
    null_i = ibis.null("int64")
    if resp.opens:
        ot = _epoch_us(m.opened_at, backend)
        opened = m.opened_at.notnull()
        machine = opened & ((ot - st) <= int(machine_open_seconds * US_PER_SECOND))
        opened_i, machine_i, human_i = _i(opened), _i(machine), _i(opened & ~machine)
    else:
        opened = None
        opened_i = machine_i = human_i = null_i
    if "clicked_at" in m.columns:
        clicked = m.clicked_at.notnull()
    elif resp.click_flag is not None:
        clicked = _flag(m, resp.click_flag)
    else:
        clicked = None
    clicked_i = _i(clicked) if clicked is not None else null_i
    co_i = _i(clicked & opened) if clicked is not None and opened is not None else null_i
    wall = m.sent_at if is_utc(timezone) else _utc_to_wall(m.sent_at, timezone, backend)
    base = m.select(
        *MESSAGE_KEYS,
        *keep,
        _st=st,
        hour=wall.hour().cast("int64"),
        weekday=wall.day_of_week.index().cast("int64"),
        sent=ibis.literal(1, "int64"),
        opened=opened_i,
        machine_opened=machine_i,
        human_opened=human_i,
        clicked=clicked_i,
        clicked_opened=co_i,
    )
    if fatigue_window_days is not None:
        w_us = int(fatigue_window_days * US_PER_DAY)
        win = ibis.window(group_by="user_id", order_by="_st", range=(-w_us, -1))
        base = base.mutate(prior_messages=base.sent.sum().over(win).fill_null(0).cast("int64"))
    if conversions is None:
        return base.mutate(converted=null_i, conversions=null_i, revenue=ibis.null("float64")).drop(
            "_st"
        )
    # the join reads the log's own three columns, not ``base``: a table used twice would be
    # a CTE that DuckDB materialises (every message's 12 columns in memory before the join)
    sends = m.select("message_id", "user_id", _st=st)
    credited = _last_touch(sends, conversions, attribution_days, backend)
    out = base.left_join(credited, base.message_id == credited.message_id).drop("message_id_right")
    return out.mutate(
        conversions=out._n.fill_null(0).cast("int64"),
        converted=_i(out._n.fill_null(0) > 0),
        revenue=out._rev.fill_null(0.0).cast("float64"),
    ).drop("_n", "_rev", "_st")


def _last_touch(
    sends: ir.Table, conversions: ir.Table, attribution_days: float, backend: str | None
) -> ir.Table:
    """Per credited message: ``message_id, _n`` (conversions) and ``_rev`` (their revenue);
    ``sends``: ``message_id, user_id, _st`` (the send in epoch microseconds)."""
    rev = (
        conversions.revenue.cast("float64")
        if "revenue" in conversions.columns
        else ibis.null("float64")
    )
    c = conversions.select(uid=conversions.user_id, _ct=_epoch_us(conversions.ts, backend), _r=rev)
    c = c.mutate(_cid=ibis.row_number().over(group_by=c.uid, order_by=c._ct))
    m = sends
    a_us = int(round(attribution_days * US_PER_DAY))
    j = c.join(m, [c.uid == m.user_id, m._st < c._ct, c._ct <= m._st + a_us])
    rank = ibis.row_number().over(
        group_by=[j.uid, j._cid], order_by=[ibis.desc(j._st), ibis.desc(j.message_id)]
    )
    picked = j.mutate(_rk=rank).filter(lambda t: t._rk == 0)
    return picked.group_by("message_id").aggregate(_n=picked.count(), _rev=exact_sum(picked._r))


def with_optouts(
    facts: ir.Table, optouts: ir.Table, days: float, backend: str | None = None
) -> ir.Table:
    """``facts`` with ``opted_out`` (0/1): the recipient has an ``optouts`` row (``user_id,
    ts``, e.g. the events of an ``unsubscribe`` event) in ``(sent_at, sent_at + days]``."""
    backend = backend or _ev.backend_name(facts)
    w = int(round(days * US_PER_DAY))
    o = optouts.select(_u=optouts.user_id, _ot=_epoch_us(optouts.ts, backend))
    f = facts.select("message_id", "user_id", _t=_epoch_us(facts.sent_at, backend))
    j = f.join(o, [f.user_id == o._u, o._ot > f._t, o._ot <= f._t + w])
    hit = j.select(_mid=j.message_id).distinct()
    out = facts.left_join(hit, facts.message_id == hit._mid)
    return out.mutate(opted_out=_i(out._mid.notnull())).drop("_mid")


def with_position(facts: ir.Table) -> ir.Table:
    """``facts`` with ``position``: 1 for a user's first message of its campaign, 2 for the
    second, ... (by ``sent_at``, ties by ``message_id``)."""
    w = ibis.window(group_by=["user_id", "campaign_id"], order_by=["sent_at", "message_id"])
    return facts.mutate(position=(ibis.row_number().over(w) + 1).cast("int64"))


def with_segment(
    facts: ir.Table, segments: ir.Table, column: str = "segment", missing: str = "no purchase"
) -> ir.Table:
    """``facts`` with the recipient's ``column`` from ``segments`` (``user_id, <column>``,
    e.g. :func:`crm_helpers.segments.core.rfm_table`); recipients absent from it get
    ``missing``."""
    seg = segments.select(_u=segments.user_id, _seg=segments[column].cast("string"))
    j = facts.left_join(seg, facts.user_id == seg._u)
    return j.mutate(**{column: j._seg.fill_null(missing)}).drop("_u", "_seg")


def _aggs(facts: ir.Table, rolled: bool = False) -> dict[str, ir.Scalar]:
    """The sums of :data:`COUNT_COLUMNS` over ``facts`` (``rolled``: over per-group sums,
    whose ``sent`` is summed and whose ``revenue`` is already an exact decimal sum)."""
    aggs = {
        c: exact_sum(facts[c]) if c == "revenue" else facts[c].sum()
        for c in COUNT_COLUMNS
        if c in facts.columns
    }
    aggs["sent"] = facts.sent.sum() if rolled else facts.count()
    return aggs


def _sums(facts: ir.Table, by: list[str], rolled: bool = False) -> pd.DataFrame:
    df = facts.group_by(by).aggregate(**_aggs(facts, rolled)).to_pandas()
    for c in COUNT_COLUMNS:
        if c == "revenue" or c not in df.columns:
            continue
        df[c] = pd.array(df[c], dtype="Int64") if df[c].isna().any() else df[c].astype("int64")
    df["revenue"] = df["revenue"].astype("float64")
    return df.sort_values(by, kind="stable").reset_index(drop=True)


def counts_tables(facts: ir.Table, groupings: Sequence[Sequence[str]]) -> list[pd.DataFrame]:
    """Several ``*_counts`` tables of the same ``facts`` from one pass over them.

    The result equals ``[_sums(facts, g) for g in groupings]`` (e.g. :func:`scorecard_counts`
    and :func:`hour_counts`) exactly, revenue included (``revenue`` is summed per group as an
    exact decimal, and a sum of exact decimal sums is the exact decimal sum), while the facts
    (their join and window) are computed once instead of once per table.

    On DuckDB the facts are aggregated once with ``GROUP BY GROUPING SETS`` (one set per
    grouping, ``GROUPING(key)`` telling the sets apart) into a small temporary table, and
    each table is read from it. Elsewhere (Spark) the facts are grouped
    once by the union of the groupings' columns and each table summed from that. Grouping
    sets keep one small hash table per grouping: at 10M messages grouping by the union
    (campaign x channel x weekday x hour, 134k groups) cost ~1.4 CPU s more than the two
    sets (benchmarks/README.md, "Campaign performance").
    """
    sets = list(dict.fromkeys(tuple(g) for g in groupings))
    keys = list(dict.fromkeys(c for g in sets for c in g))
    con = facts._find_backend(use_default=True)
    # names of this call's own (a notebook may run two on one connection)
    view, table = (f"{n}_{uuid.uuid4().hex[:12]}" for n in (_GSETS_VIEW, _GSETS_TABLE))
    if con.name == "duckdb":
        fine = _grouping_sets(con, facts, sets, keys, view, table)
    else:
        aggs = _aggs(facts)
        if "revenue" in aggs:  # kept as the exact decimal sum (exact_sum without its cast)
            aggs["revenue"] = facts.revenue.cast(dt.Decimal(38, 6)).sum()
        fine = facts.group_by(keys).aggregate(**aggs).cache()
    try:
        out = []
        for g in groupings:
            part = fine
            if con.name == "duckdb":  # this grouping set's rows: its keys grouped, no other
                flags = [fine[f"_g_{k}"] == (0 if k in g else 1) for k in keys]
                part = fine.filter(*flags).drop(*[f"_g_{k}" for k in keys])
            out.append(_sums(part, list(g), rolled=True))
        return out
    finally:
        if con.name == "duckdb":
            con.drop_table(table, force=True)
            con.drop_view(view, force=True)
        else:
            fine.release()


#: Prefixes of the temporary view and table of one :func:`counts_tables` call (a random
#: suffix per call).
_GSETS_VIEW = "_crm_campaign_facts"
_GSETS_TABLE = "_crm_campaign_sets"


def _grouping_sets(
    con: Any,
    facts: ir.Table,
    sets: list[tuple[str, ...]],
    keys: list[str],
    view: str = _GSETS_VIEW,
    table: str = _GSETS_TABLE,
) -> ir.Table:
    """``facts`` aggregated by ``GROUP BY GROUPING SETS (sets)`` into a temporary DuckDB
    table: ``keys`` (null where not grouped), ``_g_<key>`` (1 where not grouped), the summed
    counts and ``revenue`` as an exact decimal sum (``DECIMAL(38, 6)``, like
    :func:`crm_helpers.exact.exact_sum` before its cast)."""

    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    # a temporary view (nothing written into a file-backed database); in-memory tables
    # (ibis.memtable) must be known to the connection before the view can name them
    con._register_in_memory_tables(facts)
    temp_view(con, view, facts)
    cols = [*(q(k) for k in keys), *(f"GROUPING({q(k)}) AS {q('_g_' + k)}" for k in keys)]
    for c in COUNT_COLUMNS:
        if c == "sent":
            cols.append(f"COUNT(*) AS {q(c)}")
        elif c == "revenue" and c in facts.columns:
            cols.append(f"SUM(CAST({q(c)} AS DECIMAL(38, 6))) AS {q(c)}")
        elif c in facts.columns:
            cols.append(f"SUM({q(c)}) AS {q(c)}")
    grouping = ", ".join("(" + ", ".join(q(k) for k in s) + ")" for s in sets)
    con.raw_sql(
        f"CREATE OR REPLACE TEMP TABLE {q(table)} AS SELECT {', '.join(cols)} "
        f"FROM {q(view)} GROUP BY GROUPING SETS ({grouping})"
    )
    # keys with the facts' types (DuckDB may hold a window sum as HUGEINT that Ibis types int64)
    return con.table(table).cast({k: facts[k].type() for k in keys})


def scorecard_counts(
    facts: ir.Table, by: tuple[str, ...] = ("campaign_id", "channel")
) -> pd.DataFrame:
    """Summed counts of :func:`message_facts` per ``by`` (one row per group, sorted).

    Columns: ``by`` and ``sent, opened, machine_opened, human_opened, clicked,
    clicked_opened, converted, conversions`` (integers; null where the log lacks the
    response) and ``revenue``.
    """
    return _sums(facts, list(by))


def hour_counts(facts: ir.Table, by: tuple[str, ...] = ("channel",)) -> pd.DataFrame:
    """Counts per ``by`` x ``weekday`` x ``hour`` of the send (wall time, see the docstring)."""
    return _sums(facts, [*by, "weekday", "hour"])


def frequency_counts(facts: ir.Table, by: tuple[str, ...] = ("channel",)) -> pd.DataFrame:
    """Counts per ``by`` x ``prior_messages`` (facts made with ``fatigue_window_days``)."""
    if "prior_messages" not in facts.columns:
        raise ValueError("facts lack prior_messages: build them with fatigue_window_days")
    return _sums(facts, [*by, "prior_messages"])


def weekly_counts(facts: ir.Table, by: tuple[str, ...] = ("channel",)) -> pd.DataFrame:
    """Counts per ``by`` x ``week`` (Monday 00:00 UTC of the send's ISO week)."""
    wk = facts.sent_at.truncate("W")
    return _sums(facts.mutate(week=wk), [*by, "week"])

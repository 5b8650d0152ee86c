"""Shared event preparation: matching events with property filters, time bounds, checks.

Funnels (:mod:`crm_helpers.funnels`) and journeys (:mod:`crm_helpers.journeys`) select
events the same way; this module is the one place that does it.

Semantics
---------
*Matching.* A matcher is an event name plus optional property filters ``where``:
``{"category": "sports"}`` (equality), ``{"category": ["a", "b"]}`` (membership) or
``{"coupon": None}`` (the property is empty). A row matches when its ``event`` equals the
name and every filter holds; a filter on an empty (null) property value is false unless
the filter asks for ``None``.

*Time.* Timestamps are naive UTC. :func:`to_timestamp` turns a parameter (``datetime``,
ISO string or ``None``) into a naive-UTC ``pandas.Timestamp`` (aware values are converted
to UTC). :func:`ts_us` gives its integer epoch microseconds, the clock on which the engines
compare times (:func:`crm_helpers.engine.epoch_us`). :func:`ts_bounds` keeps rows with
``start <= ts <= end + slack`` (``end`` exclusive when ``slack`` is 0).

*Vocabulary.* :data:`EVENT_STAGES` names the stages of a shopping journey (visit, product
view, add to cart, checkout, purchase) and the event names each accepts, in order of
preference; it is the one alias table of every report (funnel steps, the experiment's
conversion, the lookalike's seed rule, the journey's goal). :func:`stage_event` finds a
stage's event among the names the data have (exact name first, then ignoring case, in
the stage's order); :func:`resolve_event` maps a name a user gave (``purchase``) to the name
the data use (``buy``): the name itself when present, else the same name ignoring case,
else the first present alias of a stage the name belongs to. The purchase stage also takes the
won deal of a sales pipeline (``won``, ``closed_won``, ``deal_won``): the conversion of a
lead funnel.

*Other stages.* :data:`OTHER_STAGES` names stages outside the shopping journey, in the same
shape; :func:`stage_of`, :func:`stage_event` and :func:`resolve_event` know them, but the
funnel's default steps and the AARRR mapping (which read :data:`EVENT_STAGES` only) do not.
``unsubscribe`` is the opt-out from marketing messages: ``unsubscribe``, ``unsubscribed``,
``opt_out``, ``optout``, ``opted_out``, ``opt-out``, ``email_unsubscribe``,
``email_unsubscribed``, ``unsub``, ``list_unsubscribe``, ``sms_opt_out``,
``push_opt_out`` (first found wins). Deliberately left out: spam complaints
(``spam_complaint``, ``spamreport``: a complaint, not a request to stop; mail providers
suppress such users but the report would count them as opt-outs), ``stop`` (an SMS keyword
too generic as an event name), ``bounce``/``hard_bounce`` (delivery failures) and
disabling notifications in the app (``push_disabled``: a device setting, not a message
response). Name such an event explicitly (``optout_event``) to use it.

:data:`EXPOSURE_EVENTS` names the events that record an exposure or assignment
itself (an impression, a send); never an outcome (:func:`is_exposure`).

*AARRR.* :data:`AARRR_STAGES` files event names under the five AARRR stages (acquisition,
activation, retention, revenue, referral), built on :data:`EVENT_STAGES`: acquisition takes
the visit stage, activation the product-view and cart stages, revenue the checkout and
purchase stages, and each AARRR stage adds names outside the shopping stages (sign-ups and
favourites are activation, logins and push opens retention, reviews and invites referral).
:func:`aarrr_stage` maps a name to its AARRR stage ignoring case (None: left unmapped).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

__all__ = [
    "AARRR_STAGES",
    "EVENT_STAGES",
    "EXPOSURE_EVENTS",
    "OTHER_STAGES",
    "aarrr_stage",
    "backend_name",
    "check_columns",
    "check_events_exist",
    "events_of",
    "in_range_us",
    "is_exposure",
    "known_events",
    "match",
    "match_row",
    "norm_where",
    "resolve_event",
    "stage_event",
    "stage_of",
    "to_timestamp",
    "ts_bounds",
    "ts_us",
    "where_text",
]


#: Stages of a shopping journey and the event names each accepts (first found wins).
EVENT_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("visit", ("visit", "session_start", "app_open", "page_view", "pageview")),
    ("view", ("product_view", "view_item", "view", "pv", "product_viewed", "detail")),
    ("cart", ("add_to_cart", "cart", "addtocart", "add_to_basket", "basket")),
    ("checkout", ("checkout", "begin_checkout", "checkout_start")),
    (
        "purchase",
        (
            "purchase",
            "buy",
            "order",
            "transaction",
            "order_completed",
            "orders",
            "conversion",
            "won",
            "closed_won",
            "deal_won",
        ),
    ),
)

#: Stages outside the shopping journey (module docstring, "Other stages"); not funnel steps.
OTHER_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "unsubscribe",
        (
            "unsubscribe",
            "unsubscribed",
            "opt_out",
            "optout",
            "opted_out",
            "opt-out",
            "email_unsubscribe",
            "email_unsubscribed",
            "unsub",
            "list_unsubscribe",
            "sms_opt_out",
            "push_opt_out",
        ),
    ),
)

#: AARRR stages in funnel order: ``(stage, EVENT_STAGES stages it takes, other event names)``.
AARRR_STAGES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("acquisition", ("visit",), ("landing", "first_visit", "install", "lead_created", "lead")),
    (
        "activation",
        ("view", "cart"),
        (
            "search",
            "listing_view",
            "signup",
            "sign_up",
            "register",
            "registration",
            "account_created",
            "wishlist_add",
            "add_to_wishlist",
            "wishlist",
            "fav",
            "favorite",
            "favourite",
        ),
    ),  # fmt: skip
    ("retention", (), ("push_open", "login", "return_visit", "email_open", "reactivated")),
    ("revenue", ("checkout", "purchase"), ("subscription", "renewal", "upgrade")),
    ("referral", (), ("review", "share", "invite", "referral", "refer")),
)


#: Events that record an exposure or an assignment itself (compared ignoring case).
EXPOSURE_EVENTS: tuple[str, ...] = (
    "exposure", "impression", "assignment", "assigned", "experiment_viewed",
    "experiment_exposure", "variant_assigned", "sent", "send", "delivered", "email_sent",
    "push_sent", "sms_sent", "message_sent", "email_delivered", "push_delivered", "ad_impression",
)  # fmt: skip


def is_exposure(name: str) -> bool:
    """Whether ``name`` records an exposure or assignment (:data:`EXPOSURE_EVENTS`).

    >>> is_exposure("Email_Sent"), is_exposure("purchase")
    (True, False)
    """
    return isinstance(name, str) and name.lower() in EXPOSURE_EVENTS


def _present(name: str, names: Iterable[str]) -> str | None:
    """``name`` itself when in ``names``, else the one name equal to it ignoring case."""
    names = list(names)
    if name in names:
        return name
    low = [n for n in names if isinstance(n, str) and n.lower() == name.lower()]
    return sorted(low)[0] if low else None


def stage_of(name: str) -> str | None:
    """The stage ``name`` is (``"purchase"``) or is an alias of (``"buy"`` -> ``"purchase"``),
    ignoring case; None for a name outside :data:`EVENT_STAGES` and :data:`OTHER_STAGES`."""
    low = name.lower()
    for stage, accepted in (*EVENT_STAGES, *OTHER_STAGES):
        if low == stage or low in accepted:
            return stage
    return None


def aarrr_stage(name: str) -> str | None:
    """The AARRR stage of an event name (:data:`AARRR_STAGES`), ignoring case; None when
    the name is in no stage.

    >>> [aarrr_stage(n) for n in ("pv", "fav", "buy", "signup", "lost")]
    ['activation', 'activation', 'revenue', 'activation', None]
    """
    low = name.lower()
    shop = stage_of(name)
    for stage, shopping, names in AARRR_STAGES:
        if shop in shopping or low in names:
            return stage
    return None


def stage_event(stage: str, names: Iterable[str]) -> str | None:
    """The event of ``stage`` (a key of :data:`EVENT_STAGES` or :data:`OTHER_STAGES`) among
    ``names``: the first accepted name present exactly, else the first present ignoring case;
    None if absent.

    >>> stage_event("purchase", ["pv", "cart", "BUY"])
    'BUY'
    >>> stage_event("unsubscribe", ["visit", "Email_Unsubscribe"])
    'Email_Unsubscribe'
    """
    accepted = dict((*EVENT_STAGES, *OTHER_STAGES))[stage]
    names = [n for n in names if isinstance(n, str)]
    hit = next((a for a in accepted if a in names), None)
    if hit is None:
        hit = next((p for a in accepted if (p := _present(a, names)) is not None), None)
    return hit


def resolve_event(name: str, names: Iterable[str]) -> tuple[str | None, str]:
    """The data's event for a user-given ``name`` and how it was found (module docstring).

    Returns ``(event, how)``: ``how`` is ``""`` when ``name`` is present as given, a phrase
    such as ``"'purchase' is named 'buy' in the data"`` when found through case or an
    alias, and ``(None, "")`` when nothing matches.

    >>> resolve_event("purchase", ["pv", "buy"])
    ('buy', "'purchase' is named 'buy' in the data")
    """
    names = [n for n in names if isinstance(n, str)]
    if name in names:
        return name, ""
    hit = _present(name, names)
    if hit is None:
        stage = stage_of(name)
        hit = stage_event(stage, names) if stage is not None else None
    if hit is None:
        return None, ""
    return hit, f"{name!r} is named {hit!r} in the data"


def norm_where(where: Mapping[str, object] | None) -> dict[str, object] | None:
    """Normalise property filters: lists/sets become tuples (sets sorted); empty -> None.

    Raises ``TypeError`` for a non-mapping and ``ValueError`` for an empty value list.
    """
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise TypeError(f"where must be a mapping column -> value(s), got {where!r}")
    out: dict[str, object] = {}
    for col, val in where.items():
        if isinstance(val, list | tuple | set | frozenset):
            vals = tuple(sorted(val, key=repr)) if isinstance(val, set | frozenset) else tuple(val)
            if not vals:
                raise ValueError(f"where[{col!r}] is an empty list: nothing could match")
            out[str(col)] = vals
        else:
            out[str(col)] = val
    return out or None


def where_text(where: Mapping[str, object] | None) -> str:
    """`` [col=value, col in [..]]`` for labels; empty without filters."""
    if not where:
        return ""
    parts = []
    for col, val in where.items():
        if isinstance(val, tuple):
            parts.append(f"{col} in {list(val)}")
        else:
            parts.append(f"{col}={val}")
    return " [" + ", ".join(parts) + "]"


def match(t: ir.Table, event: str, where: Mapping[str, object] | None) -> ir.BooleanValue:
    """Ibis boolean: the row is ``event`` and satisfies every (normalised) filter."""
    cond = t.event == event
    for col, val in (where or {}).items():
        if isinstance(val, tuple):
            c = t[col].isin(list(val))
        elif val is None:
            c = t[col].isnull()
        else:
            c = t[col] == val
        cond = cond & c.fill_null(False)
    return cond


def match_row(row: Mapping[str, Any], event: str, where: Mapping[str, object] | None) -> bool:
    """Plain-Python :func:`match` for one row (a mapping): the same semantics, for the
    brute-force references of funnels and journeys."""
    if row["event"] != event:
        return False
    for col, want in (where or {}).items():
        got = row.get(col)
        missing = got is None or (isinstance(got, float) and math.isnan(got)) or got is pd.NA
        if isinstance(want, tuple):
            if missing or got not in want:
                return False
        elif want is None:
            if not missing:
                return False
        elif missing or got != want:
            return False
    return True


def to_timestamp(x: datetime | str | None, what: str) -> pd.Timestamp | None:
    """A naive-UTC timestamp from a parameter (``None`` stays ``None``); ``what`` names it."""
    if x is None:
        return None
    ts = pd.Timestamp(x)
    if ts is pd.NaT:
        raise ValueError(f"{what} is not a valid timestamp: {x!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def ts_us(ts: pd.Timestamp) -> int:
    """Integer epoch microseconds of a naive-UTC timestamp."""
    return int((ts - pd.Timestamp(0)) // pd.Timedelta(microseconds=1))


def ts_bounds(
    t: ir.Table,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    *,
    slack_us: int | None = None,
) -> list[ir.BooleanValue]:
    """Filters keeping rows with ``ts >= start`` and ``ts < end`` (``slack_us=None``) or
    ``ts <= end + slack_us`` (a window that may run past the end of the entry range)."""
    conds = []
    if start is not None:
        conds.append(t.ts >= start.to_pydatetime())
    if end is not None:
        if slack_us is None:
            conds.append(t.ts < end.to_pydatetime())
        else:
            conds.append(t.ts <= (end + timedelta(microseconds=slack_us)).to_pydatetime())
    return conds


def in_range_us(
    t: ir.IntegerValue, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> ir.BooleanValue:
    """Ibis boolean on epoch microseconds ``t``: ``start <= t < end`` (missing bounds open)."""
    cond = ibis.literal(True)
    if start is not None:
        cond = cond & (t >= ts_us(start))
    if end is not None:
        cond = cond & (t < ts_us(end))
    return cond


def backend_name(t: ir.Table) -> str | None:
    """Name of the backend ``t`` runs on (memtables: Ibis' default backend), or None."""
    try:
        return t._find_backend(use_default=True).name
    except Exception:  # noqa: BLE001 - several backends or none: use the portable forms
        return None


def events_of(events_or_data: Any) -> ir.Table:
    """The events table of a ``CRMData`` (or an Ibis table itself); ``TypeError`` otherwise."""
    if isinstance(events_or_data, ir.Table):
        return events_or_data
    ev = getattr(events_or_data, "events", None)
    if isinstance(ev, ir.Table):
        return ev
    raise TypeError(
        "expected an Ibis events table or a CRMData (crm_helpers.load(...)), "
        f"got {type(events_or_data).__name__}"
    )


_KNOWN_EVENTS: dict[Any, frozenset[str]] = {}


def known_events(events: ir.Table) -> frozenset[str]:
    """Distinct event names (one cheap query; cached per expression)."""
    key = events.op()
    try:
        cached = _KNOWN_EVENTS.get(key)
    except TypeError:  # unhashable op: no caching
        cached = None
        key = None
    if cached is not None:
        return cached
    names = events.select("event").distinct().to_pyarrow().column(0).to_pylist()
    out = frozenset(str(n) for n in names if n is not None)
    if key is not None:
        if len(_KNOWN_EVENTS) > 64:
            _KNOWN_EVENTS.clear()
        _KNOWN_EVENTS[key] = out
    return out


def check_columns(
    events: ir.Table, matchers: Sequence[tuple[str, str, Mapping[str, object] | None]]
) -> None:
    """``ValueError`` unless ``events`` has ``user_id, event, ts`` and every filter column.

    ``matchers`` are ``(what, event, where)`` triples; ``what`` names the matcher in errors.
    """
    cols = set(events.columns)
    missing = [c for c in ("user_id", "event", "ts") if c not in cols]
    if missing:
        raise ValueError(
            f"events needs the columns user_id, event, ts; missing {missing} "
            f"(columns: {sorted(cols)})"
        )
    for what, event, where in matchers:
        for col in where or {}:
            if col not in cols:
                close = difflib.get_close_matches(col, sorted(cols), n=3)
                raise ValueError(
                    f"{what} ({event!r}) filters on column {col!r}, which events does not have"
                    + (f"; closest columns: {close}" if close else "")
                    + f" (columns: {sorted(cols)})"
                )


def check_events_exist(
    events: ir.Table, matchers: Sequence[tuple[str, str, Mapping[str, object] | None]]
) -> None:
    """``ValueError`` naming the closest known names when a matcher's event never occurs."""
    known = known_events(events)
    for what, event, _ in matchers:
        if event not in known:
            ranked = closest_first(event, known)
            more = len(known) - len(ranked)
            raise ValueError(
                f"{what}: event {event!r} does not occur in the data; the events that do, "
                f"closest first: {ranked}"
                + (f" and {more} more" if more else "")
                + f" ({len(known)} distinct events)"
            )


def closest_first(name: str, known: Iterable[str], limit: int = 25) -> list[str]:
    """``known`` names ordered by similarity to ``name`` (difflib ratio), at most ``limit``.

    Ties keep alphabetical order; the comparison ignores case.

    >>> closest_first("purchse", ["visit", "purchase", "push_open"])
    ['purchase', 'push_open', 'visit']
    """

    def score(k: str) -> float:
        return difflib.SequenceMatcher(None, name.lower(), k.lower()).ratio()

    return sorted(sorted(map(str, known)), key=score, reverse=True)[:limit]

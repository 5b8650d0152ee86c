"""Defaults of the journey report derived from the data: the session gap, the goal, the stages.

Semantics
---------
*Session gap* (:func:`choose_session_gap`). When the events have a session column, journeys
are its sessions and no gap is derived. Otherwise the rule reads the *median gap*: over
every pair of consecutive events of the same user (events with a user and a time, within
``start <= ts < end``, ordered by time; events at the same instant give a gap of 0), the
median (interpolated) of the time from one event to the next (:func:`median_gap_minutes`).
When it is at most the default gap (30 minutes), journeys are sessions cut at silences
longer than the default. When it exceeds the default, a user's events are typically
further apart than a session lasts (a sales pipeline whose steps are days apart): cutting
at 30 minutes would make most journeys single events, so the journeys are whole user
journeys (gap ``0``). The label says which case applied and the median it read.

*Goal window* (:func:`choose_goal_window`). A journey converts when it reaches the goal
within the window from its start. Sessions (a session column, or a gap above 0) keep the
7-day default, longer than a session lasts. One journey per user (gap 0) spans the
user's whole history, where 7 days would count a deal won after a month as a drop-out:
there the window is None, the goal anywhere in the journey.

*Goal* (:func:`choose_goal`). The conversion when the data have one: the purchase stage's
event of the shared vocabulary (:func:`crm_helpers.events.stage_event`, the aliases the
funnel uses: ``purchase``, ``buy``, ``order``, ... ``won``) among the journey steps. Without
one, the orders table's orders when the notebook added them to the journeys as a step
(:func:`with_orders`: no purchase event, an orders table, no session column). Otherwise the step reached by the fewest users among the steps with
at least 1% of all events (:func:`crm_helpers.journeys.narrative.default_goal`).

*Stages* (:func:`aarrr_mapping`). Each step goes to its AARRR stage of the shared
vocabulary (:func:`crm_helpers.events.aarrr_stage`, ignoring case); steps in no stage are
returned as left unmapped, for the report to name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from crm_helpers import events as ev
from crm_helpers.engine import epoch_us
from crm_helpers.journeys.core import SYNTHETIC

__all__ = [
    "DEFAULT_SESSION_GAP_MINUTES",
    "ORDER_STEP",
    "aarrr_mapping",
    "choose_goal",
    "choose_goal_window",
    "choose_session_gap",
    "duration_text",
    "median_gap_minutes",
    "with_orders",
]

#: The session gap of clickstream analytics tools (Google Analytics, Amplitude): 30 minutes.
DEFAULT_SESSION_GAP_MINUTES = 30.0
#: The step name of the orders added to the journeys by :func:`with_orders`.
ORDER_STEP = "order"
_US_PER_MINUTE = 60_000_000


def duration_text(minutes: float) -> str:
    """A duration for labels: ``"45 seconds"``, ``"12.5 minutes"``, ``"3.2 hours"``,
    ``"4.0 days"``."""
    if minutes < 1:
        return f"{minutes * 60:.0f} seconds"
    if minutes < 120:
        return f"{minutes:.1f} minutes"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} hours"
    return f"{minutes / 1440:.1f} days"


def median_gap_minutes(
    events_or_data: Any, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> float | None:
    """The median time between a user's consecutive events, in minutes (module docstring);
    None when no user has two events."""
    events = ev.events_of(events_or_data)
    t = events.filter(
        events.user_id.notnull(), events.ts.notnull(), *ev.ts_bounds(events, start, end)
    )
    rows = t.select("user_id", t=epoch_us(t.ts, ev.backend_name(events)))
    w = ibis.window(group_by="user_id", order_by="t")
    rows = rows.mutate(gap=rows.t - rows.t.lag().over(w))  # a column first (Spark)
    gaps = rows.filter(rows.gap.notnull())
    med = gaps.gap.quantile(0.5).to_pyarrow().as_py()
    return None if med is None else float(med) / _US_PER_MINUTE


def choose_session_gap(
    events_or_data: Any,
    *,
    session_column: str | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    default: float = DEFAULT_SESSION_GAP_MINUTES,
) -> tuple[float, str]:
    """The session gap in minutes (``0``: one journey per user) and how it was chosen.

    See the module docstring for the rule; ``session_column`` is the events' session column
    the report uses (None when they have none).
    """
    if session_column:
        return default, (
            f"journeys are the events' {session_column} sessions; a gap above 0 only switches "
            "them on (0: one journey per user)"
        )
    med = median_gap_minutes(events_or_data, start, end)
    if med is None:
        return default, f"the default {default:g} minutes (no user has two events)"
    if med <= default:
        return default, (
            f"the default {default:g} minutes: the median time between a user's consecutive "
            f"events is {duration_text(med)}"
        )
    return 0.0, (
        f"0, one journey per user: the median time between a user's consecutive events is "
        f"{duration_text(med)}, above the default {default:g} minutes, which would cut most "
        "journeys into single events"
    )


#: The goal window of sessions, in days.
DEFAULT_GOAL_WINDOW_DAYS = 7.0


def choose_goal_window(session_gap_minutes: float | None) -> tuple[float | None, str]:
    """The goal window in days (None: anywhere in the journey) and how it was chosen
    (module docstring), from the session gap the report uses (``0``: one journey per user;
    with a session column any gap above 0 means its sessions)."""
    if session_gap_minutes:
        return DEFAULT_GOAL_WINDOW_DAYS, (
            f"{DEFAULT_GOAL_WINDOW_DAYS:g} days from the journey's start, the default for sessions"
        )
    return None, (
        "none, the goal anywhere in the journey: a journey is a user's whole history "
        "(session gap 0)"
    )


def _stage_names(stage: str) -> str:
    accepted = dict(ev.EVENT_STAGES)[stage]
    return ", ".join(accepted)


def choose_goal(reach: pd.DataFrame, *, orders_added: bool = False) -> tuple[str, str]:
    """The goal step and how it was chosen (module docstring).

    Parameters
    ----------
    reach
        :func:`~crm_helpers.journeys.graph.node_reach` (``step, users, events, ...``).
    orders_added
        The journeys carry the orders table's orders as the step :data:`ORDER_STEP`.
    """
    from crm_helpers.journeys.narrative import default_goal

    steps = [s for s in reach["step"].astype(str) if s not in SYNTHETIC]
    if orders_added and ORDER_STEP in steps:
        return ORDER_STEP, (
            "the conversion: the orders table's orders, added to the journeys as the step "
            f"'{ORDER_STEP}' (the events have no purchase event)"
        )
    hit = ev.stage_event("purchase", steps)
    if hit is not None:
        return hit, (
            f"the conversion: the purchase event of the shared vocabulary (the first of "
            f"{_stage_names('purchase')} found)"
        )
    return default_goal(reach), (
        f"no purchase event ({_stage_names('purchase')}) among the steps and no orders "
        "added: the step reached by the fewest users among the steps with 1%+ of all events"
    )


def with_orders(data: Any, session_column: str | None = None) -> tuple[ir.Table, bool]:
    """The events, with the orders table's orders as events named :data:`ORDER_STEP` when
    the events have no purchase event and the data have orders (``user_id``, ``ts``); and
    whether orders were added. Added rows keep the events' columns, empty except
    ``user_id``, ``event`` and ``ts``. Not with a ``session_column``: an order has no
    session, so it would be a journey of its own instead of the end of one.
    """
    events = ev.events_of(data)
    has = getattr(data, "has", None)
    if session_column or has is None:
        return events, False
    if ev.stage_event("purchase", ev.known_events(events)) is not None:
        return events, False
    if not (has("orders", "user_id") and has("orders", "ts")):
        return events, False
    o = data.orders
    sch = events.schema()
    cols = {}
    for c in events.columns:
        if c == "user_id":
            cols[c] = o.user_id.cast(sch[c])
        elif c == "event":
            cols[c] = ibis.literal(ORDER_STEP).cast(sch[c])
        elif c == "ts":
            cols[c] = o.ts.cast(sch[c])
        else:
            cols[c] = ibis.null(sch[c])
    return events.union(o.select(**cols), distinct=False), True


def aarrr_mapping(steps: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``({step: AARRR stage}, [steps left unmapped])`` for the real steps given."""
    mapping: dict[str, str] = {}
    unmapped: list[str] = []
    for s in steps:
        if s in SYNTHETIC:
            continue
        stage = ev.aarrr_stage(str(s))
        if stage is None:
            unmapped.append(str(s))
        else:
            mapping[str(s)] = stage
    return mapping, sorted(unmapped)

"""Defaults of the funnel report derived from the data, for parameters left empty.

A parameter the user leaves empty (``""``, ``[]`` or ``0``) is chosen here from the data the
report runs on, in the engine (a few small aggregate queries), and the notebook records the
choice with :func:`crm_helpers.report.provenance.derive`. Every rule is deterministic: the
same data give the same choice, ties are broken by name.

Rules
-----
:func:`choose_steps`
    The **standard shopping events** when they exist: one event per stage (visit, product
    view, add to cart, checkout, purchase; :data:`SHOPPING_STAGES` lists the names each stage
    accepts, first match wins) when at least a cart-like and a purchase-like stage are found
    and at least three stages in all. Otherwise the **most common ordered chain of frequent
    events**: the ``max_steps`` events with the most users (each done by at least
    ``min_share`` of all users), ranked by how often they come first (a Copeland ranking of
    "the user's first a comes before their first b", counted over users who did both), kept
    in that order while each event has no more users than the one before it (a funnel
    narrows).
:func:`choose_breakdown`
    A column with 2..``max_groups`` distinct values of which at least two have
    ``min_group_users`` users and that is non-missing for at least half of them. Event
    properties seen on the entry (step 1) event are counted over its users (source
    ``first_touch``); user attributes over the users table (source ``user``). Event
    properties come first (they describe the journey itself), then the larger share of users
    in large-enough groups, then fewer groups, then the name. None when no column qualifies.
:func:`choose_audience_step`
    The step k (1..n-1) that loses the most units to step k + 1 (ties: the earlier step).
:func:`choose_driver_properties`
    The user attributes (text or true/false, not the key) with 2..``max_levels`` distinct
    values, in table order; ``[]`` without a users table.
:func:`choose_prior_events`
    The ``n`` events with the most users that are not steps or exclusions of the funnel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import ibis
import pandas as pd

from crm_helpers.events import EVENT_STAGES

__all__ = [
    "SHOPPING_STAGES",
    "Breakdown",
    "choose_audience_step",
    "choose_breakdown",
    "choose_driver_properties",
    "choose_prior_events",
    "choose_steps",
]

#: Stages of a shopping funnel and the event names each accepts (first found wins): the
#: shared vocabulary of every report, :data:`crm_helpers.events.EVENT_STAGES`.
SHOPPING_STAGES = EVENT_STAGES

#: Columns of ``events`` that are never breakdown properties.
_EVENT_KEYS = frozenset({"user_id", "event", "ts", "session_id"})
_USER_KEYS = frozenset({"user_id", "signup_at"})


def _groupable(t: ibis.Table, exclude: frozenset[str]) -> list[str]:
    sch = t.schema()
    return [
        c for c in t.columns if c not in exclude and (sch[c].is_string() or sch[c].is_boolean())
    ]


def _users_table(data: Any) -> ibis.Table | None:
    has = getattr(data, "has", None)
    if has is not None:
        return data.users if has("users") else None
    return getattr(data, "users", None)


# --------------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------------
def _event_users(events: ibis.Table) -> pd.DataFrame:
    """``event``, ``users`` (distinct), most users first, ties by name."""
    df = events.group_by("event").agg(users=events.user_id.nunique()).to_pandas()
    df["event"] = df["event"].astype(str)
    df["users"] = df["users"].astype("int64")
    return df.sort_values(["users", "event"], ascending=[False, True], kind="mergesort")


def choose_steps(
    data: Any, *, max_steps: int = 5, min_share: float = 0.01
) -> tuple[list[str], str]:
    """A funnel chosen from the data (see the module docstring for the rule).

    Parameters
    ----------
    data : CRMData or ibis.Table
        Loaded data (``data.events``) or an events table.
    max_steps : int, default 5
        Most steps of the chosen funnel.
    min_share : float, default 0.01
        An event must be done by at least this share of the event table's users.

    Returns
    -------
    (list of str, str)
        The event names in order and how they were chosen (for ``provenance.derive``).

    Raises
    ------
    ValueError
        Fewer than two event names qualify (no funnel can be chosen).
    """
    events = data.events if hasattr(data, "events") else data
    counts = _event_users(events)
    names = set(counts["event"])
    stages = []
    for _, accepted in SHOPPING_STAGES:
        hit = next((e for e in accepted if e in names), None)
        if hit is not None:
            stages.append(hit)
    found = {stage for stage, accepted in SHOPPING_STAGES if any(e in names for e in accepted)}
    if {"cart", "purchase"} <= found and len(stages) >= 3:
        return stages[:max_steps], "the standard shopping events found in the data"
    total = int(events.user_id.nunique().to_pyarrow().as_py() or 0)
    frequent = counts[counts["users"] >= max(1, min_share * total)].head(max_steps)
    cand = list(frequent["event"])
    if len(cand) < 2:
        example = list(counts["event"].head(2))  # real names, most users first
        raise ValueError(
            "no funnel can be chosen from the data: fewer than two event names are done by "
            f"{min_share:.0%} of users; pass steps"
            + (f", e.g. -p steps '{json.dumps(example)}'." if len(example) == 2 else ".")
        )
    # each user's first time of each candidate event, then "a before b" counted per pair
    e = events.filter(events.event.isin(cand))
    first = e.group_by(["user_id", "event"]).agg(t=e.ts.min())
    per_user = first.group_by("user_id").agg(
        **{f"t{i}": first.t.min(where=first.event == name) for i, name in enumerate(cand)}
    )
    aggs = {}
    for i in range(len(cand)):
        for j in range(len(cand)):
            if i != j:
                a, b = per_user[f"t{i}"], per_user[f"t{j}"]
                aggs[f"b_{i}_{j}"] = (a < b).ifelse(1, 0).sum()
    before = per_user.aggregate(**aggs).to_pandas().iloc[0]
    wins = {
        i: sum(
            int(before[f"b_{i}_{j}"] or 0) > int(before[f"b_{j}_{i}"] or 0)
            for j in range(len(cand))
            if j != i
        )
        for i in range(len(cand))
    }
    users = dict(zip(frequent["event"], frequent["users"], strict=True))
    order = sorted(range(len(cand)), key=lambda i: (-wins[i], -users[cand[i]], cand[i]))
    chain: list[str] = []
    for i in order:
        if not chain or users[cand[i]] <= users[chain[-1]]:
            chain.append(cand[i])
    if len(chain) < 2:
        chain = [cand[i] for i in order[:2]]
    return chain, "the most common order of the most frequent events"


# --------------------------------------------------------------------------------------------
# breakdown
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Breakdown:
    """A chosen breakdown: the column, where it comes from, and why.

    Attributes
    ----------
    property : str
        The column name.
    source : str
        ``"first_touch"`` (an event property on the entry event) or ``"user"``.
    groups : int
        Values with at least ``min_group_users`` users.
    coverage : float
        Share of the counted users in those groups.
    how : str
        One line for the report's parameters table.
    """

    property: str
    source: str
    groups: int
    coverage: float
    how: str


def _column_groups(t: ibis.Table, cols: list[str], max_groups: int) -> dict[str, pd.DataFrame]:
    """Per column with <= max_groups distinct values: ``value``, ``users`` (distinct)."""
    if not cols:
        return {}
    levels = t.aggregate(**{c: t[c].nunique() for c in cols}).to_pandas().iloc[0]
    out = {}
    for c in cols:
        if 2 <= int(levels[c] or 0) <= max_groups:
            g = t.group_by(value=t[c].cast("string")).agg(users=t.user_id.nunique())
            out[c] = g.to_pandas()
    return out


def choose_breakdown(
    data: Any,
    spec: Any,
    *,
    min_group_users: int = 200,
    max_groups: int = 8,
) -> Breakdown | None:
    """The most useful breakdown column, or None (see the module docstring for the rule).

    Parameters
    ----------
    data : CRMData
        Loaded data (``events``; ``users`` when present).
    spec : FunnelSpec
        The funnel; its first step defines the entry events.
    min_group_users : int, default 200
        Users a group needs to be tested (the breakdown's ``min_group_users``).
    max_groups : int, default 8
        Columns with more distinct values are not considered.

    Returns
    -------
    Breakdown or None
    """
    events = data.events
    entry = events.filter(spec.step_list[0].matches(events))
    found: list[tuple[tuple, Breakdown]] = []
    sources = [(0, "first_touch", entry, _groupable(events, _EVENT_KEYS))]
    users = _users_table(data)
    if users is not None:
        sources.append((1, "user", users, _groupable(users, _USER_KEYS)))
    for rank, source, table, cols in sources:
        for col, g in _column_groups(table, cols, max_groups).items():
            total = int(g["users"].sum())
            present = g[g["value"].notna()]
            big = present[present["users"] >= min_group_users]
            if len(big) < 2 or total == 0 or present["users"].sum() < 0.5 * total:
                continue
            coverage = float(big["users"].sum()) / total
            where = "the entry event's property" if source == "first_touch" else "user attribute"
            how = (
                f"{where} with {len(big)} groups of {min_group_users}+ users "
                f"({coverage:.0%} of users)"
            )
            key = (rank, -round(coverage, 2), len(present), col)
            found.append((key, Breakdown(col, source, len(big), coverage, how)))
    if not found:
        return None
    return min(found, key=lambda kv: kv[0])[1]


# --------------------------------------------------------------------------------------------
# audience, drivers
# --------------------------------------------------------------------------------------------
def choose_audience_step(table: pd.DataFrame) -> int:
    """The step that loses the most units to the next one.

    Parameters
    ----------
    table : pandas.DataFrame
        ``funnel_table`` output (``step``, ``users``), at least two steps.

    Returns
    -------
    int
        k in 1..n-1 maximising users_k - users_{k+1}; ties: the earliest.
    """
    t = table.sort_values("step").reset_index(drop=True)
    if len(t) < 2:
        raise ValueError("a funnel needs at least two steps to have a drop-off step")
    u = t["users"].astype("int64").to_numpy()
    losses = u[:-1] - u[1:]
    return int(t["step"].iloc[int(losses.argmax())])


def choose_driver_properties(data: Any, *, max_levels: int = 20) -> list[str]:
    """User attributes worth testing as conversion drivers (module docstring)."""
    users = _users_table(data)
    if users is None:
        return []
    cols = _groupable(users, _USER_KEYS)
    if not cols:
        return []
    levels = users.aggregate(**{c: users[c].nunique() for c in cols}).to_pandas().iloc[0]
    return [c for c in cols if 2 <= int(levels[c] or 0) <= max_levels]


def choose_prior_events(data: Any, spec: Any, *, n: int = 3) -> list[str]:
    """The ``n`` most widespread events that are not steps or exclusions (module docstring).

    Parameters
    ----------
    data : CRMData or ibis.Table
        Loaded data or an events table.
    spec : FunnelSpec
        The funnel whose steps and exclusions are left out.
    n : int, default 3
        How many events.

    Returns
    -------
    list of str
        Event names, most users first (ties by name).
    """
    events = data.events if hasattr(data, "events") else data
    counts = _event_users(events)
    skip = {s.event for s in spec.step_list} | {x.event for x in spec.exclusions}
    return [e for e in counts["event"] if e not in skip][:n]

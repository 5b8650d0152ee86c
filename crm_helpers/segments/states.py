"""Health states from activity rules, their month-over-month migration, retention cohorts.

Everything per user runs in the engine (Ibis); only counts per state, per transition or per
cohort cell come back as pandas.

Semantics
---------
*Activity days* (:func:`activity_days`): the distinct UTC days on which a user was active:
purchase days (orders with ``revenue >= 0``, as in :mod:`crm_helpers.segments.core`) and,
with ``events``, the days of any event.

*Rule states at a date* ``D`` (:func:`rule_states`), for users with an activity day on or
before ``D`` (later activity is ignored); ``days_since`` = ``D`` - last activity day:

- ``churned``: ``days_since > churned_after_days``;
- ``dormant-risk``: ``dormant_after_days < days_since <= churned_after_days``;
- ``super-active``: otherwise, if the user was active on at least ``super_active_min_days``
  distinct days in the window ``(D - active_window_days, D]``;
- ``active``: otherwise.

*Migration* (:func:`migration_table`): states at consecutive period ends (the last day of
each calendar month, the last period ending at ``as_of``); a user's transition is
``(state at the previous end, state at this end)``, with ``"(new)"`` as the previous state of
a user first active in the period. Counts per transition; ``share`` is the row share (of the
users in the previous state, new users of their own row).

*RFM migration* (:func:`rfm_migration_table`): the same transitions between RFM segments,
each customer's segment at a period end being :func:`~crm_helpers.segments.core.rfm_table`
at that day (scores re-ranked among that day's customers, so a customer can move because
others bought). :func:`flows_into` counts, per period, the users entering a label (e.g.
``churned``, or the ``Lost`` segment) from any other label or as new.

*Retention cohorts* (:func:`retention_table`): a user's cohort is the calendar month of their
first purchase (``by="first_purchase"``) or of ``users.signup_at`` (``by="signup"``);
``period`` k = months since the cohort month; a user is retained in period k if they have an
activity day in that month. ``share`` = retained / cohort size (the users of the cohort).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from crm_helpers.segments.analysis import STATES
from crm_helpers.segments.core import (
    DEFAULT_RULES,
    OTHER,
    _day,
    as_day,
    day_number,
    parse_rules,
    rfm_table,
)

__all__ = [
    "HealthRules",
    "activity_days",
    "flows_into",
    "migration_matrix",
    "migration_table",
    "month_ends",
    "retention_table",
    "rfm_migration_table",
    "rule_states",
    "state_counts",
]

NEW = "(new)"


@dataclass(frozen=True)
class HealthRules:
    """Thresholds of the rule states (days; see the module docstring)."""

    dormant_after_days: int = 30
    churned_after_days: int = 90
    active_window_days: int = 30
    super_active_min_days: int = 4

    def __post_init__(self) -> None:
        for name in ("dormant_after_days", "churned_after_days", "active_window_days",
                     "super_active_min_days"):  # fmt: skip
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a whole number of days >= 1, got {v!r}")
        if self.churned_after_days <= self.dormant_after_days:
            raise ValueError(
                f"churned_after_days ({self.churned_after_days}) must be greater than "
                f"dormant_after_days ({self.dormant_after_days})"
            )


def activity_days(orders: ir.Table | None, events: ir.Table | None = None) -> ir.Table:
    """Distinct ``(user_id, day)`` of purchases and, if given, events (integer day numbers)."""
    parts = []
    if orders is not None:
        o = orders.filter(orders.revenue >= 0)
        parts.append(o.select("user_id", day=_day(o)))
    if events is not None:
        parts.append(events.select("user_id", day=_day(events)))
    if not parts:
        raise ValueError("activity needs orders, events or both")
    t = parts[0] if len(parts) == 1 else parts[0].union(parts[1], distinct=False)
    return t.distinct()


def rule_states(activity: ir.Table, as_of: Any, rules: HealthRules = HealthRules()) -> ir.Table:
    """Per user active on or before ``as_of``: ``user_id, days_since, active_days, state``."""
    end = day_number(as_of)
    a = activity.filter(activity.day <= end)
    recent = a.day > end - rules.active_window_days
    per = a.group_by("user_id").agg(
        last_day=a.day.max(), active_days=recent.ifelse(1, 0).sum().cast("int64")
    )
    days_since = (end - per.last_day).cast("int64")
    state = ibis.cases(
        (days_since > rules.churned_after_days, "churned"),
        (days_since > rules.dormant_after_days, "dormant-risk"),
        (per.active_days >= rules.super_active_min_days, "super-active"),
        else_="active",
    )
    return per.select("user_id", days_since=days_since, active_days=per.active_days, state=state)


def state_counts(states: ir.Table) -> pd.DataFrame:
    """``state, users, share`` in the order of :data:`STATES` (empty states included)."""
    got = states.group_by("state").agg(users=states.user_id.count()).to_pandas()
    out = got.set_index("state").reindex(list(STATES)).fillna(0).astype("int64")
    total = out["users"].sum()
    out["share"] = out["users"] / total if total else float("nan")
    return out.reset_index()


def month_ends(start: Any, as_of: Any) -> list[pd.Timestamp]:
    """Last days of the calendar months from ``start``'s month, ending with ``as_of`` itself."""
    s, e = pd.Timestamp(as_day(start)), pd.Timestamp(as_day(as_of))
    if e < s:
        return []
    ends = list(pd.date_range(s, e, freq="ME"))
    if not ends or ends[-1] != e:
        ends.append(e)
    return ends


def _transitions(label_at, ends: list[Any], order: tuple[str, ...]) -> pd.DataFrame:
    """Counts of ``(from_state, to_state)`` between consecutive ``ends``.

    ``label_at(end)`` is an Ibis table ``user_id, label`` (one row per user labelled at
    ``end``); a user labelled at ``cur`` but not at ``prev`` comes from ``"(new)"``.
    """
    rows = []
    for prev, cur in zip(ends, ends[1:], strict=False):
        a = label_at(prev).select("user_id", from_state="label")
        b = label_at(cur).select(uid="user_id", to_state="label")
        j = b.left_join(a, b.uid == a.user_id)
        j = j.mutate(from_state=j.from_state.fill_null(NEW))
        got = j.group_by(["from_state", "to_state"]).agg(users=j.uid.count()).to_pandas()
        got.insert(0, "period_end", pd.Timestamp(as_day(cur)))
        got.insert(0, "previous_end", pd.Timestamp(as_day(prev)))
        rows.append(got)
    cols = ["previous_end", "period_end", "from_state", "to_state", "users", "share"]
    if not rows:
        return pd.DataFrame(columns=cols)
    out = pd.concat(rows, ignore_index=True)
    out["users"] = out["users"].astype("int64")
    out["share"] = out["users"] / out.groupby(["period_end", "from_state"])["users"].transform(
        "sum"
    )
    rank = {s: i for i, s in enumerate((NEW, *order))}
    out = out.sort_values(
        ["period_end", "from_state", "to_state"],
        key=lambda c: c.map(lambda v: rank.get(v, len(rank))) if c.name != "period_end" else c,
    )
    return out[cols].reset_index(drop=True)


def migration_table(
    activity: ir.Table, ends: list[Any], rules: HealthRules = HealthRules()
) -> pd.DataFrame:
    """Transitions between consecutive period ends (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        ``previous_end, period_end, from_state, to_state, users, share`` for every pair of consecutive
        ``ends`` (one engine query per pair).
    """
    return _transitions(
        lambda e: rule_states(activity, e, rules).select("user_id", label="state"), ends, STATES
    )


def rfm_migration_table(
    orders: ir.Table, ends: list[Any], rules: Any = DEFAULT_RULES
) -> pd.DataFrame:
    """Transitions of customers between RFM segments from one period end to the next.

    At each end the segments are those of :func:`~crm_helpers.segments.core.rfm_table` at
    that day (scores re-ranked among the customers of that day). Same columns as
    :func:`migration_table`; ``from_state`` / ``to_state`` hold segment names, ``"(new)"``
    for a customer whose first purchase is in the period. A customer never leaves (their
    purchases stay), so each row block sums to the customers at the period end.
    """
    rules = parse_rules(rules)
    order = (*segment_names(rules), OTHER)
    return _transitions(
        lambda e: rfm_table(orders, e, rules).select("user_id", label="segment"), ends, order
    )


def segment_names(rules: Any = DEFAULT_RULES) -> list[str]:
    """The segment names of a rule table, in rule order."""
    return [r.segment for r in parse_rules(rules)]


def migration_matrix(
    migration: pd.DataFrame, period_end: Any = None, order: Any = None
) -> pd.DataFrame:
    """The counts of one period's transitions as a from x to matrix (last period by default).

    ``order``: the labels in display order (default :data:`STATES`); every one is a column
    (empty ones included), rows are ``"(new)"`` and the labels that occur as a source.
    Labels outside ``order`` (e.g. ``"Other"``) are appended when they occur.
    """
    if migration.empty:
        return pd.DataFrame()
    order = list(STATES if order is None else order)
    pe = migration["period_end"].max() if period_end is None else pd.Timestamp(as_day(period_end))
    m = migration[migration["period_end"] == pe]
    mat = m.pivot_table(index="from_state", columns="to_state", values="users", aggfunc="sum")
    extra = [s for s in mat.columns.union(mat.index) if s not in order and s != NEW]
    labels = order + sorted(extra)
    rows = [s for s in (NEW, *labels) if s in mat.index]
    return mat.reindex(index=rows, columns=labels).fillna(0).astype("int64")


def flows_into(migration: pd.DataFrame, targets: Any) -> pd.DataFrame:
    """Per period: users moving into each of ``targets`` from another label (or new).

    Returns ``period_end`` and one column ``into_<target>`` per target (0 when none).
    """
    targets = list(targets)
    periods = sorted(migration["period_end"].unique()) if not migration.empty else []
    out = pd.DataFrame({"period_end": periods})
    for t in targets:
        m = migration[(migration["to_state"] == t) & (migration["from_state"] != t)]
        out[f"into_{t}"] = (
            out["period_end"].map(m.groupby("period_end")["users"].sum()).fillna(0).astype("int64")
        )
    return out


def churn_flows(migration: pd.DataFrame) -> pd.DataFrame:
    """Per period: users moving into ``churned`` and into ``dormant-risk`` from a healthier state."""
    if migration.empty:
        return pd.DataFrame(columns=["period_end", "into_churned", "into_dormant_risk"])
    m = migration
    into_churn = m[(m["to_state"] == "churned") & (m["from_state"] != "churned")]
    healthy = ("super-active", "active", NEW)
    into_dorm = m[(m["to_state"] == "dormant-risk") & m["from_state"].isin(healthy)]
    out = pd.DataFrame({"period_end": sorted(m["period_end"].unique())})
    out["into_churned"] = out["period_end"].map(into_churn.groupby("period_end")["users"].sum())
    out["into_dormant_risk"] = out["period_end"].map(into_dorm.groupby("period_end")["users"].sum())
    return out.fillna(0).astype({"into_churned": "int64", "into_dormant_risk": "int64"})


def _month_index(ts: ir.TimestampValue) -> ir.IntegerValue:
    return (ts.year() * 12 + ts.month() - 1).cast("int64")


def retention_table(
    orders: ir.Table,
    activity_source: ir.Table | None = None,
    *,
    users: ir.Table | None = None,
    by: str = "first_purchase",
    as_of: Any = None,
    groups: ir.Table | None = None,
) -> pd.DataFrame:
    """Retention by cohort month (see the module docstring), optionally per segment.

    Parameters
    ----------
    orders : ibis.Table
        Purchases define the first-purchase cohorts and, without ``activity_source``, activity.
    activity_source : ibis.Table, optional
        Events whose months count as activity too (e.g. ``data.events``).
    users : ibis.Table, optional
        Needed for ``by="signup"`` (``user_id, signup_at``).
    by : {"first_purchase", "signup"}
    as_of : date, optional
        Ignore activity after this day.
    groups : ibis.Table, optional
        ``user_id, group`` (e.g. RFM segments): cohorts are split by group (users without a
        group are left out) and a ``group`` column is added.

    Returns
    -------
    pandas.DataFrame
        ``[group,] cohort`` (month start), ``period`` (0, 1, ...), ``cohort_size``,
        ``retained``, ``share``.
    """
    if by not in ("first_purchase", "signup"):
        raise ValueError(f"by must be 'first_purchase' or 'signup', got {by!r}")
    end = None if as_of is None else pd.Timestamp(as_day(as_of)) + pd.Timedelta(days=1)
    buys = orders.filter(orders.revenue >= 0)
    if end is not None:
        buys = buys.filter(buys.ts < end)
    act = buys.select("user_id", m=_month_index(buys.ts))
    if activity_source is not None:
        ev = activity_source if end is None else activity_source.filter(activity_source.ts < end)
        act = act.union(ev.select("user_id", m=_month_index(ev.ts)), distinct=False)
    act = act.distinct()
    if by == "first_purchase":
        coh = buys.group_by("user_id").agg(c=_month_index(buys.ts).min())
    else:
        if users is None:
            raise ValueError("by='signup' needs the users table (user_id, signup_at)")
        u = users if end is None else users.filter(users.signup_at < end)
        coh = u.select("user_id", c=_month_index(u.signup_at))
    keys = ["c"]
    if groups is not None:
        g = groups.select(gid="user_id", group="group")
        coh = coh.join(g, coh.user_id == g.gid).drop("gid")
        keys = ["group", "c"]
    sizes = coh.group_by(keys).agg(cohort_size=coh.user_id.count()).to_pandas()
    j = act.join(coh, "user_id")
    j = j.filter(j.m >= j.c)
    cells = (
        j.group_by([*(j[k] for k in keys), (j.m - j.c).name("period")])
        .agg(retained=j.user_id.count())
        .to_pandas()
    )
    out = cells.merge(sizes, on=keys, how="left")
    out["share"] = out["retained"] / out["cohort_size"]
    out["cohort"] = pd.to_datetime(
        {"year": out["c"] // 12, "month": out["c"] % 12 + 1, "day": 1}
    ) if len(out) else pd.Series(dtype="datetime64[ns]")  # fmt: skip
    out = out.sort_values([*keys, "period"]).reset_index(drop=True)
    cols = ["group"] if groups is not None else []
    return out[[*cols, "cohort", "period", "cohort_size", "retained", "share"]].astype(
        {"period": "int64", "cohort_size": "int64", "retained": "int64"}
    )


def states_over_time(migration: pd.DataFrame) -> pd.DataFrame:
    """Users per state at each period end (``period_end, state, users``), from the migration.

    The first period end's counts are the ``from_state`` totals of the first transition
    (new users excluded); later ones are the ``to_state`` totals.
    """
    if migration.empty:
        return pd.DataFrame(columns=["period_end", "state", "users"])
    first_end = migration["period_end"].min()
    first = migration[(migration["period_end"] == first_end) & (migration["from_state"] != NEW)]
    prev = first.groupby("from_state")["users"].sum()
    rows = [(first["previous_end"].iloc[0], s, int(n)) for s, n in prev.items()]
    for e in sorted(migration["period_end"].unique()):
        cur = migration[migration["period_end"] == e].groupby("to_state")["users"].sum()
        rows += [(e, s, int(n)) for s, n in cur.items()]
    return pd.DataFrame(rows, columns=["period_end", "state", "users"])

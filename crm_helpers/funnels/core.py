"""The funnel engine: per-user funnel progress and the funnel table, computed in the engine.

Everything event-level is one Ibis expression that runs unchanged on DuckDB and Spark; only
the per-step aggregate (one row) comes back as pandas. *ordered* funnels without exclusions
(the common case) use *pruned windows* (one small window or ASOF join per step, each step
reading its own rows with its own filter pushed into the scan, see below); *strict*,
*any_order* and exclusions group one scan of the funnel's events into *moments* first and
run their windows over all of them. Given prepared arrays (``funnel_table(..., arrays=)``,
:class:`crm_helpers.store.EventArrays`), :mod:`crm_helpers.funnels.kernel` computes the same
table in numpy on the sorted arrays instead; the path taken is recorded for the report.

Semantics
---------
Input: ``events`` with ``user_id, event, ts`` (naive UTC) and property columns.
Timestamps are compared exactly at microsecond resolution (``ts`` is turned into integer
epoch microseconds ``t``; anything finer is truncated).

*Moments.* Events are first restricted to the funnel's relevant events (those matching a
step or an exclusion). A user's events with the SAME timestamp are simultaneous: they are
collapsed per ``(user, t)`` into one *moment* that carries a flag per step and per
exclusion. The order of rows in the input never matters.

*ordered* (default). A user reaches step ``m`` if there is a chain of moments
``t_1 < t_2 < ... < t_m`` (strictly increasing, so two steps never share one moment) with

- moment ``t_k`` matching step ``k`` (its event, and its ``where`` properties);
- ``t_m - t_1 <= W`` where ``W = conversion_window_days`` (exactly ``W`` is inside);
- ``t_1`` in ``[start, end)`` when a date range is given (only the entry is restricted);
- for each step ``k >= 2`` with ``min_seconds_from_previous`` / ``max_seconds_from_previous``:
  ``min <= t_k - t_{k-1} <= max`` (inclusive);
- for each exclusion ``X`` from step ``a`` to step ``b``: no moment matching ``X`` in the
  half-open interval ``(t_a, t_min(b, m)]``. An ``X`` at the same moment as step ``a`` does
  not count; one at the same moment as step ``b`` (or any step between) does.

Other events may occur between steps.

*strict*. As *ordered*, and consecutive steps must be consecutive moments of the user's
FULL event stream (all events, relevant or not, after collapsing ties): no moment of any
event strictly between ``t_{k-1}`` and ``t_k``.

*any_order*. A user reaches ``m`` if some window ``[t, t + W]`` starting at one of the
user's moments ``t`` (with ``t`` in ``[start, end)``) contains moments matching ``m``
distinct steps. Steps must be distinct matchers; per-step gaps and exclusions are not
defined for this mode (an error). Timing uses the greedy chain of a window: for a window
start ``t`` let ``next_j(t)`` be the first moment ``>= t`` matching step ``j`` and
``c_k(t)`` the ``k``-th smallest of the ``next_j(t)``; the window completes ``k`` steps at
``c_k(t)`` if ``c_k(t) - t <= W``. ``R_k = min_t c_k(t)``; the entry is the latest window
start ``t`` with ``c_k(t) = R_k`` and the previous step is ``c_{k-1}`` of that start.

*count="attempts"* (ordered and strict). Each step-1 moment starts a new attempt, which
runs until the next step-1 moment (exclusive). A chain of an attempt starts at that
attempt's own step-1 moment and stays before the next step-1 moment; steps are reached per
attempt, so re-entries are counted. Attempts are numbered ``1, 2, ...`` in time order from
the first step-1 moment at or after ``start``; only attempts whose step-1 moment is in
``[start, end)`` are returned. A later step equal to step 1 is an error in this mode.

*Outputs.* ``steps_reached`` is the largest ``m`` reached (``>= 1``: users without a
step-1 moment in range, or for *any_order* without any step moment in range, are absent).
Users reaching step ``k`` are those with ``steps_reached >= k``. For ``k >= 2`` and a user
reaching ``k``: ``R_k`` is the FIRST moment at which step ``k`` is completed by any valid
chain; its entry is the LATEST ``t_1`` among valid chains ending at ``R_k`` and its
previous step the LATEST ``t_{k-1}`` among them. ``step_k_at = R_k``,
``step_k_from_prev_s = R_k - t_{k-1}``, ``step_k_from_start_s = R_k - t_1`` (seconds).
``step_1_at`` is the first step-1 moment in range and ``entry_at`` is the entry of the
first completion of the furthest step reached.

Algorithm
---------
``s_1 = t`` at step-1 moments in range. For ``k >= 2``, ``s_k`` (the latest entry of a
valid chain ending at this moment at step ``k``) is ``p = max(s_{k-1})`` over the earlier
moments of the partition when this moment matches step ``k`` and ``t - p <= W``. Among
non-null values ``s_k`` is non-decreasing in ``t`` (induction), so that maximum is the
entry of the latest valid predecessor. The frame is ``ROWS UNBOUNDED PRECEDING .. 1
PRECEDING`` (or ``RANGE`` from ``t - max_gap`` to ``t - max(min_gap, 1us)`` with per-step
gaps); *strict* uses ``lag`` over the full stream. Exclusions partition steps ``a+1 .. b``
additionally by a running count of exclusion moments (same segment <=> no exclusion in
``(t', t]``); attempts partition by a running count of step-1 moments. Everything stays in
one pass of window functions over one scan of ``events``.

*Pruned windows* (*ordered*, no exclusions; :func:`_pruned_steps`). ``s_k`` can only be
non-null at step-``k`` rows, and its window only reads ``s_{k-1}`` where it is non-null. So
``c_1`` = the step-1 rows in range (``s = t``), and ``c_k`` = the step-``k`` rows that end a
valid chain, from a window over ONLY ``c_{k-1}`` UNION ALL the step-``k`` event rows with
the same frame as above but always ``RANGE`` (ending ``max(min_gap, 1us)`` before the row):
rows of one instant never see each other, so ties need no moment GROUP BY and duplicate
rows change nothing. ``r_k, e_k, p_k`` are ``min(t), min(s), min(pv)`` over the unit's
``c_k`` rows (all three non-decreasing in ``t``). :func:`funnel_table` aggregates each
``c_k`` per unit directly (units reaching ``k`` are those with a ``c_k`` row). Attempts:
the partition gets the time of the latest step-1 moment at or before the row (one shared
scan with a flag per step); users: each step's rows are their own filtered read of
``events``. On DuckDB each step is a backward ASOF join (:func:`_asof_step`).

Time is ``epoch_us(ts)`` on DuckDB and ``unix_micros(ts)`` on Spark (a portable interval
difference elsewhere); on DuckDB a ``ts`` that :func:`crm_helpers.load` casts from
``TIMESTAMPTZ`` is read as the instant (same number, no per-row cast).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_helpers import events as _ev
from crm_helpers.engine import epoch_us as _epoch_us
from crm_helpers.engine import from_epoch_us as _us_to_ts
from crm_helpers.funnels import kernel as _kernel
from crm_helpers.store import EventArrays
from crm_helpers.store.paths import record_path

_norm_where = _ev.norm_where
_where_text = _ev.where_text
_match = _ev.match
_to_timestamp = _ev.to_timestamp
_ts_us = _ev.ts_us
_backend_name = _ev.backend_name
_events_of = _ev.events_of
_known_events = _ev.known_events
closest_first = _ev.closest_first

__all__ = [
    "Exclusion",
    "FunnelSpec",
    "Step",
    "funnel_table",
    "period_step_counts",
    "supports_period_counts",
    "time_to_convert_histogram",
    "user_funnel",
]

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
MODES = ("ordered", "strict", "any_order")
COUNTS = ("users", "attempts")


# --- spec ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One funnel step: an event name, optional property filters and per-step time limits.

    Parameters
    ----------
    event
        Event name (value of the ``event`` column).
    where
        Property filters: ``{"category": "sports"}`` (equality) or
        ``{"category": ["a", "b"]}`` (membership). All must hold.
    label
        Display name (default: the event name, plus the filters).
    min_seconds_from_previous, max_seconds_from_previous
        Inclusive limits on the gap from the previous step (steps 2..n only).
    """

    event: str
    where: Mapping[str, object] | None = None
    label: str | None = None
    min_seconds_from_previous: float | None = None
    max_seconds_from_previous: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not self.event:
            raise ValueError(f"Step event must be a non-empty string, got {self.event!r}")
        object.__setattr__(self, "where", _norm_where(self.where))
        lo, hi = self.min_seconds_from_previous, self.max_seconds_from_previous
        for name, v in (("min", lo), ("max", hi)):
            if v is not None and (not math.isfinite(v) or v < 0):
                raise ValueError(f"{name}_seconds_from_previous must be finite and >= 0, got {v}")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(
                f"step {self.event!r}: min_seconds_from_previous ({lo}) > "
                f"max_seconds_from_previous ({hi})"
            )

    @property
    def name(self) -> str:
        """The label, or the event name with its filters."""
        return self.label if self.label is not None else self.event + _where_text(self.where)

    @property
    def has_gap(self) -> bool:
        return (
            self.min_seconds_from_previous is not None or self.max_seconds_from_previous is not None
        )

    def matcher(self) -> tuple:
        """Hashable identity of what the step matches (event and filters)."""
        return (self.event, tuple(sorted((self.where or {}).items(), key=lambda kv: kv[0])))

    def matches(self, t: ir.Table) -> ir.BooleanValue:
        """Ibis boolean: the row is this step's event with its properties."""
        return _match(t, self.event, self.where)


@dataclass(frozen=True)
class Exclusion:
    """Users doing ``event`` between steps ``from_step`` and ``to_step`` (1-based) fail them.

    A chain ``t_1 < ... < t_m`` is invalid if a matching moment lies in
    ``(t_from_step, t_min(to_step, m)]``. ``to_step`` defaults to the last step.
    """

    event: str
    where: Mapping[str, object] | None = None
    from_step: int = 1
    to_step: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not self.event:
            raise ValueError(f"Exclusion event must be a non-empty string, got {self.event!r}")
        object.__setattr__(self, "where", _norm_where(self.where))

    def matches(self, t: ir.Table) -> ir.BooleanValue:
        return _match(t, self.event, self.where)


@dataclass(frozen=True)
class FunnelSpec:
    """What a funnel is: steps, mode, window, exclusions, counting unit and entry range.

    Parameters
    ----------
    steps
        :class:`Step` objects or bare event names (at least one).
    mode
        ``"ordered"`` (default), ``"strict"`` or ``"any_order"`` (see the module docstring).
    conversion_window_days
        ``W``: the last step of a chain is at most ``W`` after its entry (inclusive).
    exclusions
        :class:`Exclusion` objects.
    count
        ``"users"`` (default) or ``"attempts"`` (each step-1 moment starts an attempt).
    start, end
        Entry (step-1 time) must lie in ``[start, end)``; naive values are UTC.
    """

    steps: Sequence[Step | str]
    mode: Literal["ordered", "strict", "any_order"] = "ordered"
    conversion_window_days: float = 7.0
    exclusions: Sequence[Exclusion] = ()
    count: Literal["users", "attempts"] = "users"
    start: datetime | str | None = None
    end: datetime | str | None = None
    _steps: tuple[Step, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.steps, str | Step):
            raise TypeError("steps must be a list of Step objects or event names")
        steps = tuple(Step(s) if isinstance(s, str) else s for s in self.steps)
        if not steps:
            raise ValueError("a funnel needs at least one step; the step list is empty")
        for s in steps:
            if not isinstance(s, Step):
                raise TypeError(f"steps must be Step objects or event names, got {s!r}")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "_steps", steps)
        object.__setattr__(self, "exclusions", tuple(self.exclusions))
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.count not in COUNTS:
            raise ValueError(f"count must be one of {COUNTS}, got {self.count!r}")
        w = self.conversion_window_days
        if not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise ValueError(f"conversion_window_days must be a finite number >= 0, got {w!r}")
        start = _to_timestamp(self.start, "start")
        end = _to_timestamp(self.end, "end")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        if start is not None and end is not None and start >= end:
            raise ValueError(
                f"empty date range: start ({start}) must be before end ({end}); "
                "entries are taken in [start, end)"
            )
        if steps[0].has_gap:
            raise ValueError(
                "step 1 has no previous step: remove its min/max_seconds_from_previous"
            )
        n = len(steps)
        for i, x in enumerate(self.exclusions, 1):
            if not isinstance(x, Exclusion):
                raise TypeError(f"exclusions must be Exclusion objects, got {x!r}")
            to = n if x.to_step is None else x.to_step
            if not (1 <= x.from_step < to <= n):
                raise ValueError(
                    f"exclusion {i} ({x.event!r}): need 1 <= from_step < to_step <= {n} "
                    f"(number of steps), got from_step={x.from_step}, to_step={to}"
                )
        if self.mode == "any_order":
            seen = [s.matcher() for s in steps]
            if len(set(seen)) != len(seen):
                dup = next(s.name for s in steps if seen.count(s.matcher()) > 1)
                raise ValueError(
                    f"any_order funnels are not defined with repeated steps ({dup!r} appears "
                    "more than once): each step must match a distinct event/filter"
                )
            if any(s.has_gap for s in steps):
                raise ValueError(
                    "any_order funnels have no 'previous step': per-step windows "
                    "(min/max_seconds_from_previous) are not defined for mode='any_order'"
                )
            if self.exclusions:
                raise ValueError(
                    "exclusions between steps are not defined for mode='any_order' "
                    "(steps have no order)"
                )
            if self.count == "attempts":
                raise ValueError(
                    "count='attempts' is not defined for mode='any_order' (attempts start at "
                    "step 1, which has no special role without an order)"
                )
        if self.count == "attempts":
            first = steps[0].matcher()
            for k, s in enumerate(steps[1:], 2):
                if s.matcher() == first:
                    raise ValueError(
                        f"count='attempts' is not defined when step 1 ({steps[0].name!r}) is "
                        f"repeated later (step {k}): every step-1 moment starts a new attempt"
                    )

    @property
    def n_steps(self) -> int:
        return len(self._steps)

    @property
    def step_list(self) -> tuple[Step, ...]:
        """The steps as :class:`Step` objects."""
        return self._steps

    @property
    def window_us(self) -> int:
        """The conversion window in integer microseconds."""
        return round(self.conversion_window_days * US_PER_DAY)

    def exclusion_range(self, x: Exclusion) -> tuple[int, int]:
        """``(from_step, to_step)`` of an exclusion with the default filled in."""
        return x.from_step, self.n_steps if x.to_step is None else x.to_step

    def gap_us(self, k: int) -> tuple[int | None, int | None]:
        """Inclusive gap limits of step ``k`` (1-based) in integer microseconds.

        ``t_k - t_{k-1} >= min`` becomes ``>= ceil(min)``, ``<= max`` becomes ``<= floor(max)``
        on the integer microsecond clock.
        """
        s = self._steps[k - 1]
        lo = s.min_seconds_from_previous
        hi = s.max_seconds_from_previous
        lo_us = None if lo is None else math.ceil(round(lo * US_PER_SECOND, 6))
        hi_us = None if hi is None else math.floor(round(hi * US_PER_SECOND, 6))
        return lo_us, hi_us


# --- validation against the data -------------------------------------------------------------


def validate_spec(events: ir.Table, spec: FunnelSpec, *, check_events: bool = True) -> None:
    """Check a spec against an events table; raise ``ValueError`` naming the problem.

    Checks the canonical columns, that every ``where`` column exists, and (with
    ``check_events``) that every step/exclusion event occurs in the data, listing the events
    that do, closest first (:func:`crm_helpers.events.closest_first`; one ``distinct event`` query).
    See :mod:`crm_helpers.events`.
    """
    matchers = [(f"step {k}", s.event, s.where) for k, s in enumerate(spec.step_list, 1)]
    matchers += [(f"exclusion {i}", x.event, x.where) for i, x in enumerate(spec.exclusions, 1)]
    _ev.check_columns(events, matchers)
    if check_events:
        _ev.check_events_exist(events, matchers)


# --- the engine -------------------------------------------------------------------------------


def _seconds(x: ir.IntegerValue) -> ir.FloatingValue:
    return x.cast("float64") / float(US_PER_SECOND)


def _null_int() -> ir.IntegerValue:
    return ibis.null().cast("int64")


def _in_range_us(t: ir.IntegerValue, spec: FunnelSpec) -> ir.BooleanValue:
    return _ev.in_range_us(t, spec.start, spec.end)


def _relevant_rows(
    events: ir.Table, spec: FunnelSpec, keys: list[str], backend: str | None
) -> tuple[ir.Table, list[str], list[str]]:
    """Events restricted to the funnel (one filter): ``keys``, epoch microseconds ``t`` and
    boolean flags ``f..`` (one per distinct step matcher) and ``x1..`` (exclusions).

    Rows outside ``[start, end + W]`` are dropped; so are rows matching no step or
    exclusion, except in *strict* mode (which needs the full stream).
    """
    steps = spec.step_list
    t = events
    conds = _ts_bounds(t, spec)
    # distinct step matchers share one flag
    flags: dict[str, ir.BooleanValue] = {}
    step_flag: list[str] = []
    seen: dict[tuple, str] = {}
    for k, s in enumerate(steps, 1):
        m = s.matcher()
        if m not in seen:
            seen[m] = f"f{k}"
            flags[f"f{k}"] = s.matches(t)
        step_flag.append(seen[m])
    excl_flag = []
    for i, x in enumerate(spec.exclusions, 1):
        flags[f"x{i}"] = x.matches(t)
        excl_flag.append(f"x{i}")
    if spec.mode != "strict":
        # the event names alone (an IN list the engine pushes into the scan); the full
        # matchers only when some step or exclusion also filters on properties
        names = sorted({s.event for s in steps} | {x.event for x in spec.exclusions})
        conds.append(t.event.isin(names))
        if any(s.where for s in steps) or any(x.where for x in spec.exclusions):
            any_flag = None
            for f in flags.values():
                any_flag = f if any_flag is None else any_flag | f
            conds.append(any_flag)
    if conds:
        t = t.filter(*conds)
    t = t.select(*keys, t=_epoch_us(t.ts, backend), **flags)
    return t, step_flag, excl_flag


def _ts_bounds(t: ir.Table, spec: FunnelSpec) -> list[ir.BooleanValue]:
    """Filters keeping the rows a funnel can use: ``ts`` in ``[start, end + W]``."""
    return _ev.ts_bounds(t, spec.start, spec.end, slack_us=spec.window_us)


def _moments(
    events: ir.Table, spec: FunnelSpec, keys: list[str], backend: str | None
) -> tuple[ir.Table, list[str], list[str]]:
    """One row per (keys, t): epoch microseconds ``t`` and boolean flags ``f..``, ``x1..``."""
    t, step_flag, excl_flag = _relevant_rows(events, spec, keys, backend)
    flags = [c for c in t.columns if c not in (*keys, "t")]
    m = t.group_by([*keys, "t"]).aggregate(**{name: t[name].any() for name in flags})
    return m, step_flag, excl_flag


def _uses_pruned(spec: FunnelSpec) -> bool:
    """Whether :func:`_pruned_chains` computes this spec (ordered, no exclusions)."""
    return spec.mode == "ordered" and not spec.exclusions


def _pruned_steps(
    events: ir.Table,
    spec: FunnelSpec,
    keys: list[str],
    backend: str | None,
    *,
    period: str | None = None,
    periods: Sequence[pd.Timestamp] | None = None,
    cache: list[ir.Table] | None = None,
) -> tuple[list[ir.Table], list[str]]:
    """*ordered* without exclusions: one small window per step over only what it needs.

    ``c_1`` is the step-1 rows in range (``s = t``). For ``k >= 2``, ``c_k`` is the step-``k``
    rows that end a valid chain: a window over ``c_{k-1}`` UNION ALL the step-``k`` rows only,
    partitioned by user (and attempt), ordered by ``t``, with a RANGE frame that ends
    ``max(min_gap, 1us)`` before the row (rows of the same instant never see each other, so
    ties need no moment GROUP BY) and starts ``max_gap`` before it (or unbounded):
    ``s = max(s)`` and ``pv = max(t of c_{k-1} rows)`` over the frame; the row is kept if
    ``s`` is not null and ``t - s <= W``. This is the same recurrence as :func:`_chains`
    evaluated only at the rows where ``s_k`` can be non-null. Per user (attempt):
    ``r_k = min t``, ``e_k = min s``, ``p_k = min pv`` over ``c_k`` (``s`` and ``pv`` are
    non-decreasing in ``t``, so these are the values at the first completion).

    Returns ``[c_1, ..., c_n]`` (columns ``*base, t, s, pv``) and ``base``: ``keys`` plus,
    with ``count="attempts"``, ``_a`` (the attempt's step-1 time), or with ``period``,
    ``_p`` (see :func:`period_step_counts`). With ``cache`` (a list), each intermediate
    ``c_k`` is cached in the engine and appended to it; the caller releases them.
    """
    if period is not None and spec.count != "users":
        raise ValueError("per-period chains are for count='users'")
    if spec.count == "users":
        # each step's rows straight from ``events``: its own filter, which the engine pushes
        # into the scan, and no shared table of every funnel row with a flag per step (DuckDB
        # materialises a shared sub-query: 31.5M rows before the first join at 50M events,
        # benchmarks/README.md). Per period: rows copied into the periods they can serve.
        base = [*keys, "_p"] if period is not None else list(keys)

        def step_rows(k: int) -> ir.Table:
            r = events.filter(spec.step_list[k - 1].matches(events), *_ts_bounds(events, spec))
            if period is not None:
                r = _period_copies(r, period, spec.window_us if k > 1 else None)
                if periods is not None:
                    r = r.filter(r._p.isin([pd.Timestamp(p).to_pydatetime() for p in periods]))
            return r.select(*base, t=_epoch_us(r.ts, backend))

        return _chain_steps(step_rows, spec, base, backend, cache), base

    # attempts: one scan of the funnel rows with a flag per step. Attempt identity: the time
    # of the latest step-1 moment at or before the row (rows of that same instant included);
    # null before the first one. Step 1 never repeats later in this mode, so a chain never
    # needs a step-1 row other than its entry.
    rows, step_flag, _ = _relevant_rows(events, spec, keys, backend)
    run = ibis.window(group_by=keys, order_by="t", range=(None, 0))
    f1 = rows[step_flag[0]]
    rows = rows.mutate(_a=ibis.ifelse(f1, rows.t, _null_int()).max().over(run))
    base = [*keys, "_a"]

    def step_rows(k: int) -> ir.Table:
        r = rows.filter(rows[step_flag[k - 1]])
        return r.select(*base, "t")

    return _chain_steps(step_rows, spec, base, backend, cache), base


def _chain_steps(
    step_rows, spec: FunnelSpec, base: list[str], backend: str | None, cache: list | None = None
) -> list:
    """``[c_1, ..., c_n]`` of :func:`_pruned_steps` from ``step_rows(k)`` (``*base, t``)."""
    n = spec.n_steps
    W = spec.window_us
    first = step_rows(1)
    c = first.filter(_in_range_us(first.t, spec)).mutate(s=first.t, pv=_null_int())
    chains = [c]
    for k in range(2, n + 1):
        lo, hi = spec.gap_us(k)
        if hi is not None and hi < max(lo or 0, 1):
            # no gap fits (steps are strictly increasing in time): step k is never reached
            c = c.filter(ibis.literal(False))
        elif backend in ASOF_BACKENDS:
            c = _asof_step(c, step_rows(k), base, lo, hi, W, entries=k == 2)
        else:
            # chain rows always carry s, event rows never: "s is null" marks the step-k rows
            u = c.select(*base, "t", "s").union(step_rows(k).mutate(s=_null_int()), distinct=False)
            w = ibis.window(
                group_by=base,
                order_by="t",
                range=(None if hi is None else -hi, -max(lo or 0, 1)),
            )
            u = u.mutate(
                _ps=u.s.max().over(w),
                _pv=ibis.ifelse(u.s.notnull(), u.t, _null_int()).max().over(w),
            )
            c = u.filter(u.s.isnull(), u._ps.notnull(), u.t - u._ps <= W).select(
                *base, "t", s="_ps", pv="_pv"
            )
        if cache is not None and k < n:
            c = c.cache()
            cache.append(c)
        chains.append(c)
    return chains


#: Backends whose pruned steps use a backward ASOF join instead of the RANGE window (same
#: result: see :func:`_asof_step`); Ibis does not compile ASOF joins for Spark.
ASOF_BACKENDS: set[str] = {"duckdb"}


def _asof_step(
    prev: ir.Table,
    cand: ir.Table,
    base: list[str],
    lo: int | None,
    hi: int | None,
    W: int,
    *,
    entries: bool = False,
) -> ir.Table:
    """``c_k`` from ``c_{k-1}`` (``prev``) and the step-``k`` rows (``cand``) by ASOF join.

    The window of :func:`_pruned_steps` takes, over the ``c_{k-1}`` rows at least
    ``max(min_gap, 1us)`` before the row (and at most ``max_gap``), ``max(s)`` and the latest
    ``t``. Within a partition ``s`` is non-decreasing in ``t`` over ``c_{k-1}`` (the lemma in the
    module docstring), so both are the values of the *latest* such row: a backward ASOF join
    on ``t - max(min_gap, 1us) >= t'``, then the max-gap bound checked on that row (if the
    latest one is too old, every one is).

    With ``entries`` (``prev`` is ``c_1``, where ``s = t``) the right side carries the time
    alone: the largest join sorts two columns a row instead of four.
    """
    shift = max(lo or 0, 1)
    keys = {f"_k{i}": prev[k] for i, k in enumerate(base)}
    if entries:
        right = prev.select(**keys, _rt=prev.t + shift)
    else:
        right = prev.select(**keys, _rt=prev.t + shift, _s=prev.s)
    # null-safe, as a window partition: a null extra_partition value is a group of its own
    preds = [cand[k].identical_to(right[f"_k{i}"]) for i, k in enumerate(base)]
    j = cand.asof_join(right, on=cand.t >= right._rt, predicates=preds)
    pv = j._rt - shift
    s = pv if entries else j._s
    conds = [j._rt.notnull(), j.t - s <= W]
    if hi is not None:
        conds.append(j.t - pv <= hi)
    return j.filter(*conds).select(*base, "t", s=s, pv=pv)


def _pruned_chains(
    events: ir.Table, spec: FunnelSpec, keys: list[str], backend: str | None
) -> tuple[ir.Table, list[str]]:
    """Per-user (per-attempt) ``r1.., e1.., p2..`` from :func:`_pruned_steps`, and its keys."""
    n = spec.n_steps
    chains, base = _pruned_steps(events, spec, keys, backend)
    stacked = ibis.union(
        *[ck.mutate(k=ibis.literal(k, "int8")) for k, ck in enumerate(chains, 1)],
        distinct=False,
    )
    aggs: dict[str, ir.Value] = {}
    for k in range(1, n + 1):
        at_k = stacked.k == k
        aggs[f"r{k}"] = stacked.t.min(where=at_k)
        aggs[f"e{k}"] = stacked.s.min(where=at_k)
        if k >= 2:
            aggs[f"p{k}"] = stacked.pv.min(where=at_k)
    per = stacked.group_by(base).aggregate(**aggs)
    if spec.count == "attempts":
        # number the attempts 1, 2, ... in time order: all returned attempts start in
        # [start, end) and every earlier step-1 moment at or after start is one of them
        order = ibis.window(group_by=keys, order_by="r1")
        per = per.mutate(attempt=ibis.row_number().over(order) + 1).drop("_a")
        base = [*keys, "attempt"]
    return per, base


#: Period units of :func:`period_step_counts`: (Ibis truncate unit, shortest length in days).
PERIODS: dict[str, tuple[str, int]] = {"day": ("D", 1), "week": ("W", 7), "month": ("M", 28)}


def _period_shift(p: ir.TimestampValue, period: str, j: int) -> ir.TimestampValue:
    """``p`` plus ``j`` periods (a calendar month for ``month``)."""
    if j == 0:
        return p
    if period == "month":
        return p + ibis.interval(months=j)
    return p + ibis.interval(days=j * PERIODS[period][1])


def _period_copies(rows: ir.Table, period: str, window_us: int | None) -> ir.Table:
    """``rows`` with ``_p``, the start of a period of entry each row can serve.

    ``window_us`` None (step-1 rows): the row's own period, once. Otherwise (later steps) one
    copy per period overlapping ``[ts - W, ts]``, the entries a step at ``ts`` can follow:
    the periods ``trunc(ts) - j`` (``j = 0, 1, ...``) whose end lies after ``ts - W``; at most
    ``ceil(W / shortest period) + 1`` of them (UNION ALL of that many filtered copies).
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {list(PERIODS)}, got {period!r}")
    unit, days = PERIODS[period]
    own = rows.ts.truncate(unit)
    if window_us is None:
        return rows.mutate(_p=own)
    copies = []
    for j in range(math.ceil(window_us / (days * US_PER_DAY)) + 1):
        p = _period_shift(own, period, -j)
        r = rows.mutate(_p=p)
        if j:
            earliest = r.ts - ibis.interval(microseconds=window_us)
            r = r.filter(_period_shift(r._p, period, 1) > earliest)
        copies.append(r)
    return ibis.union(*copies, distinct=False) if len(copies) > 1 else copies[0]


def period_step_counts(
    events: ir.Table,
    spec: FunnelSpec,
    period: Literal["day", "week", "month"] = "week",
    *,
    periods: Sequence[pd.Timestamp] | None = None,
    check_events: bool = True,
) -> ir.Table:
    """Each period of entry's own funnel, all periods in one query (*ordered*, users).

    Period ``p``'s funnel is the funnel with its entry restricted to ``p`` (intersected with
    the spec's ``start``/``end``); later steps may fall after ``p``, inside the window, and
    a user who enters in several periods counts in each. Equal to running
    :func:`user_funnel` once per period (tested), but one pass: step-1 rows carry their own
    period, each later step row is copied into the (at most ``ceil(W / period) + 1``)
    periods whose entries it can follow, and the chains are partitioned by
    ``(user, period)``.

    Parameters
    ----------
    events
        Ibis table with ``user_id, event, ts``.
    spec
        An *ordered* funnel without exclusions, counting users (:func:`supports_period_counts`).
    period
        ``"day"``, ``"week"`` (ISO, from Monday) or ``"month"`` (naive UTC calendar).
    periods
        Period starts to compute (default: every period with an entry).

    Returns
    -------
    ibis.Table
        One row per period with an entry: ``period`` (its start, naive timestamp),
        ``n_1 .. n_n`` (users reaching each step).
    """
    if not supports_period_counts(spec):
        raise ValueError(
            "period_step_counts needs an ordered funnel without exclusions counting users; "
            "run user_funnel per period for other specs"
        )
    if period not in PERIODS:
        raise ValueError(f"period must be one of {list(PERIODS)}, got {period!r}")
    validate_spec(events, spec, check_events=check_events)
    chains, _ = _pruned_steps(
        events, spec, ["user_id"], _backend_name(events), period=period, periods=periods
    )
    stacked = ibis.union(
        *[c.select("user_id", "_p", k=ibis.literal(k, "int16")) for k, c in enumerate(chains, 1)],
        distinct=False,
    )
    per = stacked.group_by(["user_id", "_p"]).aggregate(m=stacked.k.max())
    counts = {
        f"n_{k}": (per.m >= k).ifelse(1, 0).sum().cast("int64") for k in range(1, spec.n_steps + 1)
    }
    return per.group_by(period=per._p).aggregate(**counts).order_by("period")


def supports_period_counts(spec: FunnelSpec) -> bool:
    """Whether :func:`period_step_counts` computes ``spec`` (ordered, no exclusions, users)."""
    return _uses_pruned(spec) and spec.count == "users"


def user_funnel(
    events: ir.Table,
    spec: FunnelSpec,
    *,
    extra_partition: str | None = None,
    check_events: bool = True,
) -> ir.Table:
    """Per-user (or per-attempt) funnel progress as a LAZY Ibis table.

    Parameters
    ----------
    events
        Ibis table with ``user_id, event, ts`` (+ property columns), any backend.
    spec
        The funnel.
    extra_partition
        A column of ``events``: the funnel is computed separately per
        ``(user, value)`` (e.g. ``session_id``, ``platform``).
    check_events
        Validate event names against the data (one ``distinct event`` query).

    Returns
    -------
    ibis.Table
        One row per user (per ``(user, attempt)`` with ``count="attempts"``, per
        ``(user, extra_partition)`` when given) that has a step-1 moment in range:
        ``user_id``, [``attempt``], [``<extra_partition>``], ``steps_reached`` (1..n),
        ``entry_at``, ``step_1_at .. step_n_at`` (timestamps of the FIRST completion of each
        step; null if not reached), ``step_2_from_prev_s .. step_n_from_prev_s`` and
        ``step_2_from_start_s .. step_n_from_start_s`` (float seconds; null if not reached).
        See the module docstring for the exact definitions.
    """
    if not isinstance(spec, FunnelSpec):
        raise TypeError(f"spec must be a FunnelSpec, got {type(spec).__name__}")
    if extra_partition is not None and extra_partition not in events.columns:
        raise ValueError(
            f"extra_partition column {extra_partition!r} is not in events "
            f"(columns: {sorted(events.columns)})"
        )
    if extra_partition in ("user_id", "attempt"):
        raise ValueError(f"extra_partition cannot be {extra_partition!r}")
    validate_spec(events, spec, check_events=check_events)
    keys = ["user_id"] + ([extra_partition] if extra_partition else [])
    backend = _backend_name(events)
    if _uses_pruned(spec):
        per, out_keys = _pruned_chains(events, spec, keys, backend)
    else:
        m, step_flag, excl_flag = _moments(events, spec, keys, backend)
        if spec.mode == "any_order":
            per = _any_order(m, spec, keys, step_flag)
            out_keys = keys
        else:
            per, out_keys = _chains(m, spec, keys, step_flag, excl_flag)
    n = spec.n_steps
    reached = [per[f"r{k}"].notnull() for k in range(1, n + 1)]
    steps_reached = reached[0].cast("int64")
    for r in reached[1:]:
        steps_reached = steps_reached + r.cast("int64")
    per = per.filter(per.r1.notnull()).mutate(steps_reached=steps_reached)
    entry = ibis.cases(*[(per.steps_reached == k, per[f"e{k}"]) for k in range(1, n + 1)])
    cols: dict[str, ir.Value] = {"steps_reached": per.steps_reached.cast("int64")}
    cols["entry_at"] = _us_to_ts(entry, backend)
    for k in range(1, n + 1):
        cols[f"step_{k}_at"] = _us_to_ts(per[f"r{k}"], backend)
    for k in range(2, n + 1):
        cols[f"step_{k}_from_prev_s"] = _seconds(per[f"r{k}"] - per[f"p{k}"])
    for k in range(2, n + 1):
        cols[f"step_{k}_from_start_s"] = _seconds(per[f"r{k}"] - per[f"e{k}"])
    ordered_keys = ["user_id"] + (["attempt"] if "attempt" in out_keys else [])
    ordered_keys += [c for c in out_keys if c not in ordered_keys]
    return per.select(*ordered_keys, **cols)


def _chains(
    m: ir.Table, spec: FunnelSpec, keys: list[str], step_flag: list[str], excl_flag: list[str]
) -> tuple[ir.Table, list[str]]:
    """ordered / strict: ``s_k`` per moment, then per-user (per-attempt) aggregates."""
    n = spec.n_steps
    W = spec.window_us
    base = list(keys)
    if spec.count == "attempts":
        run = ibis.window(group_by=keys, order_by="t", rows=(None, 0))
        m = m.mutate(attempt=m[step_flag[0]].cast("int64").sum().over(run))
        base = [*keys, "attempt"]
    # exclusion segments: one running count per distinct set of exclusions covering a step
    seg_of_step: dict[int, str | None] = {}
    seg_cols: dict[frozenset, str] = {}
    seg_exprs: dict[str, ir.Value] = {}
    for k in range(2, n + 1):
        cover = frozenset(
            i
            for i, x in enumerate(spec.exclusions)
            if spec.exclusion_range(x)[0] < k <= spec.exclusion_range(x)[1]
        )
        if not cover:
            seg_of_step[k] = None
            continue
        if cover not in seg_cols:
            name = f"seg{len(seg_cols) + 1}"
            seg_cols[cover] = name
            hit = None
            for i in sorted(cover):
                f = m[excl_flag[i]]
                hit = f if hit is None else hit | f
            run = ibis.window(group_by=keys, order_by="t", rows=(None, 0))
            seg_exprs[name] = hit.cast("int64").sum().over(run)
        seg_of_step[k] = seg_cols[cover]
    if seg_exprs:
        m = m.mutate(**seg_exprs)
    t = m.t
    m = m.mutate(s1=ibis.ifelse(m[step_flag[0]] & _in_range_us(t, spec), t, _null_int()))
    for k in range(2, n + 1):
        part = base + ([seg_of_step[k]] if seg_of_step[k] else [])
        prev = m[f"s{k - 1}"]
        lo, hi = spec.gap_us(k)
        # window values first (one column each), then the CASE on them: no repeated windows
        if spec.mode == "strict":
            w = ibis.window(group_by=part, order_by="t")
            m = m.mutate(_p=prev.lag().over(w), _pv=m.t.lag().over(w))
            ok = m[step_flag[k - 1]] & m._p.notnull() & (m.t - m._p <= W)
            if lo is not None:
                ok = ok & (m.t - m._pv >= lo)
            if hi is not None:
                ok = ok & (m.t - m._pv <= hi)
        elif hi is not None and hi < max(lo or 0, 1):
            # no gap fits (steps are strictly increasing in time): step k is never reached
            m = m.mutate(_p=_null_int(), _pv=_null_int())
            ok = ibis.literal(False)
        else:
            if lo is None and hi is None:
                w = ibis.window(group_by=part, order_by="t", rows=(None, -1))
            else:
                w = ibis.window(
                    group_by=part,
                    order_by="t",
                    range=(None if hi is None else -hi, -max(lo or 0, 1)),
                )
            m = m.mutate(
                _p=prev.max().over(w),
                _pv=ibis.ifelse(prev.notnull(), m.t, _null_int()).max().over(w),
            )
            ok = m[step_flag[k - 1]] & m._p.notnull() & (m.t - m._p <= W)
        m = m.mutate(
            **{
                f"s{k}": ibis.ifelse(ok, m._p, _null_int()),
                f"pv{k}": ibis.ifelse(ok, m._pv, _null_int()),
            }
        ).drop("_p", "_pv")
    if spec.count == "attempts":
        m = m.filter(m.attempt > 0)
    aggs: dict[str, ir.Value] = {}
    for k in range(1, n + 1):
        s = m[f"s{k}"]
        aggs[f"r{k}"] = m.t.min(where=s.notnull())
        aggs[f"e{k}"] = s.min()
        if k >= 2:
            aggs[f"p{k}"] = m[f"pv{k}"].min()
    per = m.group_by(base).aggregate(**aggs)
    return per, base


def _kth_smallest(values: list[ir.IntegerValue], k: int) -> ir.IntegerValue:
    """k-th smallest (1-based, with ties) of nullable integer expressions; null if < k values."""
    cands = []
    for v in values:
        cnt = None
        for u in values:
            c = (u.notnull() & (u <= v)).cast("int64").fill_null(0)
            cnt = c if cnt is None else cnt + c
        cands.append(ibis.ifelse(v.notnull() & (cnt >= k), v, _null_int()))
    return cands[0] if len(cands) == 1 else ibis.least(*cands)


def _any_order(m: ir.Table, spec: FunnelSpec, keys: list[str], step_flag: list[str]) -> ir.Table:
    """any_order: greedy chains from every window start, then per-user aggregates."""
    n = spec.n_steps
    W = spec.window_us
    fwd = ibis.window(group_by=keys, order_by="t", rows=(0, None))
    nxt = {
        f"n{j}": ibis.ifelse(m[step_flag[j - 1]], m.t, _null_int()).min().over(fwd)
        for j in range(1, n + 1)
    }
    m = m.mutate(**nxt)
    vals = [m[f"n{j}"] for j in range(1, n + 1)]
    in_range = _in_range_us(m.t, spec)
    ck = {f"c{k}": _kth_smallest(vals, k) for k in range(1, n + 1)}
    m = m.mutate(**ck)
    m = m.mutate(
        **{
            f"v{k}": in_range & m[f"c{k}"].notnull() & (m[f"c{k}"] - m.t <= W)
            for k in range(1, n + 1)
        }
    )
    whole = ibis.window(group_by=keys)
    m = m.mutate(
        **{
            f"R{k}": ibis.ifelse(m[f"v{k}"], m[f"c{k}"], _null_int()).min().over(whole)
            for k in range(1, n + 1)
        }
    )
    aggs: dict[str, ir.Value] = {}
    for k in range(1, n + 1):
        best = m[f"v{k}"] & (m[f"c{k}"] == m[f"R{k}"])
        aggs[f"r{k}"] = m[f"c{k}"].min(where=m[f"v{k}"])
        aggs[f"e{k}"] = m.t.max(where=best)
        if k >= 2:
            # c_{k-1} is non-decreasing in t, so the latest start gives the latest previous
            aggs[f"p{k}"] = m[f"c{k - 1}"].max(where=best)
    return m.group_by(keys).aggregate(**aggs)


# --- funnel table ---------------------------------------------------------------------------------


def funnel_table(
    events_or_data: Any,
    spec: FunnelSpec,
    *,
    alpha: float = 0.05,
    check_events: bool = True,
    arrays: EventArrays | None = None,
) -> pd.DataFrame:
    """The funnel: one row per step, aggregated in the engine (or on prepared arrays).

    Parameters
    ----------
    events_or_data
        Ibis events table (``user_id, event, ts, ...``) or a ``CRMData``.
    spec
        The funnel.
    alpha
        Level of the Wilson confidence intervals (``1 - alpha`` coverage).
    check_events
        When a step has no unit (or with exclusions), check that every step/exclusion event
        occurs in the data (a clear error naming the closest events).
    arrays
        The same events as :class:`~crm_helpers.store.EventArrays` (the prepared store):
        when given and the spec is covered (:func:`crm_helpers.funnels.kernel.uncovered`),
        the sorted-array kernel computes the table; else the Ibis expressions do. Same
        table either way; the path is recorded (:func:`crm_helpers.store.paths.record_path`).

    Returns
    -------
    pandas.DataFrame
        ``n_steps`` rows: ``step`` (1-based), ``label``, ``event``, ``users`` (``attempts``
        with ``count="attempts"``), ``conversion_from_previous``, ``conversion_from_start``,
        ``ci_low``/``ci_high`` (Wilson CI of ``conversion_from_start``),
        ``ci_prev_low``/``ci_prev_high`` (of ``conversion_from_previous``), ``dropoff``
        (count lost from the previous step), ``dropoff_share`` (of the previous step),
        ``median_seconds_to_convert``, ``p25_seconds``, ``p75_seconds``, ``p90_seconds``
        (time from the previous step, linear-interpolated quantiles; NaN for step 1) and
        ``median_seconds_from_start``.
    """
    from crm_helpers.stats import wilson_interval

    events = _events_of(events_or_data)
    if not isinstance(spec, FunnelSpec):
        raise TypeError(f"spec must be a FunnelSpec, got {type(spec).__name__}")
    # columns now (schema only); event names after the query, and only when needed: an
    # unknown step event leaves its step (and every later one) with zero users, and
    # exclusions never show in the counts. One query in the common case.
    validate_spec(events, spec, check_events=False)
    n = spec.n_steps
    if arrays is not None and _kernel.uncovered(spec, arrays) is None:
        record_path("funnel", "kernel")
        row = pd.Series(_kernel.table_values(arrays, spec), dtype=object)
        if check_events and (
            spec.exclusions or any(_count(row[f"n{k}"]) == 0 for k in range(1, n + 1))
        ):
            validate_spec(events, spec, check_events=True)
        return _assemble_table(row, spec, alpha, wilson_interval)
    record_path("funnel", "ibis")
    cached: list[ir.Table] = []
    if _uses_pruned(spec):
        cache = cached if _backend_name(events) in CACHE_STAGES_BACKENDS else None
        agg = _funnel_aggregate_pruned(events, spec, cache=cache)
    else:
        agg = _funnel_aggregate(user_funnel(events, spec, check_events=False), spec)
    try:
        raw = agg.to_pandas().iloc[0]
    finally:
        for c in cached:
            c.release()
    vals: dict[str, Any] = {f"n{k}": raw[f"n{k}"] for k in range(1, n + 1)}
    for k in range(2, n + 1):
        qs = raw[f"qprev{k}"]
        qs = [None] * 4 if qs is None or (np.ndim(qs) == 0 and pd.isna(qs)) else list(qs)
        for name, v in zip(("med", "q25_", "q75_", "q90_"), qs, strict=True):
            vals[f"{name}{k}"] = v
        vals[f"mstart{k}"] = raw[f"mstart{k}"]
    row = pd.Series(vals, dtype=object)
    if check_events and (
        spec.exclusions or any(_count(row[f"n{k}"]) == 0 for k in range(1, n + 1))
    ):
        validate_spec(events, spec, check_events=True)
    return _assemble_table(row, spec, alpha, wilson_interval)


_QUANTILES = [0.5, 0.25, 0.75, 0.9]  # med, p25, p75, p90 of the time from the previous step


def _count(v: Any) -> int:
    return 0 if v is None or pd.isna(v) else int(v)


def _step_stats(k: int, r: ir.Value, e: ir.Value, p: ir.Value, count: ir.Value) -> dict:
    """Aggregates of step ``k`` over its units: count and time-to-convert quantiles."""
    out: dict[str, ir.Value] = {f"n{k}": count}
    if k >= 2:
        out[f"qprev{k}"] = _seconds(r - p).quantile(_QUANTILES)
        out[f"mstart{k}"] = _seconds(r - e).median()
    return out


def _funnel_aggregate(uf: ir.Table, spec: FunnelSpec) -> ir.Table:
    """One row: ``n1..``, ``qprev2..`` (arrays of :data:`_QUANTILES`), ``mstart2..``."""
    aggs: dict[str, ir.Value] = {}
    for k in range(1, spec.n_steps + 1):
        reached = uf.steps_reached >= k
        aggs[f"n{k}"] = reached.cast("int64").sum()
        if k >= 2:
            aggs[f"qprev{k}"] = uf[f"step_{k}_from_prev_s"].quantile(_QUANTILES)
            aggs[f"mstart{k}"] = uf[f"step_{k}_from_start_s"].median()
    return uf.aggregate(**aggs)


#: Backends on which :func:`funnel_table` caches each intermediate step's chains. Each
#: ``c_k`` feeds both step ``k + 1`` and step ``k``'s aggregate; Spark recomputes a subplan
#: used twice (at 4 steps: 6 windows and 10 scans instead of 3 and 4), DuckDB materialises
#: it itself. Cached stages: 15.7 s -> 9.8 s for 4 steps over 10M events on Spark local.
CACHE_STAGES_BACKENDS: set[str] = {"pyspark"}


def _funnel_aggregate_pruned(
    events: ir.Table, spec: FunnelSpec, cache: list[ir.Table] | None = None
) -> ir.Table:
    """:func:`_funnel_aggregate` straight from the ``c_k`` of :func:`_pruned_steps`.

    Units reaching step ``k`` are exactly those with a ``c_k`` row, and their first
    completion's times come from ``c_k`` alone: one small GROUP BY per step instead of the
    per-user table; the one-row results are cross-joined (still one query).
    """
    chains, base = _pruned_steps(events, spec, ["user_id"], _backend_name(events), cache=cache)
    out = None
    for k, c in enumerate(chains, 1):
        g = c.group_by(base).aggregate(r=c.t.min(), e=c.s.min(), p=c.pv.min())
        one = g.aggregate(**_step_stats(k, g.r, g.e, g.p, g.count()))
        out = one if out is None else out.cross_join(one)
    return out


def _assemble_table(row: pd.Series, spec: FunnelSpec, alpha: float, wilson) -> pd.DataFrame:
    n = spec.n_steps
    counts = np.array(
        [0 if pd.isna(row[f"n{k}"]) else int(row[f"n{k}"]) for k in range(1, n + 1)], dtype=np.int64
    )
    first = counts[0]
    prev = np.concatenate([[first], counts[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        conv_start = np.where(first > 0, counts / max(first, 1), np.nan)
        conv_prev = np.where(prev > 0, counts / np.maximum(prev, 1), np.nan)
    lo, hi = wilson(counts, np.full(n, first), alpha)
    plo, phi = wilson(counts, prev, alpha)

    def q(name: str, k: int) -> float:
        if k == 1:
            return np.nan
        v = row[f"{name}{k}"]
        return np.nan if v is None or pd.isna(v) else float(v)

    unit = "attempts" if spec.count == "attempts" else "users"
    steps = spec.step_list
    table = pd.DataFrame(
        {
            "step": np.arange(1, n + 1),
            "label": [s.name for s in steps],
            "event": [s.event for s in steps],
            unit: counts,
            "conversion_from_previous": conv_prev,
            "conversion_from_start": conv_start,
            "ci_low": np.asarray(lo, dtype=float),
            "ci_high": np.asarray(hi, dtype=float),
            "ci_prev_low": np.asarray(plo, dtype=float),
            "ci_prev_high": np.asarray(phi, dtype=float),
            "dropoff": prev - counts,
            "dropoff_share": np.where(prev > 0, (prev - counts) / np.maximum(prev, 1), np.nan),
            "median_seconds_to_convert": [q("med", k) for k in range(1, n + 1)],
            "p25_seconds": [q("q25_", k) for k in range(1, n + 1)],
            "p75_seconds": [q("q75_", k) for k in range(1, n + 1)],
            "p90_seconds": [q("q90_", k) for k in range(1, n + 1)],
            "median_seconds_from_start": [q("mstart", k) for k in range(1, n + 1)],
        }
    )
    return table


def time_to_convert_histogram(
    events_or_data: Any,
    spec: FunnelSpec,
    step: int,
    bins: int | Sequence[float] = 20,
    *,
    measure: Literal["from_prev", "from_start"] = "from_prev",
    check_events: bool = True,
) -> pd.DataFrame:
    """Histogram of the time to convert to ``step`` (2..n), counted in the engine.

    Parameters
    ----------
    events_or_data, spec
        As for :func:`funnel_table`.
    step
        The converting step (1-based, >= 2).
    bins
        Number of equal-width bins from 0 to the largest time (one extra ``max`` query), or
        increasing bin edges in seconds. Bins are ``[left, right)``, the last one closed;
        times outside the edges are not counted.
    measure
        ``"from_prev"`` (time from the previous step) or ``"from_start"`` (from the entry).

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``bin``, ``bin_start``, ``bin_end`` (seconds), ``users`` (or
        ``attempts``) and ``share`` (of the converters counted).
    """
    n = spec.n_steps
    if not 2 <= int(step) <= n:
        raise ValueError(f"step must be between 2 and {n} (time to convert into it), got {step}")
    if measure not in ("from_prev", "from_start"):
        raise ValueError(f"measure must be 'from_prev' or 'from_start', got {measure!r}")
    uf = user_funnel(_events_of(events_or_data), spec, check_events=check_events)
    x = uf[f"step_{int(step)}_{measure}_s"]
    if isinstance(bins, int | np.integer):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        top = uf.aggregate(mx=x.max()).to_pandas()["mx"].iloc[0]
        top = 0.0 if top is None or pd.isna(top) else float(top)
        edges = np.linspace(0.0, top if top > 0 else 1.0, int(bins) + 1)
    else:
        edges = np.asarray(list(bins), dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bins must be an int or at least two strictly increasing edges")
    nb = len(edges) - 1
    # bucket index: number of inner edges <= x (so [left, right)), last bin closed
    idx = ibis.literal(0)
    for e in edges[1:-1]:
        idx = idx + (x >= float(e)).cast("int64")
    inside = x.notnull() & (x >= float(edges[0])) & (x <= float(edges[-1]))
    counts = (
        uf.filter(inside)
        .select(bin=idx.cast("int64"))
        .group_by("bin")
        .aggregate(c=ibis._.count())
        .to_pandas()
    )
    got = dict(zip(counts["bin"].astype(int), counts["c"].astype(int), strict=True))
    c = np.array([got.get(i, 0) for i in range(nb)], dtype=np.int64)
    unit = "attempts" if spec.count == "attempts" else "users"
    total = c.sum()
    return pd.DataFrame(
        {
            "bin": np.arange(nb),
            "bin_start": edges[:-1],
            "bin_end": edges[1:],
            unit: c,
            "share": c / total if total > 0 else np.full(nb, np.nan),
        }
    )

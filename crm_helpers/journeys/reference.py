"""Brute-force journey reference: the definitions of :mod:`crm_helpers.journeys`, literally.

Plain Python over per-journey lists (pandas in, pandas out), for SMALL inputs only. Tests
compare the engine against it exactly. It shares with the engine only the
:class:`~crm_helpers.journeys.core.JourneySpec` (``step_of``) and the synthetic names;
the tie rule is written out again here: at equal times, ``[start]`` first, then steps by
name, then ``[end]`` / ``[churned]``.

>>> journeys = reference_journeys(events_df, spec)   # {(user, session): [(t_us, step), ...]}
>>> reference_transitions(journeys)                   # {(a, b): [seconds, ...]}
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import pandas as pd

from crm_helpers.events import match_row as _matches
from crm_helpers.journeys.core import CHURNED, END, START, JourneySpec

__all__ = [
    "reference_conformance",
    "reference_median_gap_minutes",
    "reference_journeys",
    "reference_paths",
    "reference_reach",
    "reference_stage_journeys",
    "reference_step_matrix",
    "reference_transitions",
    "reference_variants",
]

Journey = list[tuple[int, str]]


def _us(ts: Any) -> int:
    """Epoch microseconds; aware timestamps are read as their UTC instant."""
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int((ts - pd.Timestamp(0)) // pd.Timedelta(microseconds=1))


def _rank(step: str) -> tuple[int, str]:
    if step == START:
        return (0, "")
    if step in (END, CHURNED):
        return (2, step)
    return (1, step)


def reference_journeys(events: pd.DataFrame, spec: JourneySpec | None = None) -> dict:
    """``{(user_id, session): [(t_us, step), ...]}`` in tie-rule order (session 0 if none)."""
    spec = spec or JourneySpec()
    by_user: dict[Any, list[tuple[int, str, Any]]] = defaultdict(list)
    lo = None if spec.start is None else _us(spec.start)
    hi = None if spec.end is None else _us(spec.end)
    for row in events.to_dict("records"):
        if row["user_id"] is None or pd.isna(row["user_id"]) or pd.isna(row["ts"]):
            continue
        t = _us(row["ts"])
        if (lo is not None and t < lo) or (hi is not None and t >= hi):
            continue
        rule = next((r for r in spec.rules or () if _matches(row, r[1], r[2])), None)
        step = rule[0] if rule is not None else spec.step_of(str(row["event"]))
        if step is None:
            continue
        sess = row.get(spec.session_column) if spec.session_column else 0
        if sess is not None and not isinstance(sess, str) and pd.isna(sess):
            sess = None
        by_user[row["user_id"]].append((t, step, sess))
    journeys: dict[tuple, Journey] = {}
    for user, rows in by_user.items():
        rows.sort(key=lambda r: (r[0], _rank(r[1])))
        if spec.session_gap_minutes is not None:
            gap = spec.gap_us
            sid, prev = 0, None
            for t, step, _ in rows:
                if prev is None or t - prev > gap:
                    sid += 1
                prev = t
                journeys.setdefault((user, sid), []).append((t, step))
        else:
            for t, step, sess in rows:
                journeys.setdefault((user, sess), []).append((t, step))
    if spec.start_end:
        order = sorted(journeys, key=lambda k: (repr(k[0]), journeys[k][0][0]))
        nxt_first: dict[tuple, int | None] = {}
        by_u: dict[Any, list[tuple]] = defaultdict(list)
        for k in order:
            by_u[k[0]].append(k)
        until = None
        if spec.churn_days is not None:
            until = (
                _us(spec.observed_until)
                if spec.observed_until is not None
                else max((j[-1][0] for j in journeys.values()), default=0)
            )
        for ks in by_u.values():
            ks.sort(key=lambda k: journeys[k][0][0])
            for i, k in enumerate(ks):
                nxt_first[k] = journeys[ks[i + 1]][0][0] if i + 1 < len(ks) else None
        bounds = {k: (j[0][0], j[-1][0]) for k, j in journeys.items()}
    if spec.collapse_repeats:
        for k, j in journeys.items():
            journeys[k] = [e for i, e in enumerate(j) if i == 0 or j[i - 1][1] != e[1]]
    if spec.start_end:
        for k, j in journeys.items():
            first, last = bounds[k]
            end = END
            if spec.churn_days is not None:
                nf = nxt_first[k]
                silence = (nf if nf is not None else until) - last
                end = CHURNED if silence >= spec.churn_us else END
            journeys[k] = [(first, START), *j, (last, end)]
    return journeys


def reference_median_gap_minutes(events: pd.DataFrame) -> float | None:
    """The median time between a user's consecutive events, minutes (plain pandas sorts;
    rows without a user or a time ignored); None without two events of one user."""
    gaps = []
    e = events.dropna(subset=["user_id", "ts"])
    for _, g in e.groupby("user_id"):
        t = sorted(_us(x) for x in g["ts"])
        gaps += [b - a for a, b in zip(t, t[1:], strict=False)]
    if not gaps:
        return None
    return float(pd.Series(gaps, dtype=float).median()) / 60_000_000


def reference_transitions(journeys: dict) -> dict[tuple[str, str], list[float]]:
    """``{(a, b): [seconds of each a -> b]}`` over consecutive rows of each journey."""
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for j in journeys.values():
        for (t0, a), (t1, b) in zip(j, j[1:], strict=False):
            out[(a, b)].append((t1 - t0) / 1e6)
    return dict(out)


def reference_reach(journeys: dict) -> dict[str, int]:
    """``{step: distinct users with the step}``."""
    users: dict[str, set] = defaultdict(set)
    for (u, _), j in journeys.items():
        for _, s in j:
            users[s].add(u)
    return {s: len(v) for s, v in users.items()}


def reference_paths(journeys: dict, anchor: str, depth: int, direction: str = "after") -> Counter:
    """``Counter({path tuple: journeys})`` from/to the first anchor of each journey."""
    out: Counter = Counter()
    for j in journeys.values():
        steps = [s for _, s in j]
        if anchor not in steps:
            continue
        a = steps.index(anchor)
        if direction == "after":
            out[tuple(steps[a : a + depth + 1])] += 1
        else:
            out[tuple(steps[max(0, a - depth) : a + 1])] += 1
    return out


def reference_node_users(
    journeys: dict, anchor: str, depth: int, direction: str = "after"
) -> dict[tuple[int, str], int]:
    """``{(level, step): distinct users}`` at each node of the paths from/to the anchor."""
    seen: dict[tuple[int, str], set] = defaultdict(set)
    for (user, _), j in journeys.items():
        steps = [s for _, s in j]
        if anchor not in steps:
            continue
        a = steps.index(anchor)
        for k in range(depth + 1):
            i = a + k if direction == "after" else a - k
            if 0 <= i < len(steps):
                seen[(k if direction == "after" else -k, steps[i])].add(user)
    return {k: len(v) for k, v in seen.items()}


def reference_between(journeys: dict, start: str, end: str, depth: int) -> Counter:
    """``Counter({(path, reached, longer): journeys})`` from the first ``start`` to the next
    ``end`` (see :func:`crm_helpers.journeys.paths.between`)."""
    out: Counter = Counter()
    for j in journeys.values():
        steps = [s for _, s in j]
        if start not in steps:
            continue
        a = steps.index(start)
        try:
            b = steps.index(end, a + 1)
        except ValueError:
            out[((start,), False, False)] += 1
            continue
        if b - a <= depth:
            out[(tuple(steps[a : b + 1]), True, False)] += 1
        else:
            out[((*steps[a : a + depth + 1], "…", end), True, True)] += 1
    return out


def reference_step_matrix(
    journeys: dict, max_steps: int, group_of: dict | None = None, until: str | None = None
) -> dict[tuple[str, int, str], int]:
    """``{(group, position, step): journeys}`` (group ``"all"`` without ``group_of``); with
    ``until``, each journey's steps before its first ``until`` only."""
    out: Counter = Counter()
    for k, j in journeys.items():
        g = "all" if group_of is None else group_of.get(k)
        if g is None:
            continue
        steps = [s for _, s in j]
        if until is not None and until in steps:
            j = j[: steps.index(until)]
        for pos, (_, s) in enumerate(j[:max_steps], 1):
            out[(str(g), pos, s)] += 1
    return dict(out)


def reference_variants(
    journeys: dict, max_steps: int, goal: str | None = None, window_days: float | None = None
) -> dict[tuple[tuple, bool], tuple[int, int]]:
    """``{(path, truncated): (journeys, converted)}``."""
    out: dict = {}
    for j in journeys.values():
        key = (tuple(s for _, s in j[:max_steps]), len(j) > max_steps)
        conv = int(goal is not None and reference_converted(j, goal, window_days))
        n, c = out.get(key, (0, 0))
        out[key] = (n + 1, c + conv)
    return out


def reference_converted(j: Journey, goal: str, window_days: float | None) -> bool:
    """The goal within ``window_days`` of the journey's first time (anywhere if None)."""
    t0 = j[0][0]
    lim = None if window_days is None else round(window_days * 86_400 * 1_000_000)
    return any(s == goal and (lim is None or t - t0 <= lim) for t, s in j)


def reference_conformance(journeys: dict, intended: Sequence[str]) -> Counter:
    """``Counter({(matched, next_step): journeys})`` by greedy in-order matching."""
    out: Counter = Counter()
    m = len(intended)
    for j in journeys.values():
        steps = [s for _, s in j]
        pos, matched = -1, 0
        for s in intended:
            try:
                pos = steps.index(s, pos + 1)
            except ValueError:
                break
            matched += 1
        nxt = None
        if 0 < matched < m and pos + 1 < len(steps):
            nxt = steps[pos + 1]
        out[(matched, nxt)] += 1
    return out


def reference_stage_journeys(journeys: dict, stage_map: dict) -> dict:
    """Journeys in stages: steps mapped, steps without a stage dropped (synthetic kept),
    consecutive repeats collapsed; journeys left empty are dropped."""
    out = {}
    for k, j in journeys.items():
        rows = [
            (t, s if s in (START, END, CHURNED) else stage_map[s])
            for t, s in j
            if s in (START, END, CHURNED) or s in stage_map
        ]
        rows = [e for i, e in enumerate(rows) if i == 0 or rows[i - 1][1] != e[1]]
        if rows:
            out[k] = rows
    return out

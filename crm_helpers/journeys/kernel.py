"""Journeys on sorted arrays: the embedded engine's kernel path (numpy, vectorized).

Semantics
---------
The same journeys as :func:`crm_helpers.journeys.core.prepare` (steps, tie rule, sessions,
collapsing, ``[start]`` / ``[end]`` / ``[churned]``; see that module's docstring), computed
from :class:`~crm_helpers.store.arrays.EventArrays` instead of an Ibis table, and the
analyses the report reads from them: directly-follows counts with times
(:func:`edge_counts`, as :func:`crm_helpers.journeys.graph.transitions`), paths from / to
the first anchor (:func:`path_counts`, as :func:`crm_helpers.journeys.paths.paths`),
distinct users at each path node (:func:`node_user_counts`) and reach and loops per step
(:func:`step_counts`). The wrappers in :mod:`~crm_helpers.journeys.graph` and
:mod:`~crm_helpers.journeys.paths` turn these counts into the same frames as the Ibis path.

*Steps.* Each event code maps to a step code through a lookup table (``spec.step_of`` of
its name); step rules are applied in order on the rows of their event whose property
columns match (first rule wins). The arrays' rows are already restricted to non-missing
users, events and times; ``start`` / ``end`` filter ``t``.

*Tie rule.* :class:`EventArrays` orders a user's events at one time by EVENT code, the
journeys by STEP code (``[start]`` first, then step names in code-point order, then the
end nodes). After mapping, only the tie groups (same user, same ``t``) whose step codes
are out of order are re-sorted, by step code (and, with ``session_column``, by session
first), stably; a mapping that keeps the order (the raw names) costs one comparison pass.

*Journeys.* One per user; with ``session_gap_minutes``,
:func:`crm_helpers.store.ops.sessionize` over the kept rows; with ``session_column``,
the user's rows sharing one value (missing values: one journey per user). When every
(user, session) pair occupies one run of consecutive rows (sessions do not interleave in
time) the runs are the journeys; otherwise the rows are sorted by ``(user, session, t,
step)`` once.

*Not covered (the Ibis path runs instead, :class:`NotCovered`).* Step rules whose ``where``
names a column the arrays do not carry, and a ``session_column`` they do not carry.
Everything else of :class:`~crm_helpers.journeys.core.JourneySpec` is covered. Analyses
without a kernel yet, on the Ibis path (each records it): ``transitions(groups=...)``
(and so ``compare_transitions``), ``between``, ``variants``, ``step_matrix``,
``conformance`` / ``conformance_table``, ``goal_flags``, and everything on journeys
restricted to groups (``restrict``, ``group_paths``) or recoded to stages
(``stage_journeys``): those drop the kernel.

*Ambiguity shared with the Ibis path.* With ``session_column`` and ``churn_days``, two
journeys of one user starting at the same time have no defined "next journey"; the
kernel takes them in the order of their first rows, the engine's ``LEAD`` either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from crm_helpers import events as ev
from crm_helpers.journeys.core import CHURNED, END, START, SYNTHETIC, JourneySpec
from crm_helpers.store import ops
from crm_helpers.store.arrays import EventArrays

__all__ = [
    "KernelJourneys",
    "NotCovered",
    "PathCounts",
    "build",
    "edge_counts",
    "node_user_counts",
    "path_counts",
    "step_counts",
]


class NotCovered(Exception):
    """The spec asks for something the arrays cannot answer (the Ibis path runs)."""


@dataclass(frozen=True)
class KernelJourneys:
    """Coded journey rows as arrays, in journey order (tie rule; module docstring).

    Attributes
    ----------
    code
        int32 ``(n,)``: step code per row (``vocab`` positions), synthetic rows included.
    t
        int64 ``(n,)``: epoch microseconds.
    offsets
        int64 ``(n_journeys + 1,)``: journey ``j``'s rows are ``offsets[j]:offsets[j + 1]``.
    user
        int64 ``(n_journeys,)``: the journey's user code (``user_ids`` positions),
        non-decreasing.
    user_ids
        The user ids by code.
    vocab
        Step names by code, as :attr:`crm_helpers.journeys.core.Prepared.vocab`.
    """

    code: np.ndarray
    t: np.ndarray
    offsets: np.ndarray
    user: np.ndarray
    user_ids: np.ndarray
    vocab: tuple[str, ...]

    @property
    def n_journeys(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @cached_property
    def jid(self) -> np.ndarray:
        """int64 ``(n,)``: journey number per row."""
        return np.repeat(np.arange(self.n_journeys, dtype=np.int64), np.diff(self.offsets))

    def decode(self, codes: pd.Series) -> pd.Series:
        """Codes -> step names (missing stays missing)."""
        names = dict(enumerate(self.vocab))
        vals = [None if pd.isna(c) else names[int(c)] for c in codes]
        return pd.Series(vals, index=codes.index, dtype=object)


def vocab_of(arrays: EventArrays, spec: JourneySpec) -> tuple[str, ...]:
    """The step vocabulary of :func:`crm_helpers.journeys.core.prepare` for these names."""
    clash = [n for n in arrays.event_names if n in SYNTHETIC]
    if clash:
        raise ValueError(f"event names {clash} clash with the synthetic journey nodes")
    for step, event, _ in spec.rules or ():
        if arrays.event_code(event) is None:
            raise ValueError(f"step rule {step!r}: event {event!r} does not occur in the data")
    steps = {spec.step_of(n) for n in arrays.event_names} - {None}
    steps |= {r[0] for r in spec.rules or ()}
    return (START, *sorted(steps), END, CHURNED)


def _match(col: np.ndarray, want: object) -> np.ndarray:
    """:func:`crm_helpers.events.match` on one property column (missing never matches a
    value; ``None`` matches missing)."""
    s = pd.Series(col, copy=False)
    missing = s.isna().to_numpy()
    if want is None:
        return missing
    if isinstance(want, tuple):
        return s.isin(list(want)).to_numpy() & ~missing
    return s.eq(want).to_numpy(dtype=bool, na_value=False) & ~missing


def _step_codes(
    arrays: EventArrays, spec: JourneySpec, vocab: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """int32 step code per array row (-1: the event maps to no step) and the lookup table
    event code -> step code it used (before the rules)."""
    code_of = {s: i for i, s in enumerate(vocab)}
    lut = np.full(len(arrays.event_names), -1, dtype=np.int32)
    for i, name in enumerate(arrays.event_names):
        step = spec.step_of(name)
        if step is not None:
            if step not in code_of:
                raise ValueError(f"step {step!r} of event {name!r} is not in the vocabulary")
            lut[i] = code_of[step]
    shift = lut[0] if lut.size else 0
    if not spec.rules and shift >= 0 and np.array_equal(lut, np.arange(lut.size) + shift):
        # every event its own step, codes shifted by a constant (the raw names): one add,
        # not a gather through the table (a third of the counts' time at 10M events)
        code = np.add(arrays.event, np.int32(shift), dtype=np.int32)
    else:
        code = lut[arrays.event]
    if spec.rules:
        done = np.zeros(arrays.n_events, dtype=bool)
        for step, event, where in spec.rules:
            ec = arrays.event_code(event)
            if ec is None:
                continue
            hit = (arrays.event == ec) & ~done
            for col, want in (where or {}).items():
                if col not in arrays.columns:
                    raise NotCovered(f"step rule {step!r} filters on {col!r}, not in the arrays")
                hit &= _match(arrays.columns[col], want)
            code[hit] = code_of[step]
            done |= hit
    return code, lut


def _tie_perm(user: np.ndarray, t: np.ndarray, key: np.ndarray) -> np.ndarray | None:
    """Permutation sorting each (user, t) tie group by ``key`` (stable); None when every
    group is in order already."""
    n = t.shape[0]
    if n < 2:
        return None
    same = (user[1:] == user[:-1]) & (t[1:] == t[:-1])
    bad = same & (key[1:] < key[:-1])
    if not bad.any():
        return None
    head = np.ones(n, dtype=bool)
    head[1:] = ~same
    gid = np.cumsum(head) - 1
    flag = np.zeros(int(gid[-1]) + 1, dtype=bool)
    flag[gid[1:][bad]] = True
    rows = np.flatnonzero(flag[gid])
    perm = np.arange(n)
    perm[rows] = rows[np.lexsort((key[rows], gid[rows]))]
    return perm


def build(
    arrays: EventArrays, spec: JourneySpec | None = None, vocab: Sequence[str] | None = None
) -> KernelJourneys:
    """Events as arrays -> coded journeys (module docstring).

    Parameters
    ----------
    arrays
        The events (every row a real event of the data the Ibis path would read).
    spec
        As :func:`crm_helpers.journeys.core.prepare` (default: raw names, one journey per
        user).
    vocab
        The step vocabulary (a :class:`Prepared`'s, so codes agree); default from the names.

    Raises
    ------
    NotCovered
        When the spec needs a column the arrays do not carry.
    """
    spec = spec or JourneySpec()
    vocab = tuple(vocab) if vocab is not None else vocab_of(arrays, spec)
    v = len(vocab)
    if spec.session_column and spec.session_column not in arrays.columns:
        raise NotCovered(f"session_column {spec.session_column!r} is not in the arrays")
    code, lut = _step_codes(arrays, spec, vocab)
    kept = lut[lut >= 0]
    # the arrays' tie order (event code) is the step order when the kept codes rise with
    # the event codes and no rule re-codes a row: then no tie group needs a look
    in_order = not spec.rules and bool(np.all(kept[1:] >= kept[:-1]))
    keep = None
    if kept.shape[0] < lut.shape[0] or spec.rules:
        keep = code >= 0
    if spec.start is not None or spec.end is not None:
        keep = np.ones(arrays.n_events, dtype=bool) if keep is None else keep
        if spec.start is not None:
            keep &= arrays.t >= ev.ts_us(spec.start)
        if spec.end is not None:
            keep &= arrays.t < ev.ts_us(spec.end)
    if keep is None or keep.all():
        user, t = arrays.user, arrays.t
        sess_col = arrays.columns.get(spec.session_column) if spec.session_column else None
    else:
        idx = np.flatnonzero(keep)
        user, t, code = arrays.user[idx], arrays.t[idx], code[idx]
        sess_col = arrays.columns[spec.session_column][idx] if spec.session_column else None

    if sess_col is not None:
        sess, uniq = pd.factorize(sess_col)  # missing -> -1: one journey per user
        sess = sess.astype(np.int64)
        perm = _tie_perm(user, t, (sess + 1) * v + code)
        if perm is not None:
            user, t, code, sess = user[perm], t[perm], code[perm], sess[perm]
        k = len(uniq) + 1
        pair = user.astype(np.int64) * k + sess + 1
        offsets = ops.segment_offsets(pair)
        runs = pair[offsets[:-1]]
        if np.unique(runs).shape[0] < runs.shape[0]:  # sessions interleave: sort once
            o = np.lexsort((code, t, sess, user))
            user, t, code, pair = user[o], t[o], code[o], pair[o]
            offsets = ops.segment_offsets(pair)
    else:
        perm = None if in_order else _tie_perm(user, t, code)
        if perm is not None:
            user, t, code = user[perm], t[perm], code[perm]
        if spec.session_gap_minutes is not None:
            offsets = ops.segment_offsets(ops.sessionize(user, t, spec.session_gap_minutes))
        elif user is arrays.user:  # every row kept: the users' offsets are the journeys'
            offsets = arrays.offsets
        else:
            offsets = ops.segment_offsets(user)
    n_j = offsets.shape[0] - 1
    juser = user[offsets[:-1]].astype(np.int64)
    if spec.start_end and n_j:  # two gathers scattered over ``t``: only when read
        first, last = t[offsets[:-1]], t[offsets[1:] - 1]

    if spec.collapse_repeats and code.shape[0] > 1:
        rep = np.zeros(code.shape[0], dtype=bool)
        rep[1:] = code[1:] == code[:-1]
        rep[offsets[:-1]] = False
        kept = np.flatnonzero(~rep)
        code, t = code[kept], t[kept]
        offsets = np.searchsorted(kept, offsets).astype(np.int64)

    if spec.start_end and n_j:
        end_code = np.full(n_j, vocab.index(END), dtype=np.int32)
        if spec.churn_us is not None:
            until = (
                ev.ts_us(spec.observed_until)
                if spec.observed_until is not None
                else int(last.max())
            )
            # the last event time of the restricted data (before collapsing: `t` may have
            # lost a journey's repeated last events, `last` has not)
            o = np.lexsort((np.arange(n_j), first, juser))  # a user's journeys by first time
            nxt = np.full(n_j, until, dtype=np.int64)
            same = juser[o][1:] == juser[o][:-1]
            nxt[o[:-1][same]] = first[o[1:][same]]
            end_code[nxt - last >= spec.churn_us] = vocab.index(CHURNED)
        code, t, offsets = _with_ends(code, t, offsets, first, last, end_code)
    return KernelJourneys(
        code=code.astype(np.int32, copy=False),
        t=t.astype(np.int64, copy=False),
        offsets=offsets.astype(np.int64, copy=False),
        user=juser,
        user_ids=arrays.user_ids,
        vocab=vocab,
    )


def _with_ends(code, t, offsets, first, last, end_code):
    """Insert ``[start]`` before and the end node after each journey's rows."""
    n, n_j = code.shape[0], offsets.shape[0] - 1
    two = 2 * np.arange(n_j + 1, dtype=np.int64)
    jid = np.repeat(np.arange(n_j, dtype=np.int64), np.diff(offsets))
    c = np.empty(n + 2 * n_j, dtype=np.int32)
    tt = np.empty(n + 2 * n_j, dtype=np.int64)
    pos = np.arange(n, dtype=np.int64) + 2 * jid + 1
    c[pos], tt[pos] = code, t
    s, e = offsets[:-1] + two[:-1], offsets[1:] + two[:-1] + 1
    c[s], tt[s] = 0, first
    c[e], tt[e] = end_code, last
    return c, tt, offsets + two


# --- analyses -------------------------------------------------------------------------------


def _pair_codes(kj: KernelJourneys) -> tuple[np.ndarray, int]:
    """``code[i] * V + code[i + 1]`` per consecutive row pair, ``V * V`` across journeys."""
    v = len(kj.vocab)
    c = kj.code
    if c.shape[0] < 2:
        return np.zeros(0, dtype=np.int64), v
    dt = np.int32 if v * v + 1 < 2**31 else np.int64
    pair = c[:-1].astype(dt, copy=False) * v
    pair += c[1:]
    pair[kj.offsets[1:-1] - 1] = v * v
    return pair, v


def edge_counts(kj: KernelJourneys, *, timings: bool = True) -> dict[str, np.ndarray]:
    """Directly-follows counts per ``(code, nxt)`` (and ``median_us``, ``p90_us``: the
    linear-interpolation quantiles of ``t_next - t``), in code-pair order, as arrays; as a
    DataFrame it is the frame :func:`crm_helpers.journeys.graph._edges_frame` reads."""
    pair, v = _pair_codes(kj)
    cnt = np.bincount(pair, minlength=v * v + 1)[: v * v]
    cells = np.flatnonzero(cnt)
    out = {
        "code": (cells // v).astype(np.int32),
        "nxt": (cells % v).astype(np.int32),
        "count": cnt[cells].astype(np.int64),
    }
    if timings:
        n_cells = cnt[cells]
        dt = kj.t[1:] - kj.t[:-1]
        if v * v <= np.iinfo(np.uint16).max and cells.shape[0] <= 5_000:
            # a stable radix sort of the 16-bit pair codes (the across-journey pairs, code
            # V * V, sort last and are cut off), then per edge a partition for the four
            # order statistics: O(n) (a loop over the edges, not the rows)
            o = np.argsort(pair.astype(np.uint16), kind="stable")[: int(n_cells.sum())]
            d = _partitioned(dt[o], n_cells)
        else:
            valid = pair < v * v
            p, d = pair[valid].astype(np.int64), dt[valid]
            bits = int(d.max()).bit_length() if d.size else 0
            if bits + int(v * v).bit_length() <= 62:
                key = (p << bits) | d
                key.sort()
                d = key & ((1 << bits) - 1)
            else:
                d = d[np.lexsort((d, p))]
        starts = np.concatenate([[0], np.cumsum(cnt[cells])[:-1]]).astype(np.int64)
        n = cnt[cells].astype(np.int64)
        for q, name in ((0.5, "median_us"), (0.9, "p90_us")):
            pos = q * (n - 1)
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, n - 1)
            a, b = d[starts + lo].astype(float), d[starts + hi].astype(float)
            out[name] = a + (b - a) * (pos - lo)
    return out


def _quantile_ranks(n: np.ndarray) -> list[np.ndarray]:
    """The ranks (0-based) the linear median and p90 of ``n`` sorted values read."""
    out = []
    for q in (0.5, 0.9):
        lo = np.floor(q * (n - 1)).astype(np.int64)
        out += [lo, np.minimum(lo + 1, n - 1)]
    return out


def _partitioned(d: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``d`` grouped in runs of lengths ``n``, each run partitioned so that the ranks of
    :func:`_quantile_ranks` hold their sorted values (enough for :func:`edge_counts`)."""
    ranks = _quantile_ranks(n)
    start = 0
    for g, size in enumerate(n.tolist()):
        kth = sorted({int(r[g]) for r in ranks})
        d[start : start + size] = np.partition(d[start : start + size], kth)
        start += size
    return d


def _first_anchor_rows(kj: KernelJourneys, anchor_code: int) -> tuple[np.ndarray, np.ndarray]:
    """Row index of each journey's first row with ``anchor_code`` and that journey's number
    (journey order): per journey, the first anchor row at or after its first row (one
    search of the journeys' starts among the anchor rows), kept when inside the journey."""
    rows = np.flatnonzero(kj.code == anchor_code)
    if rows.size == 0:
        return rows, rows
    pos = np.searchsorted(rows, kj.offsets[:-1])
    j = np.flatnonzero(pos < rows.size)
    first = rows[pos[j]]
    inside = first < kj.offsets[j + 1]
    return first[inside], j[inside]


def _neighbours(
    kj: KernelJourneys, rows: np.ndarray, j: np.ndarray, depth: int, direction: str
) -> np.ndarray:
    """int64 ``(len(rows), depth + 1)``: column ``k`` the code ``k`` rows after (before)
    each row within its journey (``j``: the rows' journey numbers), -1 past the journey's
    end (start)."""
    lo, hi = kj.offsets[j], kj.offsets[j + 1]
    out = np.full((rows.size, depth + 1), -1, dtype=np.int64)
    n = kj.code.shape[0]
    for k in range(depth + 1):  # depth + 1 vector steps, not a loop over rows
        r = rows + k if direction == "after" else rows - k
        ok = (r < hi) & (r >= lo)
        out[ok, k] = kj.code[np.clip(r[ok], 0, max(n - 1, 0))]
    return out


@dataclass(frozen=True)
class PathCounts:
    """Distinct first-anchor paths: ``codes`` int64 ``(n_paths, depth + 1)`` (column ``k``
    the k-th step after / before the anchor, -1 past the journey's edge) and ``journeys``
    (int64 per path)."""

    codes: np.ndarray
    journeys: np.ndarray

    def frame(self) -> pd.DataFrame:
        """Columns ``s0..s{depth}`` (NaN past the edge) and ``journeys``: the frame
        :func:`crm_helpers.journeys.paths._paths_frame` reads."""
        cols = [f"s{k}" for k in range(self.codes.shape[1])]
        c = self.codes
        out = pd.DataFrame(np.where(c >= 0, c, np.nan).astype(float), columns=cols)
        out["journeys"] = self.journeys
        return out


def path_counts(kj: KernelJourneys, anchor_code: int, depth: int, direction: str) -> PathCounts:
    """Journeys per distinct path of each journey's first anchor (:class:`PathCounts`)."""
    m = _neighbours(kj, *_first_anchor_rows(kj, anchor_code), depth, direction)
    if m.shape[0] == 0:
        return PathCounts(m, np.zeros(0, dtype=np.int64))
    base = len(kj.vocab) + 1
    if base ** (depth + 1) < 2**62:  # one integer key per path
        w = base ** np.arange(depth + 1, dtype=np.int64)
        keys, counts = np.unique((m + 1) @ w, return_counts=True)
        uniq = (keys[:, None] // w) % base - 1
    else:
        uniq, counts = np.unique(m, axis=0, return_counts=True)
    return PathCounts(uniq, counts.astype(np.int64))


def node_user_counts(
    kj: KernelJourneys, anchor_code: int, depth: int, direction: str
) -> pd.DataFrame:
    """Distinct users per ``(level, code)`` on the first-anchor paths: ``level`` (0, 1 ...
    after; 0, -1 ... before), ``code``, ``users``."""
    rows, j = _first_anchor_rows(kj, anchor_code)
    m = _neighbours(kj, rows, j, depth, direction)
    u = kj.user[j]
    v, nu = len(kj.vocab), max(len(kj.user_ids), 1)
    lvl = np.broadcast_to(np.arange(depth + 1, dtype=np.int64), m.shape)
    ok = m >= 0
    key = (lvl[ok] * v + m[ok]) * nu + np.broadcast_to(u[:, None], m.shape)[ok]
    cells = np.unique(key) // nu
    cell, users = np.unique(cells, return_counts=True)
    sign = 1 if direction == "after" else -1
    return pd.DataFrame(
        {
            "level": sign * (cell // v),
            "code": (cell % v).astype(np.int32),
            "users": users.astype(np.int64),
        }
    )


@dataclass(frozen=True)
class StepCounts:
    """Per step code: rows, journeys, repeating journeys and distinct users (and the
    number of distinct users with a journey)."""

    frame: pd.DataFrame
    n_users: int


def step_counts(kj: KernelJourneys) -> StepCounts:
    """``code, events, journeys, repeating_journeys, users`` for every code present."""
    v = len(kj.vocab)
    events = np.bincount(kj.code, minlength=v)
    per_j = ops.event_counts(kj.jid, kj.code, kj.n_journeys, v)
    row_user = kj.user[kj.jid]
    per_u = ops.event_counts(row_user, kj.code, len(kj.user_ids), v)
    if isinstance(per_j, np.ndarray):
        journeys, repeating = (per_j > 0).sum(0), (per_j > 1).sum(0)
    else:
        journeys = np.bincount(per_j.event, minlength=v)
        repeating = np.bincount(per_j.event[per_j.count > 1], minlength=v)
    if isinstance(per_u, np.ndarray):
        users = (per_u > 0).sum(0)
    else:
        users = np.bincount(per_u.event, minlength=v)
    present = np.flatnonzero(events)
    n_users = int(np.count_nonzero(np.diff(kj.user))) + 1 if kj.n_journeys else 0
    frame = pd.DataFrame(
        {
            "code": present.astype(np.int32),
            "events": events[present].astype(np.int64),
            "journeys": journeys[present].astype(np.int64),
            "repeating_journeys": repeating[present].astype(np.int64),
            "users": users[present].astype(np.int64),
        }
    )
    return StepCounts(frame, n_users)


def of(prep: object) -> KernelJourneys | None:
    """The kernel journeys of a :class:`~crm_helpers.journeys.core.Prepared` that carries
    its events' arrays (built on first use and kept in ``prep.memo``); None without arrays
    or when the spec is not covered (:class:`NotCovered`: the Ibis path runs)."""
    arrays = getattr(prep, "arrays", None)
    if arrays is None:
        return None
    key = ("kernel", id(arrays))
    if key not in prep.memo:
        try:
            prep.memo[key] = build(arrays, prep.spec, prep.vocab)
        except NotCovered:
            prep.memo[key] = None
    return prep.memo[key]

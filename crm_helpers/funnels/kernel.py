"""The funnel on sorted arrays: :mod:`crm_helpers.funnels.core`'s semantics in numpy.

Computes exactly what :func:`crm_helpers.funnels.core.user_funnel` and
:func:`~crm_helpers.funnels.core.funnel_table` compute (the definitions are in that
module's docstring: moments, *ordered* / *strict* / *any_order*, the conversion window,
the entry's date range, per-step gaps, exclusions, ``count="attempts"``, ``where`` filters
and the outputs), on :class:`crm_helpers.store.EventArrays` (events sorted by
``(user, t, event)``, integer-coded). Every step is a vectorised pass over all users at
once; there is no loop over users.

Coverage
--------
Every :class:`~crm_helpers.funnels.core.FunnelSpec` is covered, with two exceptions that
take the Ibis path (:func:`uncovered` names the reason): a ``where`` filter (of a step or
an exclusion) on a property column the arrays do not carry, and ``extra_partition``
(per ``(user, value)`` funnels; :func:`user_funnel_frame` has no such parameter).
:func:`crm_helpers.funnels.core.funnel_table` takes the arrays (``arrays=``);
:func:`~crm_helpers.funnels.core.user_funnel` stays on the Ibis path (it returns a lazy
table that the analyses join to users in the engine): :func:`user_funnel_frame` is its
pandas result computed here, for callers that want the per-unit rows in memory.

Algorithm
---------
*Rows.* The rows a funnel can use (``t`` in ``[start, end + W]``; unless *strict*, which
needs the full stream, the rows matching a step or an exclusion) are gathered once; each
distinct step matcher and each exclusion gets a boolean per row (event code, then ``where``
on those rows only). *Moments*: rows of one ``(user, t)`` are adjacent (the sort), so moment boundaries
are where ``user`` or ``t`` changes and a moment's flags are the OR over its rows
(``np.logical_or.reduceat``).

*Partition keys per moment.* ``att``: the index of the latest step-1 moment at or before the
moment (forward fill, ``np.maximum.accumulate``), with ``count="attempts"``; ``seg``: per
distinct set of exclusions covering a step, the running count of their moments (inclusive).
Two moments are in one partition when user, ``att`` and ``seg`` agree.

*ordered.* ``c_1`` = step-1 moments in range (``s = t``). ``c_k``: for each step-``k`` moment
``q``, the LATEST ``c_{k-1}`` moment ``j`` with ``(user_j, t_j) <= (user_q, t_q - g)``,
``g = max(min_gap, 1us)`` (a ``searchsorted`` of the moment index when ``g = 1us``, as
moments of one user have distinct times; a merge of the ``(user, t)`` keys by ``np.lexsort``
otherwise). ``q`` ends a valid chain iff ``j`` exists in ``q``'s partition, ``t_q - s_j <= W``
and ``t_q - t_j <= max_gap``; then ``s_q = s_j``, ``pv_q = t_j``. Checking only the latest
``j`` is exact: ``s`` is non-decreasing in ``t`` over ``c_{k-1}`` (core's lemma) and the
partition keys are non-decreasing in ``t``, so an earlier ``j`` fails whenever the latest
one does.

*strict.* The predecessor of ``q`` is the moment just before it (``q - 1``) over the full
stream, when in ``q``'s partition; the rest as *ordered*.

*any_order.* ``next_j`` per moment by a backward fill (reversed ``np.minimum.accumulate``)
per step, ``c_k`` by sorting the ``n`` columns, then per-user ``min`` / ``max`` by
``reduceat`` over the users' moment ranges.

*Per unit* (user or attempt): ``r_k, e_k, p_k`` = ``t, s, pv`` of the unit's first ``c_k``
moment (all three non-decreasing in ``t``). Attempts are numbered by rank among the user's
step-1 moments in range (all of them are at or after ``start``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from crm_helpers.events import ts_us as _ts_us

__all__ = [
    "KernelFunnel",
    "compute",
    "needed_columns",
    "table_values",
    "uncovered",
    "user_funnel_frame",
]

US_PER_SECOND = 1_000_000
NULL = np.iinfo(np.int64).min  # a missing time (int64 epoch microseconds)
_MAX = np.iinfo(np.int64).max
_QUANTILES = (0.5, 0.25, 0.75, 0.9)  # as core._QUANTILES: med, p25, p75, p90


def needed_columns(spec: Any) -> tuple[str, ...]:
    """The property columns the spec's ``where`` filters read (steps and exclusions)."""
    cols: list[str] = []
    for m in [*spec.step_list, *spec.exclusions]:
        for c in m.where or {}:
            if c not in cols:
                cols.append(c)
    return tuple(cols)


def uncovered(spec: Any, arrays: Any, *, extra_partition: str | None = None) -> str | None:
    """Why the kernel cannot compute ``spec`` on ``arrays`` (None: it can)."""
    if extra_partition is not None:
        return "extra_partition"
    missing = [c for c in needed_columns(spec) if c not in arrays.columns]
    if missing:
        return f"where column(s) {missing} not in the arrays"
    return None


# --- rows and moments ----------------------------------------------------------------------


def _where_ok(col: np.ndarray, where: Mapping[str, object] | None, name: str) -> np.ndarray:
    """``crm_helpers.events.match`` for one column on its rows (nulls never match a value)."""
    val = where[name]
    s = pd.Series(col)
    missing = s.isna().to_numpy()
    if isinstance(val, tuple):
        return s.isin(list(val)).to_numpy(dtype=bool) & ~missing
    if val is None:
        return missing
    return s.eq(val).to_numpy(dtype=bool) & ~missing


def _matcher_rows(arrays: Any, idx: np.ndarray | None, ev: np.ndarray, matcher: Any) -> np.ndarray:
    """Boolean per gathered row: the row is ``matcher``'s event and meets its filters."""
    code = arrays.event_code(matcher.event)
    if code is None:
        return np.zeros(ev.shape[0], dtype=bool)
    f = ev == code
    if matcher.where:
        pos = np.flatnonzero(f)
        rows = pos if idx is None else idx[pos]
        ok = np.ones(pos.shape[0], dtype=bool)
        for c in matcher.where:
            ok &= _where_ok(arrays.columns[c][rows], matcher.where, c)
        f[pos[~ok]] = False
    return f


@dataclass
class _Moments:
    """One funnel's moments: ``user``, ``t``, step flags (one per step) and exclusion flags."""

    user: np.ndarray
    t: np.ndarray
    step: list[np.ndarray]
    excl: list[np.ndarray]


def _moments(arrays: Any, spec: Any) -> _Moments:
    W = spec.window_us
    steps = spec.step_list
    mask = None
    if spec.mode != "strict":
        codes = [arrays.event_code(m.event) for m in [*steps, *spec.exclusions]]
        lut = np.zeros(len(arrays.event_names) + 1, dtype=bool)
        lut[[c for c in codes if c is not None]] = True
        mask = lut[arrays.event]
    if spec.start is not None:
        m = arrays.t >= _ts_us(spec.start)
        mask = m if mask is None else mask & m
    if spec.end is not None:
        m = arrays.t <= _ts_us(spec.end) + W
        mask = m if mask is None else mask & m
    if mask is None:
        idx, u, t, ev = None, arrays.user, arrays.t, arrays.event
    else:
        idx = np.flatnonzero(mask)
        u, t, ev = arrays.user[idx], arrays.t[idx], arrays.event[idx]
    flags: dict[tuple, np.ndarray] = {}
    step_f = []
    for s in steps:
        key = s.matcher()
        if key not in flags:
            flags[key] = _matcher_rows(arrays, idx, ev, s)
        step_f.append(flags[key])
    excl_f = [_matcher_rows(arrays, idx, ev, x) for x in spec.exclusions]
    if spec.mode != "strict" and any(x.where for x in [*steps, *spec.exclusions]):
        # rows of a funnel event that match no step or exclusion (their filters fail) are
        # not moments (any_order starts windows at moments)
        keep = np.zeros(t.shape[0], dtype=bool)
        for f in {id(f): f for f in (*step_f, *excl_f)}.values():
            keep |= f
        if not keep.all():
            u, t = u[keep], t[keep]
            sub = {id(f): f[keep] for f in (*step_f, *excl_f)}
            step_f = [sub[id(f)] for f in step_f]
            excl_f = [sub[id(f)] for f in excl_f]
    n = t.shape[0]
    if n > 1:
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.not_equal(u[1:], u[:-1], out=new[1:])
        new[1:] |= t[1:] != t[:-1]
        if not new.all():
            starts = np.flatnonzero(new)
            uniq = _or_per_moment([*step_f, *excl_f], starts)
            return _Moments(
                u[starts], t[starts], [uniq[id(f)] for f in step_f], [uniq[id(f)] for f in excl_f]
            )
    return _Moments(u, t, step_f, excl_f)


def _or_per_moment(flags: list[np.ndarray], starts: np.ndarray) -> dict[int, np.ndarray]:
    """``id(flag)`` -> the flag OR-ed over each moment (rows ``starts[i]:starts[i + 1]``):
    the distinct flags packed as bits of one integer per row, one ``bitwise_or.reduceat``."""
    distinct = list({id(f): f for f in flags}.values())
    out: dict[int, np.ndarray] = {}
    for lo in range(0, len(distinct), 64):
        chunk = distinct[lo : lo + 64]
        dtype = np.uint8 if len(chunk) <= 8 else np.uint64
        bits = np.zeros(chunk[0].shape[0], dtype=dtype)
        for b, f in enumerate(chunk):
            bits |= f.view(np.uint8).astype(dtype, copy=False) << dtype(b)
        per = np.bitwise_or.reduceat(bits, starts)
        for b, f in enumerate(chunk):
            out[id(f)] = (per & dtype(1 << b)) != 0
    return out


def _in_range(t: np.ndarray, spec: Any) -> np.ndarray:
    ok = np.ones(t.shape[0], dtype=bool)
    if spec.start is not None:
        ok &= t >= _ts_us(spec.start)
    if spec.end is not None:
        ok &= t < _ts_us(spec.end)
    return ok


def _forward_fill_index(flag: np.ndarray) -> np.ndarray:
    """Per position, the index of the latest ``True`` at or before it (-1 before any)."""
    a = np.where(flag, np.arange(flag.shape[0]), -1)
    return np.maximum.accumulate(a) if a.size else a


def _segments(m: _Moments, spec: Any) -> list[np.ndarray | None]:
    """Per step ``k`` (index ``k - 1``): the running count of the exclusions covering it."""
    n = spec.n_steps
    out: list[np.ndarray | None] = [None] * n
    cache: dict[frozenset, np.ndarray] = {}
    for k in range(2, n + 1):
        cover = frozenset(
            i
            for i, x in enumerate(spec.exclusions)
            if spec.exclusion_range(x)[0] < k <= spec.exclusion_range(x)[1]
        )
        if not cover:
            continue
        if cover not in cache:
            hit = np.zeros(m.t.shape[0], dtype=bool)
            for i in cover:
                hit |= m.excl[i]
            cache[cover] = np.cumsum(hit)
        out[k - 1] = cache[cover]
    return out


def _latest_leq(pu: np.ndarray, pt: np.ndarray, qu: np.ndarray, qt: np.ndarray) -> np.ndarray:
    """For each query ``(qu, qt)``, the position of the last ``(pu, pt) <= (qu, qt)`` in the
    sorted pairs ``(pu, pt)`` (-1: none), by one ``np.lexsort`` of both."""
    np_, nq = pu.shape[0], qu.shape[0]
    tag = np.concatenate([np.zeros(np_, dtype=np.int8), np.ones(nq, dtype=np.int8)])
    order = np.lexsort((tag, np.concatenate([pt, qt]), np.concatenate([pu.astype(np.int64), qu])))
    is_p = order < np_
    before = np.cumsum(is_p) - 1  # candidates at or before each merged position, minus one
    out = np.empty(nq, dtype=np.int64)
    out[order[~is_p] - np_] = before[~is_p]
    return out


# --- chains ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelFunnel:
    """Per-unit results: ``r``, ``e``, ``p`` (shape ``(n_steps, n_units)``, int64 epoch
    microseconds, :data:`NULL` when not reached; ``p[0]`` unused), the unit's user code
    and, with ``count="attempts"``, its 1-based attempt number."""

    user: np.ndarray
    attempt: np.ndarray | None
    r: np.ndarray
    e: np.ndarray
    p: np.ndarray

    @property
    def steps_reached(self) -> np.ndarray:
        return (self.r != NULL).sum(axis=0).astype(np.int64)


def _chains_ordered_strict(m: _Moments, spec: Any) -> tuple[list, np.ndarray | None]:
    """``[(P_k, S_k, PV_k)]``: moments ending a valid chain at each step, their ``s``, ``pv``."""
    W = spec.window_us
    att = _forward_fill_index(m.step[0]) if spec.count == "attempts" else None
    segs = _segments(m, spec)
    P = np.flatnonzero(m.step[0] & _in_range(m.t, spec))
    S = m.t[P]
    PV = np.full(P.shape[0], NULL, dtype=np.int64)
    chains = [(P, S, PV)]
    for k in range(2, spec.n_steps + 1):
        lo, hi = spec.gap_us(k)
        shift = max(lo or 0, 1)
        if spec.mode == "strict":
            # the predecessor is the previous moment of the full stream, if it ends a chain
            Q = np.flatnonzero(m.step[k - 1])
            Q = Q[Q > 0]
            pos = np.searchsorted(P, Q - 1)
            pos_c = np.minimum(pos, max(P.shape[0] - 1, 0))
            ok = (pos < P.shape[0]) & (P[pos_c] == Q - 1) if P.size else np.zeros(Q.size, bool)
            if lo is not None:
                ok &= m.t[Q] - m.t[Q - 1] >= lo
        elif hi is not None and hi < shift:
            Q = np.zeros(0, dtype=np.int64)
            pos_c = Q
            ok = np.zeros(0, dtype=bool)
        else:
            Q = np.flatnonzero(m.step[k - 1])
            if shift == 1:
                # the latest c_{k-1} moment before q (moments of one user have distinct
                # times): a forward fill of positions in P, read just before q
                mark = np.full(m.t.shape[0], -1, dtype=np.int64)
                mark[P] = np.arange(P.shape[0])
                np.maximum.accumulate(mark, out=mark)
                pos = np.where(Q > 0, mark[Q - 1], -1)
            else:
                pos = _latest_leq(m.user[P], m.t[P], m.user[Q], m.t[Q] - shift)
            ok = pos >= 0
            pos_c = np.maximum(pos, 0)
            if not P.size:
                ok[:] = False
                pos_c = np.zeros(Q.size, dtype=np.int64)
        if P.size and Q.size:
            j = P[pos_c]
            tq = m.t[Q]
            ok &= m.user[j] == m.user[Q]
            ok &= tq - S[pos_c] <= W
            if hi is not None:
                ok &= tq - m.t[j] <= hi
            if att is not None:
                ok &= att[j] == att[Q]
            if segs[k - 1] is not None:
                ok &= segs[k - 1][j] == segs[k - 1][Q]
            P, S, PV = Q[ok], S[pos_c[ok]], m.t[j[ok]]
        else:
            P = np.zeros(0, dtype=np.int64)
            S = PV = np.zeros(0, dtype=np.int64)
        chains.append((P, S, PV))
    return chains, att


def _per_unit(m: _Moments, spec: Any, chains: list, att: np.ndarray | None) -> KernelFunnel:
    """First ``c_k`` moment per unit -> :class:`KernelFunnel`."""
    n = spec.n_steps
    P1 = chains[0][0]
    key = att if att is not None else m.user
    k1 = key[P1]
    first1 = np.ones(P1.shape[0], dtype=bool)
    first1[1:] = k1[1:] != k1[:-1]
    units = k1[first1]
    nu = units.shape[0]
    # unit key -> unit position (keys are user codes or moment indices: a small lookup)
    slot = np.full(int(units[-1]) + 1 if nu else 0, -1, dtype=np.int64)
    slot[units] = np.arange(nu)
    r = np.full((n, nu), NULL, dtype=np.int64)
    e = np.full((n, nu), NULL, dtype=np.int64)
    p = np.full((n, nu), NULL, dtype=np.int64)
    for k, (units_k, rk, ek, pk) in enumerate(_first_moments(m, chains, att)):
        at = slot[units_k]
        r[k, at] = rk
        e[k, at] = ek
        p[k, at] = pk
    uidx = P1[first1]
    user = m.user[uidx]
    attempt = None
    if att is not None:
        newu = np.ones(nu, dtype=bool)
        newu[1:] = user[1:] != user[:-1]
        start = _forward_fill_index(newu)
        attempt = (np.arange(nu) - start + 1).astype(np.int64)
    return KernelFunnel(user, attempt, r, e, p)


def _any_order(m: _Moments, spec: Any) -> KernelFunnel:
    n = spec.n_steps
    W = spec.window_us
    nm = m.t.shape[0]
    if nm == 0:
        z = np.zeros((n, 0), dtype=np.int64)
        return KernelFunnel(np.zeros(0, dtype=np.int32), None, z, z, z)
    cols = np.empty((nm, n), dtype=np.int64)
    for j in range(n):
        a = np.where(m.step[j], np.arange(nm), nm)
        nxt = np.minimum.accumulate(a[::-1])[::-1]
        ok = nxt < nm
        nc = np.minimum(nxt, nm - 1)
        ok &= m.user[nc] == m.user
        cols[:, j] = np.where(ok, m.t[nc], _MAX)
    cols.sort(axis=1)
    inr = _in_range(m.t, spec)
    newu = np.ones(nm, dtype=bool)
    newu[1:] = m.user[1:] != m.user[:-1]
    ustart = np.flatnonzero(newu)
    uid = np.cumsum(newu) - 1
    nu = ustart.shape[0]
    r = np.full((n, nu), NULL, dtype=np.int64)
    e = np.full((n, nu), NULL, dtype=np.int64)
    p = np.full((n, nu), NULL, dtype=np.int64)
    for k in range(n):
        c = cols[:, k]
        has = c != _MAX
        valid = inr & has
        valid[has] &= c[has] - m.t[has] <= W
        R = np.minimum.reduceat(np.where(valid, c, _MAX), ustart)
        best = valid & (c == R[uid])
        E = np.maximum.reduceat(np.where(best, m.t, NULL), ustart)
        reached = R != _MAX
        r[k] = np.where(reached, R, NULL)
        e[k] = np.where(reached, E, NULL)
        if k:
            p[k] = np.where(
                reached, np.maximum.reduceat(np.where(best, cols[:, k - 1], NULL), ustart), NULL
            )
    keep = r[0] != NULL
    return KernelFunnel(m.user[ustart][keep], None, r[:, keep], e[:, keep], p[:, keep])


def compute(arrays: Any, spec: Any) -> KernelFunnel:
    """Per-unit ``r_k, e_k, p_k`` of ``spec`` on ``arrays`` (see the module docstring)."""
    why = uncovered(spec, arrays)
    if why is not None:
        raise ValueError(f"the funnel kernel does not cover this spec: {why}")
    m = _moments(arrays, spec)
    if spec.mode == "any_order":
        return _any_order(m, spec)
    chains, att = _chains_ordered_strict(m, spec)
    return _per_unit(m, spec, chains, att)


# --- outputs ------------------------------------------------------------------------------


def _ts(us: np.ndarray) -> np.ndarray:
    out = us.astype("datetime64[us]")
    out[us == NULL] = np.datetime64("NaT")
    return out


def _seconds(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ok = (a != NULL) & (b != NULL)
    out = np.full(a.shape[0], np.nan)
    out[ok] = (a[ok] - b[ok]).astype(np.float64) / float(US_PER_SECOND)
    return out


def user_funnel_frame(arrays: Any, spec: Any, kf: KernelFunnel | None = None) -> pd.DataFrame:
    """``user_funnel(events, spec).to_pandas()`` computed on the arrays: same columns and
    dtypes, rows sorted by user (and attempt)."""
    kf = compute(arrays, spec) if kf is None else kf
    n = spec.n_steps
    reached = kf.steps_reached
    cols: dict[str, Any] = {"user_id": np.asarray(arrays.user_ids)[kf.user]}
    if kf.attempt is not None:
        cols["attempt"] = kf.attempt
    cols["steps_reached"] = reached
    nu = reached.shape[0]
    cols["entry_at"] = _ts(kf.e[np.maximum(reached - 1, 0), np.arange(nu)] if nu else kf.r[0])
    for k in range(n):
        cols[f"step_{k + 1}_at"] = _ts(kf.r[k])
    for k in range(1, n):
        cols[f"step_{k + 1}_from_prev_s"] = _seconds(kf.r[k], kf.p[k])
    for k in range(1, n):
        cols[f"step_{k + 1}_from_start_s"] = _seconds(kf.r[k], kf.e[k])
    return pd.DataFrame(cols)


def _first_moments(m: _Moments, chains: list, att: np.ndarray | None):
    """Per step: ``(unit key, t, s, pv)`` of each unit's first ``c_k`` moment, for the units
    reaching the step (in unit order): :func:`_per_unit`'s reached cells without its
    ``(n_steps, n_units)`` matrices (all the table reads)."""
    key = att if att is not None else m.user
    for P, S, PV in chains:
        kk = key[P]
        first = np.ones(P.shape[0], dtype=bool)
        first[1:] = kk[1:] != kk[:-1]
        yield kk[first], m.t[P[first]], S[first], PV[first]


def table_values(arrays: Any, spec: Any) -> dict[str, Any]:
    """The per-step aggregates ``funnel_table`` assembles: ``n{k}`` (units reaching step
    ``k``), ``med{k}``, ``q25_{k}``, ``q75_{k}``, ``q90_{k}`` (linear-interpolated quantiles
    of the seconds from the previous step) and ``mstart{k}`` (median seconds from the entry).

    The same values as from :func:`compute`'s per-unit matrices; for *ordered* and *strict*
    read straight off each step's chains (a unit's first ``c_k`` moment), which skips
    building the matrices (a quarter of the table's time at 10M events)."""
    why = uncovered(spec, arrays)
    if why is not None:
        raise ValueError(f"the funnel kernel does not cover this spec: {why}")
    m = _moments(arrays, spec)
    if spec.mode == "any_order":
        kf = _any_order(m, spec)
        firsts = []
        for k in range(spec.n_steps):
            hit = kf.r[k] != NULL
            firsts.append((None, kf.r[k][hit], kf.e[k][hit], kf.p[k][hit]))
    else:
        firsts = _first_moments(m, *_chains_ordered_strict(m, spec))
    vals: dict[str, Any] = {}
    for k, (_, r, e, pv) in enumerate(firsts):
        vals[f"n{k + 1}"] = int(r.shape[0])
        if k:
            prev = _seconds(r, pv)
            start = _seconds(r, e)
            qs = np.quantile(prev, _QUANTILES) if prev.size else [None] * 4
            for name, v in zip(("med", "q25_", "q75_", "q90_"), qs, strict=True):
                vals[f"{name}{k + 1}"] = None if v is None else float(v)
            vals[f"mstart{k + 1}"] = float(np.median(start)) if start.size else None
    return vals

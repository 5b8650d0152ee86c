"""Brute-force funnel reference: the definitions of :mod:`crm_helpers.funnels.core`, literally.

Plain Python over per-user event lists (pandas in, pandas out), for SMALL inputs only: it
enumerates every chain of moments and checks each condition of the definition on the whole
chain. Tests compare the engine against it exactly; nothing here shares code with the
engine's algorithm (only the :class:`~crm_helpers.funnels.core.FunnelSpec` object).

>>> ref = reference_user_funnel(events_df, spec)       # same columns as user_funnel(...)
>>> reference_funnel_counts(events_df, spec)            # [users reaching step 1, 2, ...]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from crm_helpers.events import match_row as _matches
from crm_helpers.funnels.core import FunnelSpec

__all__ = ["reference_funnel_counts", "reference_funnel_table", "reference_user_funnel"]

_US_PER_S = 1_000_000
_INF = float("inf")


def _us(ts: Any) -> int:
    """Naive timestamp -> integer epoch microseconds (floor)."""
    ts = pd.Timestamp(ts)
    return int((ts - pd.Timestamp(0)) // pd.Timedelta(microseconds=1))


def _from_us(us: int | None) -> pd.Timestamp | None:
    return None if us is None else pd.Timestamp(0) + pd.Timedelta(microseconds=int(us))


class _Group:
    """One user's (or (user, partition)'s) moments."""

    def __init__(self, rows: list[dict], spec: FunnelSpec) -> None:
        steps = spec.step_list
        self.all_moments = sorted({_us(r["ts"]) for r in rows})
        self.step_at: dict[int, set[int]] = {}  # moment -> matched step indices (0-based)
        self.excl_at: dict[int, set[int]] = {}
        for r in rows:
            t = _us(r["ts"])
            for j, s in enumerate(steps):
                if _matches(r, s.event, s.where):
                    self.step_at.setdefault(t, set()).add(j)
            for i, x in enumerate(spec.exclusions):
                if _matches(r, x.event, x.where):
                    self.excl_at.setdefault(t, set()).add(i)
        self.moments = sorted(set(self.step_at) | set(self.excl_at))

    def has(self, t: int, j: int) -> bool:
        return j in self.step_at.get(t, ())


def _window_us(spec: FunnelSpec) -> int:
    return int(round(spec.conversion_window_days * 86_400 * _US_PER_S))


def _in_range(t: int, spec: FunnelSpec) -> bool:
    if spec.start is not None and t < _us(spec.start):
        return False
    if spec.end is not None and t >= _us(spec.end):
        return False
    return True


def _valid(chain: list[int], g: _Group, spec: FunnelSpec) -> bool:
    """Every condition of the definition, checked on the whole chain."""
    steps = spec.step_list
    m = len(chain)
    if not _in_range(chain[0], spec):
        return False
    for k in range(m):
        if not g.has(chain[k], k):
            return False
    for k in range(1, m):
        if not chain[k - 1] < chain[k]:
            return False
    if chain[-1] - chain[0] > _window_us(spec):
        return False
    for k in range(1, m):
        gap = chain[k] - chain[k - 1]
        s = steps[k]
        if (
            s.min_seconds_from_previous is not None
            and gap < s.min_seconds_from_previous * _US_PER_S
        ):
            return False
        if (
            s.max_seconds_from_previous is not None
            and gap > s.max_seconds_from_previous * _US_PER_S
        ):
            return False
    for i, x in enumerate(spec.exclusions):
        a, b = spec.exclusion_range(x)
        if m <= a:
            continue
        lo, hi = chain[a - 1], chain[min(b, m) - 1]
        if any(i in xs and lo < t <= hi for t, xs in g.excl_at.items()):
            return False
    if spec.mode == "strict":
        for k in range(1, m):
            if any(chain[k - 1] < t < chain[k] for t in g.all_moments):
                return False
    return True


def _chains(g: _Group, spec: FunnelSpec, entry: int, upper: float) -> Iterator[list[int]]:
    """All valid chains starting at ``entry`` with every moment before ``upper``."""
    n = spec.n_steps

    def extend(chain: list[int]) -> Iterator[list[int]]:
        yield chain
        k = len(chain)
        if k == n:
            return
        for t in g.moments:
            if chain[-1] < t < upper and g.has(t, k):
                cand = [*chain, t]
                if _valid(cand, g, spec):  # validity is prefix-closed: prune invalid prefixes
                    yield from extend(cand)

    if _valid([entry], g, spec):
        yield from extend([entry])


def _summarise(chains: list[list[int]], n: int) -> dict[str, Any]:
    """steps_reached and first-completion timings from a set of valid chains."""
    reached = max(len(c) for c in chains)
    out: dict[str, Any] = {"steps_reached": reached}
    entries: dict[int, int] = {}
    for k in range(1, n + 1):
        ks = [c[:k] for c in chains if len(c) >= k]
        if not ks:
            out[f"step_{k}_at"] = None
            if k >= 2:
                out[f"step_{k}_from_prev_s"] = None
                out[f"step_{k}_from_start_s"] = None
            continue
        r = min(c[-1] for c in ks)
        at_r = [c for c in ks if c[-1] == r]
        entry = max(c[0] for c in at_r)
        entries[k] = entry
        out[f"step_{k}_at"] = r
        if k >= 2:
            prev = max(c[-2] for c in at_r)
            out[f"step_{k}_from_prev_s"] = (r - prev) / _US_PER_S
            out[f"step_{k}_from_start_s"] = (r - entry) / _US_PER_S
    out["entry_at"] = entries[reached]
    return out


def _any_order(g: _Group, spec: FunnelSpec) -> dict[str, Any] | None:
    n = spec.n_steps
    W = _window_us(spec)
    starts = [t for t in g.moments if _in_range(t, spec)]
    if not starts:
        return None
    # reaching: distinct steps seen in [t, t + W]
    reached = 0
    for t in starts:
        seen = {j for u in g.moments if t <= u <= t + W for j in g.step_at.get(u, ())}
        reached = max(reached, len(seen))
    out: dict[str, Any] = {"steps_reached": reached}
    entries: dict[int, int] = {}
    greedy: dict[int, list[int]] = {}
    for t in starts:
        nxt = []
        for j in range(n):
            later = [u for u in g.moments if u >= t and g.has(u, j)]
            if later:
                nxt.append(min(later))
        greedy[t] = sorted(nxt)
    for k in range(1, n + 1):
        ok = {t: c[k - 1] for t, c in greedy.items() if len(c) >= k and c[k - 1] - t <= W}
        if not ok:
            if k <= reached:
                raise AssertionError("reference any_order: reach and greedy disagree")
            out[f"step_{k}_at"] = None
            if k >= 2:
                out[f"step_{k}_from_prev_s"] = None
                out[f"step_{k}_from_start_s"] = None
            continue
        if k > reached:
            raise AssertionError("reference any_order: reach and greedy disagree")
        r = min(ok.values())
        entry = max(t for t, c in ok.items() if c == r)
        entries[k] = entry
        out[f"step_{k}_at"] = r
        if k >= 2:
            prev = greedy[entry][k - 2]
            out[f"step_{k}_from_prev_s"] = (r - prev) / _US_PER_S
            out[f"step_{k}_from_start_s"] = (r - entry) / _US_PER_S
    out["entry_at"] = entries[reached]
    return out


def _group_rows(
    events: pd.DataFrame, spec: FunnelSpec, keys: list[str]
) -> Iterator[tuple[tuple, list[dict]]]:
    records = events.to_dict("records")
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        key = tuple(None if _isna(r[k]) else r[k] for k in keys)
        groups.setdefault(key, []).append(r)
    yield from groups.items()


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def reference_user_funnel(
    events: pd.DataFrame, spec: FunnelSpec, *, extra_partition: str | None = None
) -> pd.DataFrame:
    """Per-user (per-attempt) funnel by brute force, same columns as ``user_funnel``.

    Parameters
    ----------
    events
        pandas frame with ``user_id, event, ts`` (+ properties). Small inputs only.
    spec
        The funnel.
    extra_partition
        As in ``user_funnel``.

    Returns
    -------
    pandas.DataFrame
        Columns as ``user_funnel``; timestamps as ``pd.Timestamp`` (``None`` if not reached).
    """
    n = spec.n_steps
    keys = ["user_id"] + ([extra_partition] if extra_partition else [])
    rows_out: list[dict[str, Any]] = []
    for key, rows in _group_rows(events, spec, keys):
        g = _Group(rows, spec)
        base = dict(zip(keys, key, strict=True))
        if spec.mode == "any_order":
            res = _any_order(g, spec)
            if res is not None:
                rows_out.append({**base, **res})
            continue
        firsts = [t for t in g.moments if g.has(t, 0)]  # every step-1 moment, any date
        if spec.count == "attempts":
            counted = [t for t in firsts if spec.start is None or t >= _us(spec.start)]
            for number, entry in enumerate(counted, 1):
                if not _in_range(entry, spec):
                    continue
                later = [t for t in firsts if t > entry]
                upper = later[0] if later else _INF
                chains = list(_chains(g, spec, entry, upper))
                rows_out.append({**base, "attempt": number, **_summarise(chains, n)})
        else:
            chains = [c for e in firsts for c in _chains(g, spec, e, _INF)]
            if chains:
                rows_out.append({**base, **_summarise(chains, n)})
    cols = ["user_id"] + (["attempt"] if spec.count == "attempts" else []) + keys[1:]
    cols += ["steps_reached", "entry_at"] + [f"step_{k}_at" for k in range(1, n + 1)]
    cols += [f"step_{k}_from_prev_s" for k in range(2, n + 1)]
    cols += [f"step_{k}_from_start_s" for k in range(2, n + 1)]
    out = pd.DataFrame(rows_out, columns=cols)
    for c in ["entry_at"] + [f"step_{k}_at" for k in range(1, n + 1)]:
        out[c] = [_from_us(v) if v is not None and not _isna(v) else None for v in out[c]]
    return out


def reference_funnel_counts(events: pd.DataFrame, spec: FunnelSpec) -> list[int]:
    """Users (or attempts) reaching each step, by brute force."""
    per = reference_user_funnel(events, spec)
    return [int((per["steps_reached"] >= k).sum()) for k in range(1, spec.n_steps + 1)]


def reference_funnel_table(events: pd.DataFrame, spec: FunnelSpec) -> pd.DataFrame:
    """Counts and time-to-convert quantiles per step (numpy linear interpolation)."""
    per = reference_user_funnel(events, spec)
    rows = []
    for k in range(1, spec.n_steps + 1):
        row: dict[str, Any] = {"step": k, "count": int((per["steps_reached"] >= k).sum())}
        if k >= 2:
            x = per[f"step_{k}_from_prev_s"].dropna().to_numpy(dtype=float)
            xs = per[f"step_{k}_from_start_s"].dropna().to_numpy(dtype=float)
            for name, q in (("median", 0.5), ("p25", 0.25), ("p75", 0.75), ("p90", 0.9)):
                row[name] = float(np.quantile(x, q)) if x.size else np.nan
            row["median_from_start"] = float(np.median(xs)) if xs.size else np.nan
        else:
            row.update(median=np.nan, p25=np.nan, p75=np.nan, p90=np.nan, median_from_start=np.nan)
        rows.append(row)
    return pd.DataFrame(rows)

"""Sorted-array primitives shared by the embedded kernels (numpy, vectorized over all users).

Semantics
---------
All functions read rows already grouped into *segments*: a segment is a run of
consecutive rows with the same value of a non-decreasing integer array ``seg`` (the user
code of :class:`~crm_helpers.store.arrays.EventArrays`, or a session id from
:func:`sessionize`), and within a segment rows are in time order (``t`` non-decreasing).
No function loops in Python over users or events.

- :func:`segment_offsets`: ``offsets`` (int64, length ``n_segments + 1``) with segment
  ``s``'s rows at ``offsets[s]:offsets[s + 1]``, where segments are numbered by run in
  row order (``0, 1, ...``), not by the value of ``seg``.
- :func:`sessionize`: a row starts a new session when it is the first row of its segment
  (user) or when ``t - t_prev > gap`` (``t_prev`` the previous row's time, ``gap`` =
  ``round(gap_minutes * 60e6)`` microseconds; a silence of exactly ``gap`` stays in the
  session). Session ids are ``0, 1, ...`` in row order (global, not per user).
- :func:`first_last` of an event code: per segment value ``u = 0 .. n - 1``, the row index
  and the time of the FIRST and the LAST row with ``event == code`` (in row order); users
  without such a row get row ``-1`` and ``has = False`` (their times are 0).
- :func:`event_counts`: ``counts[u, e]`` = number of rows of segment value ``u`` with
  event code ``e`` (dense int64 ``(n_users, n_events)``), or the same as sparse triples
  :class:`SparseCounts` (only the non-zero cells, by ``(u, e)``) when the dense matrix
  would exceed ``dense_limit`` cells (or ``dense_limit <= 0``).
- :func:`shift`: segment-wise lead (``k > 0``) / lag (``k < 0``): ``out[i] = values[i + k]``
  when row ``i + k`` exists and lies in the same segment as row ``i``, else ``fill``
  (pandas ``groupby(seg).shift(-k)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FirstLast",
    "SparseCounts",
    "event_counts",
    "first_last",
    "segment_offsets",
    "sessionize",
    "shift",
]

US_PER_MINUTE = 60_000_000


def segment_offsets(seg: np.ndarray) -> np.ndarray:
    """Row offsets of the runs of equal ``seg`` values (module docstring).

    Parameters
    ----------
    seg
        Integer array, equal values contiguous (e.g. non-decreasing).

    Returns
    -------
    ndarray
        int64, ``[0, start_1, ..., n]``; ``[0]`` for no rows.
    """
    n = seg.shape[0]
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    starts = np.flatnonzero(seg[1:] != seg[:-1]) + 1
    return np.concatenate([[0], starts, [n]]).astype(np.int64)


def sessionize(seg: np.ndarray, t: np.ndarray, gap_minutes: float) -> np.ndarray:
    """Session id per row: a new session at each segment's first row and after a silence
    longer than ``gap_minutes`` (module docstring).

    Parameters
    ----------
    seg
        Segment (user) value per row, equal values contiguous.
    t
        int64 epoch microseconds, non-decreasing within each segment.
    gap_minutes
        The longest silence inside one session, minutes (> 0).

    Returns
    -------
    ndarray
        int64 session ids ``0, 1, ...`` in row order.
    """
    if not gap_minutes > 0:
        raise ValueError(f"gap_minutes must be positive, got {gap_minutes!r}")
    n = t.shape[0]
    new = np.ones(n, dtype=bool)
    if n > 1:
        gap = round(gap_minutes * US_PER_MINUTE)
        new[1:] = (seg[1:] != seg[:-1]) | ((t[1:] - t[:-1]) > gap)
    return np.cumsum(new, dtype=np.int64) - 1


def shift(values: np.ndarray, seg: np.ndarray, k: int, fill: object = -1) -> np.ndarray:
    """Segment-wise lead (``k > 0``) or lag (``k < 0``) of ``values`` (module docstring).

    Parameters
    ----------
    values
        Values per row.
    seg
        Segment value per row, equal values contiguous.
    k
        Offset in rows: ``1`` the next row, ``-1`` the previous row; ``0`` returns a copy.
    fill
        The value where row ``i + k`` is outside the segment (cast to ``values``' dtype
        unless that fails, then the result is object).

    Returns
    -------
    ndarray
        Same length as ``values``.
    """
    n = values.shape[0]
    try:
        out = np.full(n, fill, dtype=values.dtype)
    except (TypeError, ValueError):
        out = np.full(n, fill, dtype=object)
    if k == 0:
        out[:] = values
        return out
    m = abs(k)
    if m >= n:
        return out
    if k > 0:
        ok = seg[m:] == seg[:-m]
        out[:-m][ok] = values[m:][ok]
    else:
        ok = seg[:-m] == seg[m:]
        out[m:][ok] = values[:-m][ok]
    return out


@dataclass(frozen=True)
class FirstLast:
    """First and last rows (and times) of one event code per user (:func:`first_last`).

    Attributes
    ----------
    has
        bool ``(n_users,)``: the user has a row with the code.
    first_row, last_row
        int64 row indexes (``-1`` without a row).
    first_t, last_t
        int64 times of those rows (0 without a row).
    """

    has: np.ndarray
    first_row: np.ndarray
    last_row: np.ndarray
    first_t: np.ndarray
    last_t: np.ndarray


def first_last(
    user: np.ndarray, event: np.ndarray, t: np.ndarray, code: int, n_users: int
) -> FirstLast:
    """First and last occurrence per user of event ``code`` (module docstring).

    Parameters
    ----------
    user
        User code per row (``0 .. n_users - 1``), equal values contiguous.
    event, t
        Event code and time per row (time order within a user).
    code
        The event code.
    n_users
        Number of users (length of the results).
    """
    rows = np.flatnonzero(event == code)
    u = user[rows]
    first_row = np.full(n_users, -1, dtype=np.int64)
    last_row = np.full(n_users, -1, dtype=np.int64)
    if rows.size:
        head = np.ones(rows.size, dtype=bool)
        head[1:] = u[1:] != u[:-1]
        tail = np.ones(rows.size, dtype=bool)
        tail[:-1] = head[1:]
        first_row[u[head]] = rows[head]
        last_row[u[tail]] = rows[tail]
    has = first_row >= 0
    first_t = np.where(has, t[np.maximum(first_row, 0)] if t.size else 0, 0).astype(np.int64)
    last_t = np.where(has, t[np.maximum(last_row, 0)] if t.size else 0, 0).astype(np.int64)
    return FirstLast(has, first_row, last_row, first_t, last_t)


@dataclass(frozen=True)
class SparseCounts:
    """Non-zero cells of a users x events count matrix, by ``(user, event)``.

    Attributes
    ----------
    user, event
        int64 cell coordinates.
    count
        int64 counts (> 0).
    shape
        ``(n_users, n_events)``.
    """

    user: np.ndarray
    event: np.ndarray
    count: np.ndarray
    shape: tuple[int, int]

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.int64)
        out[self.user, self.event] = self.count
        return out


def event_counts(
    user: np.ndarray,
    event: np.ndarray,
    n_users: int,
    n_events: int,
    *,
    dense_limit: int = 50_000_000,
) -> np.ndarray | SparseCounts:
    """Rows per (user, event code) (module docstring).

    Parameters
    ----------
    user, event
        Codes per row (``0 .. n_users - 1``, ``0 .. n_events - 1``).
    n_users, n_events
        The matrix shape.
    dense_limit
        Largest dense matrix (cells); beyond it (or with ``dense_limit <= 0``) the counts
        come back sparse.

    Returns
    -------
    ndarray or SparseCounts
        Dense int64 ``(n_users, n_events)`` or the non-zero cells.
    """
    key = user.astype(np.int64) * n_events + event
    if n_users * n_events <= dense_limit and dense_limit > 0:
        return np.bincount(key, minlength=n_users * n_events).reshape(n_users, n_events)
    cells, count = np.unique(key, return_counts=True)
    return SparseCounts(
        cells // n_events, cells % n_events, count.astype(np.int64), (n_users, n_events)
    )

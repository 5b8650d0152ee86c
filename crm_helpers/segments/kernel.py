"""The events part of the behavioural feature table as a sorted-array kernel (embedded engine).

On DuckDB over files the events are in the prepared store (built once per data set, shared
by every report: :mod:`crm_helpers.store`): sorted by user and time, users integer-coded,
in part files of whole users. The per-user event features then need no GROUP BY of the raw
events: :func:`event_features` reads the store part by part (only ``user``, ``t`` and the
category, :func:`store_events`) and counts with ``numpy.bincount`` over the user codes and
run boundaries.
Elsewhere (Spark, warehouses) :func:`prepared_inputs` is None and
:func:`crm_helpers.segments.clusters.feature_query` takes the Ibis path.

Semantics
---------
The same as the events part of :func:`crm_helpers.segments.clusters.feature_query` (its
module docstring): over the event rows with ``user_id``, ``event`` and ``ts`` present (the
store's rows; the Ibis path leaves the others out too) whose UTC day number
``floor(t / 86400e6)`` is at most ``end``, per user with at least one such row:

- ``events``: the rows; ``active_days``: the distinct days; ``_last_e``: the last day;
- with categories: ``browse_<c>`` for each of the ``browse`` categories, the user's rows
  with category ``c`` over the user's rows with any category (null when none has one); the
  default ``browse`` is the 8 most frequent categories of those rows (ties by name,
  ascending), as :func:`crm_helpers.segments.clusters.top_categories` chooses them.

Rows are in user code order, i.e. ascending ``user_id``. The result is an Arrow table the
caller joins in the engine with the orders and messages parts, exactly as the Ibis path does.

*Categories* come from the store's Parquet parts read with the column dictionary-encoded
(:func:`store_events`): integer codes per row (``-1`` for missing) and the names, never a
Python string per row. The top categories are chosen from a users x categories count
matrix built in the same pass, or, when it would exceed :data:`MAX_CELLS` cells, in a
pass of their own. A part whose row count is not the manifest's (a store rebuilt while
read) raises :class:`StoreChanged`, and the feature table takes the Ibis path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from crm_helpers.segments.core import US_PER_DAY

__all__ = [
    "CategoryCodes",
    "PreparedEvents",
    "Part",
    "StoreChanged",
    "event_features",
    "from_arrays",
    "prepared_inputs",
    "store_events",
]


@dataclass(frozen=True)
class CategoryCodes:
    """A string column as integer codes per row.

    Attributes
    ----------
    codes
        int32, shape (n,): index into ``names``, ``-1`` where the value is missing.
    names
        The distinct values.
    """

    codes: np.ndarray
    names: tuple[str, ...]


@dataclass(frozen=True)
class Part:
    """Rows of whole users, sorted by ``(user, t)``: one part file of the store.

    Attributes
    ----------
    user
        int32 user codes (global: index into :attr:`PreparedEvents.user_ids`), non-decreasing.
    t
        int64 epoch microseconds, non-decreasing within a user.
    category
        int32 category codes (index into the names), ``-1`` for missing; None without one.
    """

    user: np.ndarray
    t: np.ndarray
    category: np.ndarray | None = None


@dataclass(frozen=True)
class PreparedEvents:
    """The events of a data set as parts of whole users (the store's parts) and the codes.

    Attributes
    ----------
    user_ids
        The user ids in code order (ascending).
    parts
        A callable returning an iterator of :class:`Part` (read one at a time) in user order.
    category_names
        A callable returning the category names seen so far (the parts' codes index into
        them; complete once every part was read); None without a category column.
    """

    user_ids: np.ndarray
    parts: Any
    category_names: Any = None

    @property
    def has_category(self) -> bool:
        return self.category_names is not None


def from_arrays(arrays: Any, category: CategoryCodes | None = None) -> PreparedEvents:
    """One part from :class:`~crm_helpers.store.EventArrays` (and category codes): tests,
    and arrays already in memory."""
    part = Part(arrays.user, arrays.t, None if category is None else category.codes)
    names = None if category is None else (lambda: category.names)
    return PreparedEvents(np.asarray(arrays.user_ids), lambda: iter([part]), names)


def _codes(col: pa.ChunkedArray, index: dict[str, int], names: list[str]) -> np.ndarray:
    """Global int32 codes of a dictionary-encoded (or plain string) column; -1 for null."""
    out = []
    for chunk in col.chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_encode()
        local = chunk.dictionary.to_pylist()
        remap = np.empty(len(local) + 1, dtype=np.int32)
        for i, v in enumerate(local):
            if v not in index:
                index[v] = len(names)
                names.append(v)
            remap[i] = index[v]
        remap[len(local)] = -1
        idx = chunk.indices.fill_null(len(local)).to_numpy(zero_copy_only=False)
        out.append(remap[idx])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int32)


class StoreChanged(RuntimeError):
    """A part file of the store does not have the rows its manifest records."""


def store_events(store_dir: Any, manifest: dict, with_category: bool) -> PreparedEvents:
    """The store's events as parts read one at a time: ``user``, ``t`` and (dictionary-
    encoded, never a Python string per row) ``category``; the ``event`` column is not read.

    A part whose row count differs from the manifest's raises :class:`StoreChanged`.
    """
    from pathlib import Path

    import pyarrow.parquet as pq

    root = Path(store_dir)
    users = pq.read_table(root / manifest["users_file"]["path"], columns=["user_id"])
    user_ids = users.column("user_id").to_numpy()
    index: dict[str, int] = {}
    names: list[str] = []
    cols = ["user", "t", *(["category"] if with_category else [])]

    def parts():
        for f in manifest["files"]:
            kw = {"read_dictionary": ["category"]} if with_category else {}
            t = pq.read_table(root / f["path"], columns=cols, **kw)
            if t.num_rows != f["rows"]:
                raise StoreChanged(f"{f['path']}: {t.num_rows} rows, manifest {f['rows']}")
            yield Part(
                t.column("user").to_numpy().astype(np.int32, copy=False),
                t.column("t").to_numpy().astype(np.int64, copy=False),
                _codes(t.column("category"), index, names) if with_category else None,
            )

    return PreparedEvents(user_ids, parts, (lambda: tuple(names)) if with_category else None)


def prepared_inputs(data: Any) -> PreparedEvents | None:
    """The prepared store's events of ``data`` (:func:`store_events`), or None.

    None when the store does not apply (Spark, warehouses, no events table: the Ibis path).
    The store is built when missing or stale (:func:`crm_helpers.store.try_ensure_store`:
    None when it cannot be built for want of memory or disk); its
    parts are read when the features are computed.
    """
    from crm_helpers import store

    if not store.supports_store(data):
        return None
    prepared = store.try_ensure_store(data)
    if prepared is None:  # the store cannot be built here (memory, disk): the Ibis path
        return None
    with_category = "category" in data.events.columns
    if with_category and "category" not in prepared.manifest["columns"]:
        return None
    return store_events(prepared.path, prepared.manifest, with_category)


def event_features(
    prepared: PreparedEvents, end: int, browse: Sequence[str] | None = None
) -> tuple[pa.Table, list[str]]:
    """Per-user event features up to day ``end``, part by part (module docstring).

    Parameters
    ----------
    prepared
        From :func:`prepared_inputs` (or :func:`from_arrays`).
    end
        The last UTC day number counted.
    browse
        The browse categories in order; None: the 8 most frequent (with a category column).

    Returns
    -------
    (pyarrow.Table, list of str)
        ``user_id, events, active_days, _last_e`` and one column per browse category
        (named ``_c0, _c1, ...`` in ``browse`` order; null for a user without a category),
        one row per user with a counted event, ascending ``user_id``; and the browse
        categories used (empty without a category column).
    """
    limit = (end + 1) * US_PER_DAY  # day <= end  <=>  t < limit (floor division)
    fixed = None if browse is None else list(browse)
    users, events, active, last, cats = [], [], [], [], []
    cells = 0
    for p in prepared.parts():
        n = p.user.shape[0]
        if n == 0:
            continue
        lo = int(p.user[0])
        local = p.user - lo
        starts = np.flatnonzero(local[1:] != local[:-1]) + 1
        offs = np.concatenate([[0], starts, [n]]).astype(np.int64)
        n_local = offs.shape[0] - 1  # every user of the part has rows
        # within a user the rows are in time order: the kept rows are a prefix of each user's
        keep = p.t < limit
        every = bool(keep.all())
        if every:
            ev = np.diff(offs)
        else:
            kept = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(keep, out=kept[1:])
            ev = kept[offs[1:]] - kept[offs[:-1]]
        day = p.t // US_PER_DAY
        new_day = np.ones(n, dtype=bool)  # first row of a user or of a day
        new_day[1:] = (local[1:] != local[:-1]) | (day[1:] != day[:-1])
        if not every:
            new_day &= keep
        has = ev > 0
        users.append(lo + np.flatnonzero(has))
        events.append(ev[has])
        active.append(np.bincount(local[new_day], minlength=n_local)[has])
        last.append(day[offs[:-1][has] + ev[has] - 1])
        if p.category is None:
            continue
        names = prepared.category_names()
        if fixed is None:  # per user and category code; the top categories at the end
            width = len(names) + 2  # slot 0: none; 1..C: the codes; C + 1: after ``end``
            cells += n_local * width
            if cells > MAX_CELLS:
                return event_features(prepared, end, _top_by_parts(prepared, limit))
            slot = p.category + 1
        else:
            k = len(fixed)
            width = k + 3  # 0..k-1: browse; k: another category; k + 1: none; k + 2: after
            code_of = {v: i for i, v in enumerate(names)}
            lut = np.full(len(names) + 1, k, dtype=np.int32)
            lut[0] = k + 1
            for j, name in enumerate(fixed):
                if name in code_of:
                    lut[code_of[name] + 1] = j
            slot = lut[p.category + 1]
        if not every:
            slot[~keep] = width - 1
        key = local.astype(np.int64) * width
        key += slot
        cats.append(np.bincount(key, minlength=n_local * width).reshape(n_local, width)[has])
    cols: dict[str, Any] = {
        "user_id": pa.array(prepared.user_ids[_cat(users, np.int64)]),
        "events": _cat(events, np.int64).astype(np.float64),
        "active_days": _cat(active, np.int64).astype(np.float64),
        "_last_e": _cat(last, np.int64),
    }
    used: list[str] = []
    if prepared.has_category:
        names = prepared.category_names()
        if fixed is None:
            c = len(names)
            per_code = np.vstack(
                [np.pad(m[:, 1:-1], ((0, 0), (0, c - (m.shape[1] - 2)))) for m in cats]
                or [np.zeros((0, c), dtype=np.int64)]
            )
            used = _top(per_code.sum(axis=0), names)
            code_of = {v: i for i, v in enumerate(names)}
            hits = per_code[:, [code_of[v] for v in used]]
            with_cat = per_code.sum(axis=1)
        else:
            used = fixed
            k = len(fixed)
            both = np.vstack(cats or [np.zeros((0, k + 3), dtype=np.int64)])
            hits, with_cat = both[:, :k], both[:, : k + 1].sum(axis=1)
        none = with_cat == 0
        denom = np.where(none, 1, with_cat).astype(np.float64)
        for j in range(len(used)):
            cols[f"_c{j}"] = pa.array(hits[:, j] / denom, mask=none)
    return pa.table(cols), used


def _cat(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)


def _top(totals: np.ndarray, names: Sequence[str], k: int = 8) -> list[str]:
    """The ``k`` names with the largest totals (> 0), ties by name ascending."""
    return [n for _, n in sorted((-int(c), str(names[i])) for i, c in enumerate(totals) if c)][:k]


def _top_by_parts(prepared: PreparedEvents, limit: int) -> list[str]:
    """The 8 most frequent categories of the rows before ``limit``, in a pass of their own
    (when the users x categories matrix would exceed :data:`MAX_CELLS`)."""
    totals = np.zeros(0, dtype=np.int64)
    for p in prepared.parts():
        c = p.category[(p.t < limit) & (p.category >= 0)]
        got = np.bincount(c, minlength=len(prepared.category_names()))
        if got.shape[0] > totals.shape[0]:
            totals = np.pad(totals, (0, got.shape[0] - totals.shape[0]))
        totals[: got.shape[0]] += got
    return _top(totals, prepared.category_names())


#: Largest users x categories count matrix counted in one pass (cells, int64: 256 MB).
MAX_CELLS = 32_000_000

"""The events part of the behavioural feature table as a sorted-array kernel (embedded engine).

On DuckDB over files the events are read once into the prepared store's sorted, integer-coded
arrays (:func:`crm_helpers.store.event_arrays`); the per-user event features then need no
re-read and no GROUP BY of the raw events: they are ``numpy.bincount`` over the user codes.
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
(:func:`category_codes`): integer codes per row (``-1`` for missing) and the names, never a
Python string per row.
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
    "category_codes",
    "event_features",
    "prepared_inputs",
    "top_codes",
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
class PreparedEvents:
    """The prepared store's arrays of a data set and, when events have one, its category.

    Attributes
    ----------
    arrays
        :class:`~crm_helpers.store.EventArrays` (read-only, shared in the process).
    category
        The ``category`` column as :class:`CategoryCodes` in the arrays' row order, or None
        when the events have no ``category`` column.
    """

    arrays: Any
    category: CategoryCodes | None = None


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


def category_codes(store_dir: Any, manifest: dict, column: str = "category") -> CategoryCodes:
    """``column`` of a prepared store as :class:`CategoryCodes`, in the store's row order.

    Reads only that column of each part (dictionary-encoded: one code per row, the names
    once per chunk). ``KeyError`` when the store lacks the column.
    """
    from pathlib import Path

    import pyarrow.parquet as pq

    if column not in manifest["columns"]:
        raise KeyError(f"the event store has no column {column!r}")
    index: dict[str, int] = {}
    names: list[str] = []
    parts = []
    for f in manifest["files"]:
        t = pq.read_table(Path(store_dir) / f["path"], columns=[column], read_dictionary=[column])
        parts.append(_codes(t.column(column), index, names))
    codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return CategoryCodes(codes.astype(np.int32, copy=False), tuple(names))


def prepared_inputs(data: Any) -> PreparedEvents | None:
    """The prepared arrays (and category codes) of ``data``'s events, or None.

    None when the store does not apply (Spark, warehouses, no events table: the Ibis path)
    or when the category column read from the store does not have the arrays' row count
    (a store rebuilt in between: the Ibis path is taken rather than mixing two versions).
    """
    from crm_helpers import store

    if not store.supports_store(data):
        return None
    arrays = store.event_arrays(data)
    if arrays is None:
        return None
    if "category" not in data.events.columns:
        return PreparedEvents(arrays)
    prepared = store.ensure_store(data)
    try:
        cat = category_codes(prepared.path, prepared.manifest)
    except (OSError, KeyError):
        return None
    if cat.codes.shape[0] != arrays.n_events:
        return None
    return PreparedEvents(arrays, cat)


def top_codes(cat: np.ndarray, names: Sequence[str], k: int = 8) -> list[str]:
    """The ``k`` most frequent category names among codes ``cat`` (``-1`` ignored), ties by
    name ascending (as :func:`crm_helpers.segments.clusters.top_categories`)."""
    n = np.bincount(cat[cat >= 0], minlength=len(names))
    order = sorted((int(-c), str(names[i])) for i, c in enumerate(n) if c > 0)
    return [name for _, name in order[:k]]


def event_features(
    prepared: PreparedEvents, end: int, browse: Sequence[str] | None = None
) -> tuple[pa.Table, list[str]]:
    """Per-user event features up to day ``end`` from the sorted arrays (module docstring).

    Parameters
    ----------
    prepared
        From :func:`prepared_inputs`.
    end
        The last UTC day number counted.
    browse
        The browse categories in order; None: the 8 most frequent (with a category column).

    Returns
    -------
    (pyarrow.Table, list of str)
        ``user_id, events, active_days, _last_e`` and one column per browse category
        (named ``_c0, _c1, ...`` in ``browse`` order), one row per user with a counted
        event, ascending ``user_id``; and the browse categories used (empty without a
        category column).
    """
    a = prepared.arrays
    n_users = a.n_users
    offsets = a.offsets
    # day <= end  <=>  t < (end + 1) days (floor division); within a user the rows are in
    # time order, so the kept rows are a prefix of each user's rows
    keep = a.t < (end + 1) * US_PER_DAY
    every = bool(keep.all())
    if every:
        events = np.diff(offsets)
    else:
        kept = np.zeros(a.n_events + 1, dtype=np.int64)
        np.cumsum(keep, out=kept[1:])
        events = kept[offsets[1:]] - kept[offsets[:-1]]
    has = events > 0
    day = a.t // US_PER_DAY
    new_day = np.ones(a.n_events, dtype=bool)  # first row of a user or of a day
    if a.n_events > 1:
        new_day[1:] = (a.user[1:] != a.user[:-1]) | (day[1:] != day[:-1])
    if not every:
        new_day &= keep
    active = np.bincount(a.user[new_day], minlength=n_users)
    last_row = offsets[:-1][has] + events[has] - 1
    cols: dict[str, Any] = {
        "user_id": pa.array(a.user_ids[has]),
        "events": events[has].astype(np.float64),
        "active_days": active[has].astype(np.float64),
        "_last_e": day[last_row],
    }
    used: list[str] = []
    if prepared.category is not None:
        used, hits, with_cat = _category_counts(
            a.user, prepared.category, None if every else keep, n_users, browse
        )
        hits, with_cat = hits[has], with_cat[has]
        none = with_cat == 0
        denom = np.where(none, 1, with_cat).astype(np.float64)
        for j in range(len(used)):
            cols[f"_c{j}"] = pa.array(hits[:, j] / denom, mask=none)
    return pa.table(cols), used


#: Largest users x categories count matrix counted in one pass (cells, int64: 256 MB).
MAX_CELLS = 32_000_000


def _category_counts(
    user: np.ndarray,
    category: CategoryCodes,
    keep: np.ndarray | None,
    n_users: int,
    browse: Sequence[str] | None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The browse categories used, per user their rows in each (``(n_users, k)``) and the
    user's rows with any category (``(n_users,)``), over the rows in ``keep`` (None: all).

    One ``bincount`` over ``(user, category code)`` when the matrix has at most
    :data:`MAX_CELLS` cells (the top categories are then its column sums); else one pass
    for the top categories and one over ``(user, browse slot)``.
    """
    cat, names = category.codes, category.names
    n_names = len(names)
    code_of = {v: i for i, v in enumerate(names)}
    if n_users * (n_names + 2) <= MAX_CELLS:
        width = n_names + 2  # slot 0: no category; 1..n: the codes; n + 1: not kept
        slot = cat + 1
        if keep is not None:
            slot[~keep] = n_names + 1
        key = user.astype(np.int64) * width
        key += slot
        full = np.bincount(key, minlength=n_users * width).reshape(n_users, width)
        per_code = full[:, 1 : n_names + 1]
        if browse is None:
            totals = per_code.sum(axis=0)
            browse = [n for _, n in sorted((-int(c), names[i]) for i, c in enumerate(totals) if c)]
            browse = browse[:8]
        used = list(browse)
        hits = np.zeros((n_users, len(used)), dtype=np.int64)
        for j, name in enumerate(used):
            if name in code_of:
                hits[:, j] = per_code[:, code_of[name]]
        return used, hits, per_code.sum(axis=1)
    used = (
        list(browse) if browse is not None else top_codes(cat if keep is None else cat[keep], names)
    )
    k = len(used)
    # slots 0..k-1 the browse categories, k any other category, k + 1 none, k + 2 not kept
    lut = np.full(n_names + 1, k, dtype=np.int64)
    lut[0] = k + 1  # code -1 (missing) sits at lut[0]
    for j, name in enumerate(used):
        if name in code_of:
            lut[code_of[name] + 1] = j
    slot = lut[cat + 1]
    if keep is not None:
        slot[~keep] = k + 2
    width = k + 3
    key = user.astype(np.int64) * width
    key += slot
    counts = np.bincount(key, minlength=n_users * width).reshape(n_users, width)
    return used, counts[:, :k], counts[:, : k + 1].sum(axis=1)

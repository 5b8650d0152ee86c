"""In-memory coding and sorting of events for the store build (numpy and pyarrow).

The pieces of :func:`crm_helpers.store.build.build_store`'s in-memory path, each exactly
the semantics of the store (:mod:`crm_helpers.store.build`):

* :func:`code_sorted` -- the rank of each value among the distinct values in ascending order
  (int32, from 0) and those distinct values. Integers whose range is at most about twice the
  row count use a presence bitmap and its cumulative sum (one pass, no hashing); other types
  are dictionary-encoded by pyarrow and the dictionary sorted (strings compare by their
  UTF-8 bytes, i.e. in code-point order, as DuckDB and Python compare them).
* :func:`sort_order` -- the permutation sorting rows by ``(user, t, event)``, stable (rows
  tied on all three keep their input order): a stable sort on one int64 key
  ``(t - min t) * n_events + event`` (timsort, nearly linear on input already in time order,
  as logs are written; ``numpy.lexsort`` when that key would overflow), then a stable LSD
  radix sort on the user code in 16-bit digits (numpy sorts 16-bit keys by radix).
* :func:`resolve_ties` -- rows tied on ``(user, t, event)`` ordered by the property columns
  (ascending, NULLs last, as DuckDB's ``ORDER BY ... ASC NULLS LAST``) and, when asked, exact
  duplicate rows dropped (NULL equals NULL and NaN equals NaN, as in ``SELECT DISTINCT``).
  Only the tied rows are looked at, so it costs one pass when there are few ties.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["code_sorted", "resolve_ties", "sort_order"]


def code_sorted(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """``(codes, uniques)``: int32 rank of each value among the sorted distinct values.

    ``col`` has no NULLs. ``uniques`` is an Arrow array of ``col``'s type, ascending.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(col)
    if pa.types.is_integer(col.type) and n:
        a = col.to_numpy()
        lo, hi = int(a.min()), int(a.max())
        if hi - lo <= 2 * n + 1024:
            seen = np.zeros(hi - lo + 1, dtype=np.bool_)
            off = (a - lo) if lo else a
            seen[off] = True
            lut = np.cumsum(seen, dtype=np.int32)
            lut -= 1
            codes = lut[off]
            uniques = np.flatnonzero(seen) + lo
            return codes, pa.array(uniques.astype(a.dtype, copy=False), type=col.type)
    enc = pc.dictionary_encode(col)
    dictionary = enc.dictionary
    rank = np.empty(len(dictionary), dtype=np.int32)
    by = pc.sort_indices(dictionary).to_numpy()
    rank[by] = np.arange(len(dictionary), dtype=np.int32)
    codes = rank[enc.indices.to_numpy(zero_copy_only=False)]
    return codes, dictionary.take(pa.array(by))


def sort_order(user: np.ndarray, t: np.ndarray, event: np.ndarray, n_names: int) -> np.ndarray:
    """Stable permutation sorting rows by ``(user, t, event)`` (see the module docstring)."""
    n = len(t)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    t_lo, t_hi = int(t.min()), int(t.max())
    width = max(int(n_names), 1)
    if (t_hi - t_lo) < (np.iinfo(np.int64).max - width) // width:
        key = t - t_lo if t_lo else t.copy()
        key *= width
        key += event
        order = np.argsort(key, kind="stable")
        del key
    else:
        order = np.lexsort((event, t))
    digits = 1 if int(user.max()) < (1 << 16) else 2
    for d in range(digits):
        digit = ((user >> (16 * d)) & 0xFFFF).astype(np.uint16)[order]
        order = order[np.argsort(digit, kind="stable")]
    return order


def _equal_previous(col: pa.Array) -> np.ndarray:
    """Bool (len - 1): row ``i + 1`` equals row ``i`` (NULL = NULL, NaN = NaN)."""
    if pa.types.is_null(col.type):  # a column of NULLs only: every row equals the last
        return np.ones(max(len(col) - 1, 0), dtype=np.bool_)
    a, b = col.slice(1), col.slice(0, len(col) - 1)
    eq = pc.fill_null(pc.equal(a, b), False)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    out = pc.or_(eq, both_null)
    if pa.types.is_floating(col.type):
        out = pc.or_(out, pc.and_(pc.is_nan(a).fill_null(False), pc.is_nan(b).fill_null(False)))
    return out.to_numpy(zero_copy_only=False)


def resolve_ties(
    order: np.ndarray,
    user: np.ndarray,
    t: np.ndarray,
    event: np.ndarray,
    props: pa.Table | None,
    dedupe: bool,
) -> np.ndarray:
    """``order`` (sorted by ``(user, t, event)``) with tied rows ordered by ``props`` and,
    when ``dedupe``, exact duplicates dropped; see the module docstring."""
    n = len(order)
    if n < 2:
        return order
    us, ts, es = user[order], t[order], event[order]
    same = (us[1:] == us[:-1]) & (ts[1:] == ts[:-1]) & (es[1:] == es[:-1])
    del us, ts, es
    if not same.any():
        return order
    has_props = props is not None and props.num_columns > 0
    if not has_props:
        if not dedupe:
            return order
        keep = np.ones(n, dtype=np.bool_)
        keep[1:] = ~same
        return order[keep]
    # positions in a tie group: a row equal to its predecessor, or to its successor
    tied = np.zeros(n, dtype=np.bool_)
    tied[1:] |= same
    tied[:-1] |= same
    pos = np.flatnonzero(tied)
    starts = np.ones(len(pos), dtype=np.bool_)
    starts[1:] = ~same[pos[1:] - 1]
    group = np.cumsum(starts) - 1
    sub = props.take(pa.array(order[pos])).append_column("__g", pa.array(group))
    keys = [("__g", "ascending", "at_end")]
    keys += [(c, "ascending", "at_end") for c in props.column_names]
    perm = pc.sort_indices(sub, sort_keys=keys).to_numpy()
    order = order.copy()
    order[pos] = order[pos][perm]
    if not dedupe:
        return order
    sub = sub.take(pa.array(perm))
    dup = starts[1:] == False  # noqa: E712  (same group as the previous tied row)
    for c in props.column_names:
        dup &= _equal_previous(sub.column(c).combine_chunks())
    keep = np.ones(n, dtype=np.bool_)
    keep[pos[1:][dup]] = False
    return order[keep]

"""Read a prepared store back into :class:`~crm_helpers.store.arrays.EventArrays`.

``user``, ``t`` and ``event`` come out of Arrow as numpy views (zero-copy when a column is
one chunk, i.e. a store of one part; one concatenation otherwise). ``offsets`` is the
cumulative sum of ``users.parquet``'s per-user counts, ``user_ids`` its ids (object dtype for
strings), ``event_names`` the manifest's code table. Property columns convert as
:func:`~crm_helpers.store.arrays.from_frame` gives them from the pandas frame Ibis returns:
numbers without missing values stay numeric, strings become object arrays with ``None``
for missing, integers with missing values become float64 with NaN.

The zero-copy arrays are views of Arrow's memory and **read-only** (``writeable`` False,
unlike :func:`~crm_helpers.store.arrays.from_frame`'s): a kernel that writes in place copies
first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crm_helpers.store.arrays import EventArrays
from crm_helpers.store.manifest import read_manifest

__all__ = ["load_arrays", "load_columns"]


def _numpy(col: pa.ChunkedArray) -> np.ndarray:
    chunks = [c for c in col.chunks if len(c)] or col.chunks[:1]
    if not chunks:
        return col.to_numpy()
    if len(chunks) == 1:
        return chunks[0].to_numpy(zero_copy_only=False)
    return np.concatenate([c.to_numpy(zero_copy_only=False) for c in chunks])


def _property(col: pa.ChunkedArray) -> np.ndarray:
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _numpy(col)  # object array, None for missing
    if col.null_count == 0 and (
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    ):
        return _numpy(col)
    a = col.to_pandas().to_numpy()
    if a.dtype == object:
        a = np.array([None if v is None or v != v else v for v in a], dtype=object)
    return a


def load_arrays(store: str | Path, columns: Sequence[str] = ()) -> EventArrays:
    """The store's events as :class:`EventArrays`, with the property ``columns`` asked for.

    Parameters
    ----------
    store
        A store directory (see :mod:`crm_helpers.store.build`); its files are not checked
        here (:func:`crm_helpers.store.prepare.ensure_store` does that).
    columns
        Property columns to read; ``KeyError`` for one the store lacks.
    """
    store = Path(store)
    manifest = read_manifest(store)
    columns = _known_columns(manifest, columns)
    tbl = _read(store, manifest, ["user", "t", "event", *columns])
    users = pq.read_table(store / manifest["users_file"]["path"])
    counts = _numpy(users.column("n")).astype(np.int64, copy=False)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    uid = users.column("user_id")
    user_ids = _numpy(uid)
    return EventArrays(
        user=_numpy(tbl.column("user")).astype(np.int32, copy=False),
        t=_numpy(tbl.column("t")).astype(np.int64, copy=False),
        event=_numpy(tbl.column("event")).astype(np.int32, copy=False),
        offsets=offsets,
        user_ids=user_ids,
        event_names=tuple(manifest["event_names"]),
        columns={c: _property(tbl.column(c)) for c in columns},
    )


def _known_columns(manifest: dict, columns: Sequence[str]) -> list[str]:
    """``columns`` without repeats; ``KeyError`` naming those the store lacks."""
    columns = list(dict.fromkeys(columns))
    unknown = [c for c in columns if c not in manifest["columns"]]
    if unknown:
        raise KeyError(
            f"the event store has no column(s) {unknown}; it has {list(manifest['columns'])}"
        )
    return columns


def _read(store: Path, manifest: dict, names: list[str]) -> pa.Table:
    tables = [pq.read_table(store / f["path"], columns=names) for f in manifest["files"]]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def load_columns(store: str | Path, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Only the property ``columns`` of the store, in its row order (as :func:`load_arrays`
    gives them); ``KeyError`` for one the store lacks."""
    store = Path(store)
    manifest = read_manifest(store)
    columns = _known_columns(manifest, columns)
    if not columns:
        return {}
    tbl = _read(store, manifest, columns)
    return {c: _property(tbl.column(c)) for c in columns}

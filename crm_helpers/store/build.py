"""Build the prepared event store in DuckDB: sorted, integer-coded events as Parquet.

Layout of a store directory (:func:`crm_helpers.config.store_dir`, outside the data)::

    manifest.json                 format version, source key and hash, counts, code tables
    users.parquet                 user_id (the source type) and n (events), in code order
    events/part-NNNNN.parquet     user int32, t int64, event int32, then the property columns

Semantics (the same arrays as :func:`crm_helpers.store.arrays.from_frame`): the cleaned
events of the loaded data set (``data.events``) without rows missing ``user_id``, ``event``
or ``ts``; ``user`` is the rank of the user id among the distinct ids in ascending order,
``event`` the rank of the name in code-point (byte) order, both from 0; ``t`` is
``epoch_us(ts)``. Rows are sorted by ``(user, t, event)`` and, within an exact tie, by the
property columns in their order (ascending, NULLs last), so the store's content does not
depend on DuckDB's threads.

*Parts.* Users are never split across part files: users are dealt to parts in code order,
a new part starting once the rows before a user reach a multiple of ``rows_per_part``, so
part ``k`` holds a contiguous range of user codes (its ``first_user``/``last_user`` in the
manifest) and is one row group.

*Two paths, one content* (tested equal file by file, ``tests/store/test_store_build_paths.py``).

- **In memory** (sources of at most :data:`IN_MEMORY_ROWS` rows by their Parquet footers):
  one DuckDB scan of the cleaned events into Arrow, then :mod:`crm_helpers.store.memsort`:
  codes from the sorted distinct values, a stable sort by ``(user, t, event)`` in numpy, and
  only the rows tied on all three ordered by their properties (and, where validation's
  cleaning drops exact duplicate rows, the duplicates dropped then: they are adjacent after
  that order). The scan reads the cleaned events *without* that ``DISTINCT``, so it needs no
  hash table and keeps the source's row order (usually time order: the sort on time is then
  nearly linear); the rows kept are exactly those ``SELECT DISTINCT`` keeps (NULL equals
  NULL, NaN equals NaN). Parts are cut from the permutation and written with pyarrow.
- **DuckDB** (beyond): coding and sorting in the data set's DuckDB connection (it spills to
  disk beyond its memory limit). The sorted rows stream out as Arrow batches and are cut
  into the parts at the row counts known from the per-user counts, each written with
  pyarrow, so at most one part is held in Python. Not ``COPY ... TO``: it cannot cut files
  at user boundaries in one pass (``PARTITION_BY`` loses the sort order, measured), and a
  second pass (an unsorted partitioned write, then a sort per part) took 1.7x as long on
  the 3.1M-event world.

:func:`build_store` writes a complete store into a new directory; :mod:`crm_helpers.store.prepare`
swaps it into place under a lock. The manifest records the path taken (``build_path``) and
the wall seconds of its steps (``build_steps``).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from crm_helpers.store.manifest import FORMAT_VERSION, MANIFEST, source_hash, source_key

__all__ = ["IN_MEMORY_ROWS", "ROWS_PER_PART", "build_store", "property_columns"]

#: Target rows per part file (a part holds whole users, so it may hold a few more).
ROWS_PER_PART = 2_000_000
#: Sources of at most this many rows are built in memory (see the module docstring). The
#: build's process peaked at 0.49 GB (1M events) and 1.30 GB (10M), ~90 bytes an event
#: (benchmarks/README.md): 15M keeps it under the 2 GB of #25; larger sources take DuckDB.
IN_MEMORY_ROWS = 15_000_000
CORE = ("user_id", "event", "ts")


def property_columns(events) -> list[str]:
    """The events table's columns other than ``user_id``, ``event`` and ``ts``, in order."""
    return [c for c in events.columns if c not in CORE]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _rows_estimate(data) -> int:
    """An upper bound of the events' rows, without a scan: the Parquet footers' row counts,
    else (CSV) the file bytes / 16 (no event row is shorter)."""
    import pyarrow.parquet as pq

    from crm_helpers.data.sources import _data_files

    total = 0
    for f in _data_files(Path(data.files["events"])):
        if f.suffix == ".parquet":
            total += pq.read_metadata(f).num_rows
        else:
            total += f.stat().st_size // 16 + 1
    return total


def _source(data):
    """``(events, dedupe)``: the cleaned events without validation's ``distinct`` (and True)
    when that rule applies and the raw table is at hand, else ``(data.events, False)``.

    Dropping exact duplicates after the sort (they are adjacent then) gives the same rows
    as ``SELECT DISTINCT``, without its hash table, and keeps the source's row order
    (DuckDB preserves insertion order), which is usually time order: a cheap sort.
    """
    from crm_helpers.data.normalisation import apply_cleaning, normalise, plan_columns

    rules = dict(data.quality.cleaning.get("events", {}))
    raw = getattr(data, "raw", {}).get("events")
    if not rules.pop("distinct", False) or raw is None:
        return data.events, False
    aware = (getattr(data, "tz_aware", {}) or {}).get("events", frozenset())
    plan = plan_columns(raw, "events", data.schema, aware, data.con.name)
    clean = apply_cleaning(normalise(raw, plan), rules)
    if list(clean.columns) != list(data.events.columns):
        return data.events, False
    return clean, True


def build_store(
    data,
    dest: str | Path,
    *,
    rows_per_part: int = ROWS_PER_PART,
    in_memory_rows: int = IN_MEMORY_ROWS,
) -> dict[str, Any]:
    """Write the store of ``data`` (DuckDB over files) into the new directory ``dest``.

    Parameters
    ----------
    data
        A :class:`~crm_helpers.data.CRMData` loaded from files on DuckDB.
    dest
        A directory that does not exist yet; created, filled, ``manifest.json`` written last.
    rows_per_part
        Target rows per part file (see the module docstring).
    in_memory_rows
        The in-memory path runs when the source has at most this many rows (from the
        Parquet footers); beyond, the DuckDB path (it spills to disk).

    Returns
    -------
    dict
        The manifest written.
    """
    from crm_helpers.engine import epoch_us

    t0 = time.perf_counter()
    dest = Path(dest)
    (dest / "events").mkdir(parents=True)
    con = data.con
    raw = con.con  # the DuckDB connection under Ibis
    ev = data.events
    props = property_columns(ev)
    key = source_key(data)
    in_memory = _rows_estimate(data) <= in_memory_rows
    base, dedupe = _source(data) if in_memory else (ev, False)
    coded = base.filter(base.user_id.notnull() & base.event.notnull() & base.ts.notnull())
    coded = coded.mutate(t=epoch_us(coded.ts, "duckdb")).select("user_id", "event", "t", *props)
    src = f"crm_store_src_{uuid.uuid4().hex[:8]}"
    steps: dict[str, float] = {}

    def step(name: str) -> None:
        steps[name] = round(time.perf_counter() - t0 - sum(steps.values()), 3)

    order = "user, t, event" + "".join(f", {_q(p)} ASC NULLS LAST" for p in props)
    try:
        raw.execute(f"CREATE TEMP VIEW {src} AS {con.compile(coded)}")
        types = dict(
            raw.execute(f"SELECT column_name, column_type FROM (DESCRIBE {src})").fetchall()
        )
        if in_memory:
            files, event_names, n_users = _build_memory(
                raw, src, dest, props, dedupe, rows_per_part, step
            )
        else:
            files, event_names, n_users = _build_duckdb(
                raw, src, dest, props, order, rows_per_part, step
            )
    finally:
        raw.execute(f"DROP VIEW IF EXISTS {src}")
    manifest = {
        "format_version": FORMAT_VERSION,
        "source_hash": source_hash(key),
        "source": key,
        "data_dir": str(Path(data.data_dir).resolve()),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.perf_counter() - t0, 3),
        "build_path": "memory" if in_memory else "duckdb",
        "build_steps": steps,
        "n_events": sum(f["rows"] for f in files),
        "n_users": n_users,
        "event_names": event_names,
        "user_id_type": types["user_id"],
        "columns": {p: types[p] for p in props},
        "sort": f"({order})",
        "rows_per_part": int(rows_per_part),
        "users_file": {
            "path": "users.parquet",
            "rows": n_users,
            "bytes": (dest / "users.parquet").stat().st_size,
        },
        "files": files,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _build_memory(raw, src, dest, props, dedupe, rows_per_part, step):
    """The in-memory path: one scan into Arrow, coding and sorting in numpy
    (:mod:`crm_helpers.store.memsort`), parts cut from the permutation."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crm_helpers.store.memsort import code_sorted, resolve_ties, sort_order

    tbl = raw.sql(f"SELECT * FROM {src}").to_arrow_table()
    step("scan")
    user, user_ids = code_sorted(tbl.column("user_id"))
    event, names = code_sorted(tbl.column("event"))
    t = tbl.column("t").to_numpy()
    ptbl = tbl.select(props) if props else None
    del tbl
    step("codes")
    perm = sort_order(user, t, event, len(names))
    perm = resolve_ties(perm, user, t, event, ptbl, dedupe)
    user, t, event = user[perm], t[perm], event[perm]
    step("sort")
    counts = np.bincount(user, minlength=len(user_ids)).astype(np.int64)
    pq.write_table(
        pa.table({"user_id": user_ids, "n": pa.array(counts, type=pa.int64())}),
        dest / "users.parquet",
    )
    before = np.cumsum(counts) - counts
    part_of = before // int(rows_per_part)
    files: list[dict] = []
    folder = dest / "events"
    if len(counts) == 0:
        cols = {"user": pa.array(user), "t": pa.array(t), "event": pa.array(event)}
        empty = pa.table(cols)
        if ptbl is not None:
            for c in props:
                empty = empty.append_column(c, ptbl.column(c))
        out = folder / "part-00000.parquet"
        _write_part(empty, out)
        files.append(_entry(dest, out, 0, 0, -1))
    else:
        firsts = np.flatnonzero(np.r_[True, part_of[1:] != part_of[:-1]])
        lasts = np.r_[firsts[1:] - 1, len(counts) - 1]
        for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True):
            a, b = int(before[first]), int(before[last] + counts[last])
            part = pa.table(
                {
                    "user": pa.array(user[a:b]),
                    "t": pa.array(t[a:b]),
                    "event": pa.array(event[a:b]),
                }
            )
            if ptbl is not None:
                sub = ptbl.take(pa.array(perm[a:b]))
                for c in props:
                    part = part.append_column(c, sub.column(c))
            out = folder / f"part-{int(part_of[first]):05d}.parquet"
            _write_part(part, out)
            files.append(_entry(dest, out, b - a, first, last))
    step("write")
    return files, [str(x) for x in names.to_pylist()], len(counts)


def _build_duckdb(raw, src, dest, props, order, rows_per_part, step):
    """The DuckDB path (beyond ``in_memory_rows``): codes and the sort in the engine, which
    spills to disk beyond its memory limit; the sorted rows streamed into the parts."""
    tok = uuid.uuid4().hex[:8]
    users, names = f"crm_store_u_{tok}", f"crm_store_e_{tok}"
    pairs = f"crm_store_ue_{tok}"
    reader = None
    try:
        # one scan of the events for both code tables (a cleaned view may de-duplicate
        # rows, which every scan repeats): counts per (user, event), then users and names
        raw.execute(
            f"CREATE TEMP TABLE {pairs} AS SELECT user_id, event, count(*) AS n FROM {src} "
            "GROUP BY user_id, event"
        )
        raw.execute(
            f"""CREATE TEMP TABLE {users} AS
            SELECT user_id, n, (row_number() OVER w - 1)::INTEGER AS code,
                   (sum(n) OVER (w ROWS UNBOUNDED PRECEDING) - n) // {int(rows_per_part)} AS part
            FROM (SELECT user_id, sum(n)::BIGINT AS n FROM {pairs} GROUP BY user_id)
            WINDOW w AS (ORDER BY user_id)"""
        )
        raw.execute(
            f"""CREATE TEMP TABLE {names} AS
            SELECT event, (row_number() OVER (ORDER BY event) - 1)::INTEGER AS code
            FROM (SELECT DISTINCT event FROM {pairs})"""
        )
        step("codes")
        event_names = [
            r[0] for r in raw.execute(f"SELECT event FROM {names} ORDER BY code").fetchall()
        ]
        raw.execute(
            f"COPY (SELECT user_id, n FROM {users} ORDER BY code) TO {_lit(dest / 'users.parquet')} "
            "(FORMAT parquet)"
        )
        parts = raw.execute(
            f"SELECT part, count(*), sum(n), min(code), max(code) FROM {users} GROUP BY part ORDER BY part"
        ).fetchall()
        step("users_file")
        cols = ", ".join(f"s.{_q(p)}" for p in props)
        select = (
            f"SELECT u.code AS user, s.t, e.code AS event{', ' + cols if cols else ''} "
            f"FROM {src} s JOIN {users} u USING (user_id) JOIN {names} e USING (event)"
        )
        sizes = [(int(p[0]), int(p[2]), int(p[3]), int(p[4])) for p in parts] or [(0, 0, 0, -1)]
        reader = raw.sql(f"{select} ORDER BY {order}").to_arrow_reader(1 << 17)
        files = _write_parts(reader, dest / "events", sizes)
        step("sort_write")
    finally:
        if reader is not None:  # an open result blocks the connection (a failed build)
            reader.close()
        for name in (pairs, users, names):
            raw.execute(f"DROP TABLE IF EXISTS {name}")
    return files, event_names, sum(int(p[1]) for p in parts)


def _write_parts(reader, folder: Path, sizes: list[tuple[int, int, int, int]]) -> list[dict]:
    """Cut the sorted stream ``reader`` into part files of the known sizes, one row group
    each; ``sizes`` is ``(part, rows, first_user, last_user)`` per part, in order."""
    import pyarrow as pa

    files: list[dict] = []
    batches = iter(reader)
    pending = None
    for part, rows, first, last in sizes:
        buf, have = [], 0
        while have < rows:
            if pending is None or not len(pending):
                pending = next(batches)
            take = min(len(pending), rows - have)
            buf.append(pending.slice(0, take))
            pending = pending.slice(take)
            have += take
        out = folder / f"part-{part:05d}.parquet"
        _write_part(pa.Table.from_batches(buf, schema=reader.schema), out)
        files.append(_entry(folder.parent, out, rows, first, last))
    if pending is not None and len(pending) or next(batches, None) is not None:
        raise RuntimeError("the sorted events outnumber the per-user counts")
    return files


def _write_part(table, out: Path) -> None:
    """One part file, one row group (both build paths write through here)."""
    import pyarrow.parquet as pq

    pq.write_table(table, out, row_group_size=max(table.num_rows, 1))


def _entry(dest: Path, path: Path, rows: int, first: int, last: int) -> dict[str, Any]:
    return {
        "path": str(path.relative_to(dest)),
        "rows": rows,
        "bytes": path.stat().st_size,
        "first_user": first,
        "last_user": last,
    }

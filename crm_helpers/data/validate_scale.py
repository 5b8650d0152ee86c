"""The costly counts of validation, taken the cheap way first: keys, unknown users, date ends.

:func:`crm_helpers.data.validate.validate` counts every check in one aggregate query. Three
checks need more than a streaming aggregate: a key's distinct values (``duplicate_key``),
rows whose user_id is not in users (``unknown_user``) and a timestamp column's 99.9th
percentile and median (``future_dates``). At 10M messages these took most of the load time
(a hash of every key, a join, and a sort per column), so they are answered here, exactly,
in at most two further queries:

* **keys and users (DuckDB, integer ids)**: the first query returns each id column's
  min and max; a bitmap over that range (``bitstring_agg``) then counts distinct keys, and
  a bitmap of users' ids OR'ed with a table's user ids (``bit_count`` of the union minus
  users' own) says whether any user id is unknown. Exactly the distinct count; an unknown
  user is counted row by row (the anti-join) only when the bitmap finds one. Other engines,
  text ids and id ranges wider than :data:`MAX_BITMAP_RANGE` keep ``nunique`` and the
  anti-join in the first query.
* **date ends (every engine)**: the first query returns each timestamp column's max ``M``
  and non-null count ``N``. With ``c`` rows at or after ``M - 30 days + 1 s``, the exact
  99.9th percentile (linear interpolation: position ``0.999 (N - 1)``) is at least that
  date whenever ``c >= 0.001 N + 2``, so ``M`` is within the column's cutoff and there is
  nothing to report; when, besides, ``M`` is not beyond the load time + 1 day the median
  is not needed. Otherwise the exact percentile and median are computed as before.

The counts are written into the first query's row under the names the checks read
(``key_distinct``, ``unknown_users``, ``<col>_q``, ``<col>_median``; ``None`` for a
percentile that cannot matter), so the findings are those of the exact computation.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

import ibis
import ibis.expr.datatypes as dt

from crm_helpers.data.findings import _n, _TableContext

if TYPE_CHECKING:  # pragma: no cover
    from ibis.backends import BaseBackend

#: Widest id range (max - min + 1) counted with a bitmap (2^28 bits = 32 MB).
MAX_BITMAP_RANGE = 1 << 28
_EPOCH = _dt.datetime(1970, 1, 1)
_Q = 0.999


def bitmap_ids(backend: str, col: ibis.Column) -> bool:
    """Whether ``col``'s distinct values can be counted with a bitmap (DuckDB, integers)."""
    return backend == "duckdb" and col.type().is_integer()


def first_metrics(ctx: _TableContext, backend: str, single_key: str | None) -> dict:
    """The first query's aggregates for the key, the user ids and the date ends."""
    from crm_helpers.data.validate_dates import timestamp_columns

    t, ok = ctx.stage, ctx.plan.checkable
    m: dict = {}
    if single_key:
        m["key_n"] = t[single_key].count()
        if bitmap_ids(backend, t[single_key]):
            m["key_lo"], m["key_hi"] = t[single_key].min(), t[single_key].max()
        else:
            m["key_distinct"] = t[single_key].nunique()
    if ctx.users_ids is not None and "user_id" in ok and _user_bitmap(ctx, backend):
        m["uid_lo"], m["uid_hi"] = t.user_id.min(), t.user_id.max()
    for col in timestamp_columns(ctx):
        # the latest date, then its epoch (not an epoch per row); a float: 9999 fits
        m[f"{col}_max"] = t[col].max().epoch_seconds().cast("float64")
        m[f"{col}_nn"] = t[col].count()
    return m


def _user_bitmap(ctx: _TableContext, backend: str) -> bool:
    return bitmap_ids(backend, ctx.stage.user_id) and bitmap_ids(backend, ctx.users_ids.user_id)


def anti_join_in_first(ctx: _TableContext, backend: str) -> bool:
    """Whether the unknown-user count stays an anti-join in the first query."""
    return not _user_bitmap(ctx, backend)


def complete(con: BaseBackend, contexts: list[_TableContext], row: dict) -> None:
    """Fill ``row`` (``<table>__<key>``) with the counts the first query left out.

    On DuckDB the bitmaps and the tail counts are one query that scans each table once
    (one aggregate per table, every bitmap and tail count of it; then the unions of user-id
    bitmaps across tables); elsewhere the tail counts are one Ibis query.
    """
    users = next((c for c in contexts if c.name == "users"), None)
    u_lo, u_hi = row.get("users__key_lo"), row.get("users__key_hi")
    # users' ids fill their range when as many as the range is wide are non-null and
    # distinct (the distinct count comes with the bitmaps below): then every id of another
    # table inside that range is a user's, and no union of bitmaps is needed
    dense = (
        users is not None
        and users.keys == ("user_id",)
        and u_lo is not None
        and _n(row.get("users__key_n")) == u_hi - u_lo + 1
    )
    assumed: list[str] = []  # tables whose unknown_users = 0 rests on users being dense
    aggs: dict[str, dict[str, str]] = {}  # table -> {aggregate SQL: its alias}
    outer: dict[str, str] = {}  # row key -> SQL over the per-table aggregates

    def agg(ctx: _TableContext, sql: str) -> str:
        mine = aggs.setdefault(ctx.name, {})
        return f"a_{ctx.name}.{mine.setdefault(sql, f'x{len(mine)}')}"

    for ctx in contexts:
        p, t = f"{ctx.name}__", ctx.stage
        lo, hi = row.get(p + "key_lo"), row.get(p + "key_hi")
        if p + "key_lo" in row:
            key = ctx.keys[0]
            if lo is None:  # no key at all
                row[p + "key_distinct"] = 0
            elif hi - lo < MAX_BITMAP_RANGE:
                bits = agg(ctx, _bits(key, lo, hi))
                outer[p + "key_distinct"] = f"coalesce(bit_count({bits}), 0)"
            else:
                row[p + "key_distinct"] = _scalar(t[key].nunique())
        if p + "uid_lo" in row:
            t_lo, t_hi = row[p + "uid_lo"], row[p + "uid_hi"]
            if t_lo is None:  # no user ids
                row[p + "unknown_users"] = 0
            elif u_lo is None or t_lo < u_lo or t_hi > u_hi or u_hi - u_lo >= MAX_BITMAP_RANGE:
                row[p + "unknown_users"] = None  # counted below
            elif dense:  # every id in users' range is a user (confirmed below)
                row[p + "unknown_users"] = 0
                assumed.append(p)
            else:  # ids beyond users' own: the union has more bits than users' bitmap
                mine = agg(ctx, _bits("user_id", u_lo, u_hi))
                own = agg(users, _bits("user_id", u_lo, u_hi))
                outer[p + "unknown_ids"] = (
                    f"coalesce(bit_count({mine} | {own}) - bit_count({own}), 0)"
                )
    tails = _tails(contexts, row)
    if con.name == "duckdb":  # the tail counts join the bitmaps' scans
        by_name = {c.name: c for c in contexts}
        for k, (_, col, x) in tails.items():
            ctx = by_name[k.split("__", 1)[0]]
            lit = f"TIMESTAMP '{x.isoformat(sep=' ', timespec='microseconds')}'"
            outer[k] = agg(ctx, f"count(*) FILTER (WHERE {_q(col)} >= {lit})")
        tails = {}
    if outer:
        by_name = {c.name: c for c in contexts}
        froms = [
            f"(SELECT {', '.join(f'{sql} AS {a}' for sql, a in mine.items())} "
            f"FROM ({con.compile(by_name[name].stage)})) AS a_{name}"
            for name, mine in aggs.items()
        ]
        sql = (
            "SELECT "
            + ", ".join(f'{q} AS "{k}"' for k, q in outer.items())
            + " FROM "
            + " CROSS JOIN ".join(froms)
        )
        got = con.raw_sql(sql).fetchall()[0]
        for k, v in zip(outer, got, strict=True):
            row[k] = _n(v)
    if assumed and row.get("users__key_distinct") != _n(row.get("users__key_n")):
        for p in assumed:  # users has duplicate ids, so not dense: count exactly below
            row[p + "unknown_users"] = None
    if tails:
        parts = [
            t.aggregate(**{k: (t[col] >= ibis.literal(x, type=dt.timestamp)).cast("int64").sum()})
            for k, (t, col, x) in tails.items()
        ]
        joined = parts[0]
        for part in parts[1:]:
            joined = joined.cross_join(part)
        row.update(joined.to_pyarrow().to_pylist()[0])
    for ctx in contexts:  # the exact counts the cheap ones could not settle
        p, t = f"{ctx.name}__", ctx.stage
        if p + "unknown_ids" in row and _n(row.pop(p + "unknown_ids")) == 0:
            row[p + "unknown_users"] = 0
        elif p + "uid_lo" in row and row.get(p + "unknown_users") != 0:
            orphans = t.filter(t.user_id.notnull()).anti_join(ctx.users_ids, "user_id")
            row[p + "unknown_users"] = _scalar(orphans.count())
        _exact_quantiles(ctx, row, tails)


def _tails(contexts: list[_TableContext], row: dict) -> dict:
    """Per timestamp column whose max is not beyond the load time: count from ``M - 30 d``."""
    from crm_helpers.data.validate_dates import FUTURE_SLACK, FUTURE_TOLERANCE, timestamp_columns

    tails = {}
    for ctx in contexts:
        p = f"{ctx.name}__"
        for col in timestamp_columns(ctx):
            top = row.get(f"{p}{col}_max")
            if top is None:
                continue
            try:
                end = _EPOCH + _dt.timedelta(seconds=float(top))
                if end + _dt.timedelta(seconds=1) > ctx.now + FUTURE_SLACK:
                    continue  # the median decides the cutoff: exact quantiles
                x = end - FUTURE_TOLERANCE + _dt.timedelta(seconds=1)
            except OverflowError:  # near year 1 or 9999: exact quantiles
                continue
            tails[f"{p}{col}_tail"] = (ctx.stage, col, x)
    return tails


def _exact_quantiles(ctx: _TableContext, row: dict, tails: dict) -> None:
    from crm_helpers.data.validate_dates import timestamp_columns

    p, t = f"{ctx.name}__", ctx.stage
    need = {}
    for col in timestamp_columns(ctx):
        if row.get(f"{p}{col}_max") is None:
            continue
        tail = row.get(f"{p}{col}_tail")
        if tail is not None and _n(tail) >= (1 - _Q) * _n(row.get(f"{p}{col}_nn")) + 2:
            row[f"{p}{col}_q"] = row[f"{p}{col}_median"] = None  # nothing to report
            continue
        s = t[col].epoch_seconds()
        need[f"{p}{col}_q"] = s.quantile(_Q)
        need[f"{p}{col}_median"] = s.quantile(0.5)
    if need:
        row.update(t.aggregate(**need).to_pyarrow().to_pylist()[0])


def _q(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _bits(col: str, lo: int, hi: int) -> str:
    """A DuckDB aggregate: the bitmap of ``col``'s non-null values in ``[lo, hi]`` (as BIGINT)."""
    return f"bitstring_agg(CAST({_q(col)} AS BIGINT), {int(lo)}, {int(hi)})"


def _scalar(expr: ibis.Scalar) -> int:
    return _n(expr.to_pyarrow().as_py())

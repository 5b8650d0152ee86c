"""The costly counts of validation, taken the cheap way first: keys, unknown users, date ends.

:func:`crm_helpers.data.validate.validate` counts every check in one aggregate query. Three
checks need more than a streaming aggregate: a key's distinct values (``duplicate_key``),
rows whose user_id is not in users (``unknown_user``) and a timestamp column's 99.9th
percentile and median (``future_dates``). At 10M messages these took most of the load time
(a hash of every key, a join, and a sort per column), so they are answered here, exactly,
in at most two further queries (none for clean integer ids and dates in Parquet on DuckDB):

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
* **one scan per table**: on DuckDB the bitmaps and tail counts of a table are one
  aggregate (one query for all tables). When users' ids fill their range (as many non-null
  ids as the range is wide, and all distinct), a table whose ids lie in that range has no
  unknown user and needs no bitmap of its ids. On DuckDB over Parquet files,
  :func:`guesses` reads each key's range and each timestamp column's latest value from the
  files' statistics (no scan) and the first query takes the key bitmap and the tail count
  with them; they are used only when that query proves the guess covers the data (key
  range inside the guessed one; column max not after the guessed date, so the count is a
  lower bound of ``c``), otherwise the second query counts as above.

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

    from crm_helpers.data.crmdata import CRMData

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


def guesses(data: CRMData, contexts: list[_TableContext], backend: str) -> dict:
    """Free guesses of the ranges the second query needs, from Parquet statistics.

    On DuckDB over Parquet files the min and max of a plain column come from the files'
    statistics without a scan: each single integer key's range (``<t>__key_glo/ghi``) and
    each timestamp column's latest raw value as naive UTC (``<t>__<col>_guess``, ``None``
    when the file's column is no timestamp). :func:`first_metrics` turns them into a key
    bitmap and a tail count in the first query; :func:`complete` uses those only when the
    first query proves the guess covers the data (the key inside the guessed range; the
    guessed latest date not before the column's max, so the count from it is a lower bound
    of the tail count), else it counts as without a guess. Empty for other engines and
    sources (where the min and max would cost a scan).
    """
    files = getattr(data, "files", None) or {}
    if backend != "duckdb" or not all(_parquet(files.get(c.name)) for c in contexts):
        return {}
    raw = data.raw or data.tables
    parts = []
    for ctx in contexts:
        p, t, r = f"{ctx.name}__", ctx.stage, raw[ctx.name]
        m = {}
        key = ctx.keys[0] if len(ctx.keys) == 1 and ctx.keys[0] in ctx.plan.checkable else None
        if key and bitmap_ids(backend, t[key]):
            m[p + "key_glo"], m[p + "key_ghi"] = t[key].min(), t[key].max()
        for col in _timestamp_columns(ctx):
            if col in r.columns and r[col].type().is_timestamp():
                m[f"{p}{col}_guess"] = r[col].max()
        if m:
            parts.append(_stats_query(t, r, m))
    if not parts:
        return {}
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.cross_join(part)
    got = joined.to_pyarrow().to_pylist()[0]
    for k, v in got.items():
        if k.endswith("_guess") and isinstance(v, _dt.datetime) and v.tzinfo is not None:
            got[k] = v.astimezone(_dt.UTC).replace(tzinfo=None)
    return got


def _stats_query(t: ibis.Table, r: ibis.Table, m: dict) -> ibis.Table:
    """One table's guesses: key range from the stage, latest dates from the raw table."""
    ids = {k: v for k, v in m.items() if not k.endswith("_guess")}
    dates = {k: v for k, v in m.items() if k.endswith("_guess")}
    if ids and dates:
        return t.aggregate(**ids).cross_join(r.aggregate(**dates))
    return t.aggregate(**ids) if ids else r.aggregate(**dates)


def _parquet(path) -> bool:
    if path is None:
        return False
    if path.is_dir():
        return any(path.rglob("*.parquet"))
    return path.suffix == ".parquet"


def _timestamp_columns(ctx: _TableContext) -> list[str]:
    from crm_helpers.data.validate_dates import timestamp_columns

    return timestamp_columns(ctx)


def guessed_metrics(ctx: _TableContext, backend: str, single_key: str | None, guess: dict) -> dict:
    """The first query's aggregates that use :func:`guesses`: a key bitmap, tail counts."""
    from crm_helpers.data.validate_dates import FUTURE_TOLERANCE

    t, p = ctx.stage, f"{ctx.name}__"
    m: dict = {}
    lo, hi = guess.get(p + "key_glo"), guess.get(p + "key_ghi")
    if single_key and lo is not None and hi - lo < MAX_BITMAP_RANGE:
        k = t[single_key].cast("int64")
        m["key_gbits"] = _bit_count(_bitstring_agg(k, int(lo), int(hi), where=k.between(lo, hi)))
    for col in _timestamp_columns(ctx):
        g = guess.get(f"{p}{col}_guess")
        if not isinstance(g, _dt.datetime):
            continue
        try:
            x = g - FUTURE_TOLERANCE + _dt.timedelta(seconds=1)
        except OverflowError:
            continue
        m[f"{col}_gtail"] = (t[col] >= ibis.literal(x, type=dt.timestamp)).cast("int64").sum()
        # the guess is usable when not before the column's max (compared in the engine)
        m[f"{col}_gok"] = (t[col].max() <= ibis.literal(g, type=dt.timestamp)).fill_null(False)
    return m


@ibis.udf.agg.builtin(name="bitstring_agg")
def _bitstring_agg(x: dt.int64, lo: dt.int64, hi: dt.int64) -> dt.binary:  # type: ignore[empty-body]
    """DuckDB ``bitstring_agg(x, lo, hi)``: the bitmap of the values in ``[lo, hi]``."""


@ibis.udf.scalar.builtin(name="bit_count")
def _bit_count(b: dt.binary) -> dt.int64:  # type: ignore[empty-body]
    """DuckDB ``bit_count(BIT)``: the bits set."""


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
            glo, ghi = row.get(p + "key_glo"), row.get(p + "key_ghi")
            if lo is None:  # no key at all
                row[p + "key_distinct"] = 0
            elif p + "key_gbits" in row and glo is not None and glo <= lo and hi <= ghi:
                row[p + "key_distinct"] = _n(row[p + "key_gbits"])  # the guess covered it
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
                g_tail = row.get(f"{p}{col}_gtail")
                if (
                    row.get(f"{p}{col}_gok") is True  # max <= guess: the count is a lower bound
                    and g_tail is not None
                    and _n(g_tail) >= (1 - _Q) * _n(row.get(f"{p}{col}_nn")) + 2
                ):
                    row[f"{p}{col}_tail"] = g_tail  # settles it (see _exact_quantiles)
                    continue
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

"""Reference implementations of the ordered, windowed funnel, for the benchmark and its tests.

Every implementation reads an events Parquet file (``user_id`` int64, ``event`` string,
``ts`` timestamp) end to end and returns the number of users reaching each step.

Semantics (shared with :mod:`crm_helpers.funnels`): events with the same ``(user, ts)`` are
one *moment*. A user reaches step ``m`` if there are moments ``t_1 < t_2 < ... < t_m`` with
moment ``t_k`` holding step ``k``'s event and ``t_m - t_1 <= window`` (inclusive). Other
events may occur in between. "Users reaching step k" counts users whose maximal ``m >= k``.

The SQL, polars and pandas implementations use the greedy idea with ASOF joins: for each
step-1 moment (a candidate start), the earliest step-2 moment strictly after it, then the
earliest step-3 moment strictly after that, and so on, stopping once the chain leaves the
window. For a fixed start the greedy choice minimises every ``t_k`` (exchange argument),
so a user reaches step ``m`` iff some start's greedy chain does; strict "after" makes ties
one moment. The numpy kernel is the state machine, vectorised over events sorted by
``(user, time)`` (:func:`sorted_kernel`). :func:`funnel_state_machine` is the plain-Python
state machine used as the test reference.

Data: :func:`ensure_data` writes a seeded synthetic log (``events.parquet`` and
``users.parquet``, accepted by :func:`crm_helpers.load`) into a scratch directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

STEPS: tuple[str, ...] = ("visit", "product_view", "add_to_cart", "purchase")
OTHER_EVENTS: tuple[str, ...] = ("search", "login", "scroll", "share", "review", "wishlist")
WINDOW_DAYS: float = 7.0
DEFAULT_DATA_DIR = Path("/tmp/crm_bench")
US_PER_DAY = 86_400 * 1_000_000

# Event mix (realistic funnel shape: each step rarer than the one before) and the offset of
# each event inside a session, in seconds (visits first, purchases last).
_EVENT_P = dict(
    zip(
        STEPS + OTHER_EVENTS,
        (0.28, 0.24, 0.08, 0.03, 0.12, 0.08, 0.07, 0.04, 0.03, 0.03),
        strict=True,
    )
)
_OFFSET_S = {
    "visit": (0, 300),
    "product_view": (60, 1200),
    "add_to_cart": (300, 1500),
    "purchase": (600, 1800),
}
_SPAN_DAYS = 90
_T0_US = 1_704_067_200 * 1_000_000  # 2024-01-01 00:00:00 UTC


def window_us(window_days: float = WINDOW_DAYS) -> int:
    """The conversion window in microseconds."""
    return round(window_days * US_PER_DAY)


# --- data --------------------------------------------------------------------------------


def generate_events(n_users: int, n_events: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """A seeded synthetic event log, built with vectorised numpy.

    Users have a skewed (log-normal) number of events split over sessions spread across
    ~90 days; inside a session, funnel events come in order with random offsets, at second
    resolution (so some events of a user share a timestamp: ties).

    Parameters
    ----------
    n_users, n_events
        Size of the log (``n_events`` rows over ``n_users`` users).
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    events, users
        ``events``: ``n_events`` rows ``user_id`` int64, ``event`` string, ``ts``
        timestamp[us, tz=UTC], in time order (as a log is written). ``users``: ``n_users``
        rows ``user_id`` int64, ``signup_at`` timestamp[us, tz=UTC].
    """
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 1.0, n_users)
    per_user = rng.multinomial(n_events, weights / weights.sum())
    user = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    # sessions: about one per 8 events, at least one per user
    n_sess = np.maximum(1, np.ceil(per_user / 8).astype(np.int64))
    sess_offset = np.concatenate(([0], np.cumsum(n_sess)[:-1]))
    sess_start = rng.integers(0, (_SPAN_DAYS * 86_400) - 3_600, int(n_sess.sum()))
    sess_id = sess_offset[user] + (rng.random(n_events) * n_sess[user]).astype(np.int64)

    names = list(_EVENT_P)
    code = rng.choice(len(names), size=n_events, p=np.array(list(_EVENT_P.values())))
    lo = np.zeros(len(names), dtype=np.int64)
    hi = np.full(len(names), 1_800, dtype=np.int64)
    for i, name in enumerate(names):
        if name in _OFFSET_S:
            lo[i], hi[i] = _OFFSET_S[name]
    offset = lo[code] + (rng.random(n_events) * (hi[code] - lo[code])).astype(np.int64)
    offset[rng.random(n_events) < 0.01] = 0  # some events exactly at the session start: ties
    ts_s = sess_start[sess_id] + offset

    order = np.argsort(ts_s, kind="stable")
    ts_us = pa.array(_T0_US + ts_s[order] * 1_000_000, type=pa.timestamp("us", tz="UTC"))
    event = pa.DictionaryArray.from_arrays(
        pa.array(code[order].astype(np.int32)), pa.array(names)
    ).cast(pa.string())
    events = pa.table({"user_id": pa.array(user[order]), "event": event, "ts": ts_us})

    signup_s = rng.integers(-30 * 86_400, 0, n_users)
    users = pa.table(
        {
            "user_id": pa.array(np.arange(n_users, dtype=np.int64)),
            "signup_at": pa.array(_T0_US + signup_s * 1_000_000, type=pa.timestamp("us", tz="UTC")),
        }
    )
    return events, users


def ensure_data(
    n_users: int, n_events: int, seed: int = 0, data_dir: str | Path = DEFAULT_DATA_DIR
) -> Path:
    """The directory holding the log of this size and seed, generated on first use.

    Returns ``data_dir / f"u{n_users}_e{n_events}_s{seed}"`` with ``events.parquet`` and
    ``users.parquet``; files already there (marked complete) are reused.
    """
    out = Path(data_dir) / f"u{n_users}_e{n_events}_s{seed}"
    done = out / ".complete"
    if done.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    events, users = generate_events(n_users, n_events, seed)
    for name, table in (("events", events), ("users", users)):
        tmp = out / f".{name}.parquet.tmp"  # hidden while written; renamed when whole
        pq.write_table(table, tmp)
        tmp.replace(out / f"{name}.parquet")
    done.write_text(json.dumps({"n_users": n_users, "n_events": n_events, "seed": seed}))
    return out


def events_path(data: str | Path) -> Path:
    """``data/events.parquet`` when given a directory, else ``data`` itself."""
    data = Path(data)
    return data / "events.parquet" if data.is_dir() else data


# --- implementations -----------------------------------------------------------------------


def funnel_duckdb_sql(
    data: str | Path, steps: Sequence[str] = STEPS, window_days: float = WINDOW_DAYS
) -> list[int]:
    """Hand-written DuckDB SQL straight over Parquet: one scan, one ASOF join per step.

    Returns
    -------
    list[int]
        Users reaching each step (length ``len(steps)``).
    """
    import duckdb

    return _duckdb_counts(duckdb.connect(), funnel_sql(events_path(data), steps, window_days))


def funnel_sql(path: str | Path, steps: Sequence[str], window_days: float = WINDOW_DAYS) -> str:
    """The SQL of :func:`funnel_duckdb_sql` (one row, columns ``s1 .. sN``)."""
    w = window_us(window_days)
    in_list = ", ".join(_sql_str(s) for s in steps)
    ctes = [
        f"e AS MATERIALIZED (SELECT user_id, epoch_us(ts) AS t, event "
        f"FROM read_parquet({_sql_str(str(path))}) WHERE event IN ({in_list}))"
    ]
    for k, step in enumerate(steps, 1):
        ctes.append(f"m{k} AS (SELECT user_id, t FROM e WHERE event = {_sql_str(step)})")
    ctes.append("c1 AS MATERIALIZED (SELECT user_id, t AS t1, t AS tk FROM m1)")
    for k in range(2, len(steps) + 1):
        ctes.append(
            f"c{k} AS MATERIALIZED (SELECT c.user_id, c.t1, m.t AS tk FROM c{k - 1} c "
            f"ASOF JOIN m{k} m ON c.user_id = m.user_id AND c.tk < m.t "
            f"WHERE m.t - c.t1 <= {w})"
        )
    cols = ", ".join(
        f"(SELECT count(DISTINCT user_id) FROM c{k}) AS s{k}" for k in range(1, len(steps) + 1)
    )
    return "WITH " + ",\n".join(ctes) + f"\nSELECT {cols}"


def funnel_duckdb_sql_windows(
    data: str | Path, steps: Sequence[str] = STEPS, window_days: float = WINDOW_DAYS
) -> list[int]:
    """DuckDB SQL, window-function form (portable to Spark): the state machine, pruned.

    The variant proposed for ``crm_helpers.funnels.core``: see :func:`funnel_sql_windows`.
    """
    import duckdb

    sql = funnel_sql_windows(events_path(data), steps, window_days)
    return _duckdb_counts(duckdb.connect(), sql)


def funnel_sql_windows(
    path: str | Path, steps: Sequence[str], window_days: float = WINDOW_DAYS
) -> str:
    """The state machine with one window per step over only the rows that step needs.

    ``c{k}`` holds the step-``k`` events that end a valid chain, with ``s`` (entry time of
    the latest-starting chain) and ``pv`` (time of the previous step). Step ``k + 1``'s
    window runs over ``c{k}`` UNION ALL the step-``k+1`` events only (not over every
    event), with a RANGE frame ending 1 microsecond before the row, so rows at the same
    instant (one moment) never see each other: no moment GROUP BY is needed. Times are
    ``epoch_us(ts)`` (a cheap integer), not ``DATE_DIFF`` from a constructed epoch.
    """
    w = window_us(window_days)
    in_list = ", ".join(_sql_str(s) for s in steps)
    ctes = [
        f"e AS (SELECT user_id, epoch_us(ts) AS t, event FROM read_parquet({_sql_str(str(path))}) "
        f"WHERE event IN ({in_list}))",
        f"c1 AS (SELECT user_id, t, t AS s, NULL::BIGINT AS pv FROM e "
        f"WHERE event = {_sql_str(steps[0])})",
    ]
    for k in range(2, len(steps) + 1):
        ctes.append(
            f"c{k} AS (SELECT user_id, t, s, pv FROM ("
            f"SELECT user_id, t, is_step, max(s) OVER w AS s, "
            f"max(CASE WHEN s IS NOT NULL THEN t END) OVER w AS pv FROM ("
            f"SELECT user_id, t, s, false AS is_step FROM c{k - 1} UNION ALL "
            f"SELECT user_id, t, NULL, true FROM e WHERE event = {_sql_str(steps[k - 1])}) "
            f"WINDOW w AS (PARTITION BY user_id ORDER BY t "
            f"RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) "
            f"WHERE is_step AND s IS NOT NULL AND t - s <= {w})"
        )
    cols = ", ".join(
        f"(SELECT count(DISTINCT user_id) FROM c{k}) AS s{k}" for k in range(1, len(steps) + 1)
    )
    return "WITH " + ",\n".join(ctes) + f"\nSELECT {cols}"


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _duckdb_counts(con, sql: str) -> list[int]:
    row = con.execute(sql).fetchone()
    return [int(v) for v in row]


def funnel_polars(
    data: str | Path, steps: Sequence[str] = STEPS, window_days: float = WINDOW_DAYS
) -> list[int]:
    """polars: lazy scan with the event filter pushed into Parquet, one ``join_asof`` per step."""
    import polars as pl

    w = window_us(window_days)
    e = (
        pl.scan_parquet(events_path(data))
        .filter(pl.col("event").is_in(list(steps)))
        .select("user_id", pl.col("ts").dt.epoch("us").alias("t"), "event")
        .collect()
    )
    moments = [
        e.filter(pl.col("event") == s).select("user_id", "t").sort("user_id", "t") for s in steps
    ]
    chain = moments[0].select("user_id", pl.col("t").alias("t1"), pl.col("t").alias("tk"))
    counts = [chain["user_id"].n_unique()]
    for m in moments[1:]:
        chain = (
            chain.join_asof(
                m.rename({"t": "tn"}),
                left_on="tk",
                right_on="tn",
                by="user_id",
                strategy="forward",
                allow_exact_matches=False,
                check_sortedness=False,
            )
            .filter(pl.col("tn") - pl.col("t1") <= w)
            .select("user_id", "t1", pl.col("tn").alias("tk"))
        )
        counts.append(chain["user_id"].n_unique())
    return counts


def funnel_pandas(
    data: str | Path, steps: Sequence[str] = STEPS, window_days: float = WINDOW_DAYS
) -> list[int]:
    """pandas: ``read_parquet`` with the event filter, one ``merge_asof`` per step."""
    import pandas as pd

    w = window_us(window_days)
    e = pd.read_parquet(
        events_path(data),
        columns=["user_id", "event", "ts"],
        filters=[("event", "in", list(steps))],
    )
    e["t"] = e["ts"].dt.as_unit("us").astype("int64")
    moments = [e.loc[e["event"] == s, ["user_id", "t"]].sort_values("t") for s in steps]
    del e
    chain = moments[0].rename(columns={"t": "tk"})
    chain["t1"] = chain["tk"]
    counts = [chain["user_id"].nunique()]
    for m in moments[1:]:
        joined = pd.merge_asof(
            chain.sort_values("tk"),
            m.rename(columns={"t": "tn"}),
            left_on="tk",
            right_on="tn",
            by="user_id",
            direction="forward",
            allow_exact_matches=False,
        )
        joined = joined[joined["tn"].notna() & (joined["tn"] - joined["t1"] <= w)]
        chain = pd.DataFrame(
            {
                "user_id": joined["user_id"].to_numpy(),
                "tk": joined["tn"].to_numpy(dtype="int64"),
                "t1": joined["t1"].to_numpy(),
            }
        )
        counts.append(chain["user_id"].nunique())
    return counts


def read_numpy(
    data: str | Path, steps: Sequence[str] = STEPS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read the events into numpy: ``user_id`` int64, ``ts`` int64 microseconds, step code.

    The step code is ``k`` (0-based) for step ``k``'s event and -1 for any other event.
    The ``event`` column is read dictionary-encoded, so no string is materialised.
    """
    t = pq.read_table(
        events_path(data), columns=["user_id", "event", "ts"], read_dictionary=["event"]
    )
    ev = t.column("event").combine_chunks()
    lookup = np.array([steps.index(s) if s in steps else -1 for s in ev.dictionary.to_pylist()])
    code = lookup[ev.indices.to_numpy(zero_copy_only=False)] if len(lookup) else np.zeros(0, int)
    ts = t.column("ts").cast(pa.timestamp("us")).combine_chunks()
    return (
        t.column("user_id").to_numpy(),
        ts.view(pa.int64()).to_numpy(),
        code.astype(np.int8),
    )


def numpy_kernel(
    user: np.ndarray, ts: np.ndarray, code: np.ndarray, n_steps: int, window: int
) -> list[int]:
    """The funnel over flat arrays with vectorised numpy: sort, then :func:`sorted_kernel`.

    Parameters
    ----------
    user, ts, code
        One entry per event (any order): user id (int64), time (int64, e.g. microseconds),
        step code (0-based step index, -1 for other events).
    n_steps
        Number of steps.
    window
        The conversion window in the units of ``ts`` (inclusive).

    Returns
    -------
    list[int]
        Users reaching each step.
    """
    key, code, span, window = sort_events(user, ts, code, n_steps, window)
    return sorted_kernel(key, code, span, n_steps, window)


def sort_events(
    user: np.ndarray, ts: np.ndarray, code: np.ndarray, n_steps: int, window: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Keep step events and sort them by composite key ``user * span + time``.

    Times are divided by their common divisor (e.g. whole seconds); sparse user ids are
    replaced by dense ranks. Returns the sorted keys, their step codes, ``span`` and the
    window in the key's time units. The step code rides in the key's low bits when it
    fits (one ``np.sort``), else an ``argsort`` orders the codes.
    """
    keep = code >= 0
    user, ts, code = user[keep], ts[keep], code[keep]
    if len(user) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int8), 1, window
    u = user - user.min()
    if int(u.max()) >= len(u):  # sparse ids: dense ranks keep the composite key small
        u = np.unique(u, return_inverse=True)[1].astype(np.int64)
    t = ts - ts.min()
    g = int(np.gcd.reduce(t)) or 1
    if g > 1:
        t //= g
        window //= g  # (t - t1) is a multiple of g: t - t1 <= w  <=>  (t - t1)/g <= w // g
    span = int(t.max()) + 1
    n_users = int(u.max()) + 1
    if n_users * span > 2**63 - 1:
        raise OverflowError("users x time span overflows the int64 composite key")
    key = u * span + t
    bits = max(1, (n_steps - 1).bit_length())
    if n_users * span <= (2**63 - 1) >> bits:  # step code in the low bits: one plain sort
        packed = np.sort((key << bits) | code.astype(np.int64))
        return packed >> bits, (packed & ((1 << bits) - 1)).astype(np.int8), span, window
    order = np.argsort(key)
    return key[order], code[order], span, window


def sorted_kernel(
    key: np.ndarray, code: np.ndarray, span: int, n_steps: int, window: int
) -> list[int]:
    """The funnel state machine, vectorised, over events sorted by ``(user, time)``.

    Parameters
    ----------
    key
        Sorted composite keys ``user * span + time`` (int64) of step events only.
    code
        0-based step of each event (same order).
    span, window
        Time span of the key and the window, in the key's time units.

    Returns
    -------
    list[int]
        Users reaching each step.

    Notes
    -----
    ``S`` holds, at each step-``k`` event, the key of the entry (step-1 moment) of the
    latest-starting valid chain ending there (-1 if none). For step ``k + 1``, a running
    ``maximum.accumulate`` of ``S`` read at the last position *before the event's moment*
    (ties are one moment) gives the latest entry among strictly earlier moments; it belongs
    to the same user iff it is ``>= user * span``, and is in the window iff
    ``key - entry <= window`` (same user, so the difference is the time difference).
    Each step is a handful of sequential passes: O(n) per step after the sort.
    """
    n = len(key)
    if n == 0:
        return [0] * n_steps
    new_moment = np.empty(n, dtype=bool)
    new_moment[0] = True
    np.not_equal(key[1:], key[:-1], out=new_moment[1:])
    idx = np.arange(n, dtype=np.int64)
    before = np.maximum.accumulate(np.where(new_moment, idx, 0)) - 1  # last index of earlier moment
    has_before = before >= 0
    before[~has_before] = 0
    user_base = key - key % span
    entry = np.where(code == 0, key, -1)
    counts = [_n_unique_sorted(user_base[code == 0])]
    for k in range(1, n_steps):
        best = np.maximum.accumulate(entry)[before]
        ok = (code == k) & has_before & (best >= user_base) & (key - best <= window)
        entry = np.where(ok, best, -1)
        counts.append(_n_unique_sorted(user_base[ok]))
    return counts


def _n_unique_sorted(a: np.ndarray) -> int:
    return 0 if len(a) == 0 else int(np.count_nonzero(a[1:] != a[:-1])) + 1


def funnel_numpy(
    data: str | Path, steps: Sequence[str] = STEPS, window_days: float = WINDOW_DAYS
) -> list[int]:
    """numpy end to end: :func:`read_numpy` then :func:`numpy_kernel`."""
    user, ts, code = read_numpy(data, steps)
    return numpy_kernel(user, ts, code, len(steps), window_us(window_days))


def funnel_helper(
    data: str | Path,
    steps: Sequence[str] = STEPS,
    window_days: float = WINDOW_DAYS,
    engine="duckdb",
) -> list[int]:
    """The project helper: ``crm_helpers.funnels.funnel_table`` on ``crm_helpers.load(data)``.

    ``data`` is the data directory (``events.parquet`` and ``users.parquet``).
    """
    import crm_helpers
    from crm_helpers.funnels import FunnelSpec, funnel_table

    loaded = crm_helpers.load(data, engine=engine, validate=False)
    spec = FunnelSpec(list(steps), mode="ordered", conversion_window_days=window_days)
    table = funnel_table(loaded.events, spec)
    return [int(v) for v in table["users"].tolist()]


def helper_available() -> bool:
    """Whether ``crm_helpers.funnels`` (FunnelSpec, funnel_table) can be imported."""
    try:
        from crm_helpers.funnels import FunnelSpec, funnel_table  # noqa: F401
    except ImportError:
        return False
    return True


def funnel_state_machine(
    user: Sequence, ts: Sequence, event: Sequence[str], steps: Sequence[str], window
) -> list[int]:
    """Plain-Python O(n)-per-user state machine (the semantics' definition; small data only).

    ``s[k]`` is the latest entry time of a valid chain ending at step ``k``; moments are
    processed in time order and each moment's new state is computed from the state of
    strictly earlier moments. ``window`` is in the units of ``ts``.
    """
    by_user: dict = {}
    for u, t, e in zip(user, ts, event, strict=True):
        by_user.setdefault(u, {}).setdefault(t, set()).add(e)
    n = len(steps)
    counts = [0] * n
    for moments in by_user.values():
        s: list = [None] * n
        best = 0
        for t in sorted(moments):
            evs = moments[t]
            prev = list(s)
            for k, step in enumerate(steps):
                if step not in evs:
                    continue
                if k == 0:
                    s[0] = t
                elif prev[k - 1] is not None and t - prev[k - 1] <= window:
                    s[k] = prev[k - 1]
                if s[k] is not None:
                    best = max(best, k + 1)
        for k in range(best):
            counts[k] += 1
    return counts


#: name -> callable(data_dir, steps, window_days) -> counts (the helper needs crm_helpers.funnels)
IMPLEMENTATIONS: dict[str, Callable[..., list[int]]] = {
    "duckdb_sql": funnel_duckdb_sql,
    "duckdb_sql_windows": funnel_duckdb_sql_windows,
    "polars": funnel_polars,
    "pandas": funnel_pandas,
    "numpy": funnel_numpy,
    "helper": funnel_helper,
}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall seconds and result of ``fn()``."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out

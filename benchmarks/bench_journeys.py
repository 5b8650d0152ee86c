"""Benchmark: directly-follows counts and depth-5 paths from an anchor, end to end from Parquet.

    .venv/bin/python benchmarks/bench_journeys.py --sizes 10M,50M      # on a quiet machine
    .venv/bin/python benchmarks/bench_journeys.py --sizes 200k --repeat 1   # a quick check

The log is the funnel benchmark's (``funnel_impls.ensure_data``: ``user_id`` int64, ``event``
string, ``ts``; ties at the same second are common). One journey per user, raw event names;
events are ordered by ``(ts, event name)`` within a user (the tie rule of
:mod:`crm_helpers.journeys.core`). Each implementation returns the transition counts
``{(a, b): n}`` and the counts of the paths of depth 5 after each user's FIRST anchor event
``{(anchor, s1, ..., s5): n}`` (shorter at the journey's end); all must be equal (a mismatch
is flagged and the exit status is 1).

Implementations: ``helper`` (:func:`crm_helpers.journeys.flow` on DuckDB: both counts from
one window and one ``GROUP BY``), ``helper_separate`` (:func:`crm_helpers.journeys.transitions`
then :func:`~crm_helpers.journeys.paths`: two queries, each a sort of the events),
``duckdb_sql`` (hand-written ``LEAD`` over dictionary-encoded small-integer event codes,
decoded after the count, two queries), ``duckdb_sql_one_pass`` (the same SQL in ``flow``'s
shape: one window and one ``GROUP BY``; "fastest baseline" is the fastest of the two SQLs,
polars and pandas), ``polars
(``shift().over``), ``pandas`` (``groupby().shift``), ``numpy`` (one lexsort and array
shifts: the practical floor) and ``retentioneering`` (its ``Eventstream`` and
``transition_graph_data(edge_weight="count")``, run with the Python of a throwaway venv made
by ``benchmarks/retentioneering_env.sh``, ``--rete-python``; its time includes its
preparation, which is also reported alone). retentioneering has no whole-path counts after
an anchor (its step Sankey counts nodes and links per step, not paths), so its row is
checked on the transition counts only. Its events are ordered by the same tie rule: it
orders a path by its ``index`` column, which is given as the rank by ``(ts, event)``.

From the prepared arrays (#25): ``kernel`` (:mod:`crm_helpers.journeys.kernel`: the coded
journeys built from :class:`~crm_helpers.store.arrays.EventArrays`, then the transition
counts and the paths), ``kernel_times`` (the same with the transition times, as the
report's ``transitions(prep)``), ``floor`` (the minimal numpy on the same arrays: one
``bincount`` of consecutive event-code pairs within users and the depth-5 shifts of the first
anchors; raw names are the steps, so the arrays' tie order is the journeys') and
``floor_dfg`` (the directly-follows counts alone: the issue's 0.17 s at 10M) with
``kernel_dfg`` (the kernel's journeys and those counts alone, to compare with it), and the
same with the median / p90 transition times: ``floor_dfg_times`` (:func:`journey_kernels._floor_times`:
one radix argsort of the 16-bit transition codes, the gaps gathered in that order, one
``np.partition`` per transition) with ``kernel_dfg_times``, and ``floor_times`` (``floor``
with the times) for ``kernel_times``. Their arrays are built in the worker before the clock
starts (read, code, sort; the time is printed as "arrays"), as the prepared store will hand
them over; each kernel row's ratio is to the floor of the same output (:data:`FLOOR_OF`),
by wall and by CPU time. The transition times are compared across the rows that have them.

Each implementation runs in its own subprocess (``--repeat`` times, best wall time and best
CPU time, ``getrusage`` of the worker: user + system seconds of all its threads); peak
memory is the maximum RSS of the subprocess's process tree, polled every 20 ms with psutil
(``ru_maxrss`` is not used: a child inherits its parent's high-water mark on Linux).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import funnel_impls as F  # noqa: E402
from journey_kernels import (  # noqa: E402
    ANCHOR,
    DEPTH,
    journeys_floor,
    journeys_floor_dfg,
    journeys_floor_dfg_times,
    journeys_floor_times,
    journeys_kernel,
    journeys_kernel_dfg,
    prepared_arrays,
)
from procmem import cpu_seconds, reset_peak, run_polled  # noqa: E402

IMPLS = (
    "helper",
    "helper_separate",
    "duckdb_sql",
    "duckdb_sql_one_pass",
    "polars",
    "pandas",
    "numpy",
    "retentioneering",
    "kernel",
    "kernel_times",
    "floor",
    "floor_dfg",
    "kernel_dfg",
    "floor_times",
    "floor_dfg_times",
    "kernel_dfg_times",
)
#: Each kernel row's floor: the minimal numpy of the same output on the same arrays.
FLOOR_OF = {
    "kernel": "floor",
    "kernel_times": "floor_times",
    "kernel_dfg": "floor_dfg",
    "kernel_dfg_times": "floor_dfg_times",
}
RETE_PYTHON = os.environ.get("CRM_RETE_PYTHON", "/tmp/crm_rete_venv/bin/python")
RESULT_TAG = "JOURNEY_RESULT "


# --- implementations: each returns (transitions dict, paths Counter) --------------------------


def _bytes(size: str) -> float:
    """``"1.2GB"`` -> bytes (DuckDB's decimal units)."""
    units = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    return float(size[:-2]) * units[size[-2:].upper()]


def journeys_helper(data: Path):
    """:func:`crm_helpers.journeys.flow`: both counts from one window and one aggregate."""
    from crm_helpers.data import aware_to_naive_utc
    from crm_helpers.engine import connect
    from crm_helpers.journeys import flow, prepare

    # the raw Parquet file and the loader's UTC conversion, as in journeys_helper_separate;
    # not cached: one query reads the prepared rows once
    ev = connect("duckdb").read_parquet(F.events_path(data))
    f = flow(prepare(ev.mutate(ts=aware_to_naive_utc(ev.ts, "duckdb"))), ANCHOR, DEPTH)
    t, p = f.transitions, f.paths
    return (
        {(a, b): int(n) for a, b, n in zip(t["source"], t["target"], t["count"], strict=True)},
        Counter({tuple(k): int(n) for k, n in zip(p["path"], p["journeys"], strict=True)}),
    )


def journeys_helper_separate(data: Path):
    """:func:`~crm_helpers.journeys.transitions` then :func:`~crm_helpers.journeys.paths`."""
    from crm_helpers.data import aware_to_naive_utc
    from crm_helpers.engine import DUCKDB_MEMORY_LIMIT, connect
    from crm_helpers.journeys import paths, prepare, transitions

    # the raw Parquet file (crm_helpers.load would also drop exact duplicate rows, which
    # the other implementations keep), its UTC timestamps made naive by the loader's own
    # conversion (through the epoch; a CAST to TIMESTAMP is a calendar conversion per row
    # that cost this benchmark ~1.5 s per query at 10M events)
    ev = connect("duckdb").read_parquet(F.events_path(data))
    # NOT cached: on the engine's memory-bounded connection (DUCKDB_MEMORY_LIMIT, 1.2 GB)
    # a cached copy of the coded rows (~1 GB at 50M events) holds most of the bound, and
    # both window sorts spill (measured at 50M: 64 CPU s cached vs 43 CPU s uncached, under
    # the same bound). Uncached, each query streams the Parquet file and sorts with the
    # whole bound; re-reading and re-coding costs less than the spilling.
    prep = prepare(ev.mutate(ts=aware_to_naive_utc(ev.ts, "duckdb")))
    # ... unless the coded rows (~20 bytes an event) take at most a quarter of the bound:
    # then one cached copy serves both queries (10M events: ~200 MB; the count is the
    # Parquet metadata's), as the Prepared.cache docstring advises
    if ev.count().execute() * 20 <= 0.25 * _bytes(DUCKDB_MEMORY_LIMIT):
        prep = prep.cache(positions=False)
    t = transitions(prep, timings=False)
    p = paths(prep, ANCHOR, DEPTH)
    return (
        {(a, b): int(n) for a, b, n in zip(t["source"], t["target"], t["count"], strict=True)},
        Counter({tuple(k): int(n) for k, n in zip(p["path"], p["journeys"], strict=True)}),
    )


def journeys_duckdb_sql(data: Path):
    import duckdb

    path = str(F.events_path(data))
    con = duckdb.connect()
    names = [r[0] for r in con.sql(f"SELECT DISTINCT event FROM '{path}' ORDER BY 1").fetchall()]
    case = " ".join(f"WHEN {F._sql_str(n)} THEN {i}" for i, n in enumerate(names))
    coded = f"SELECT user_id, ts, CASE event {case} END::SMALLINT AS c FROM '{path}'"
    con.sql(f"CREATE TEMP TABLE coded AS {coded}")
    lead = "OVER (PARTITION BY user_id ORDER BY ts, c)"
    rows = con.sql(
        f"SELECT c, n, count(*) FROM (SELECT c, LEAD(c) {lead} AS n FROM coded) "
        "WHERE n IS NOT NULL GROUP BY ALL"
    ).fetchall()
    trans = {(names[a], names[b]): int(k) for a, b, k in rows}
    anchor = names.index(ANCHOR)
    leads = ", ".join(f"LEAD(c, {k}) {lead} AS s{k}" for k in range(1, DEPTH + 1))
    cols = ", ".join(f"s{k}" for k in range(1, DEPTH + 1))
    # the first anchor per user: the smallest position in the same window order as the leads
    pos = f"row_number() {lead} AS pos"
    rows = con.sql(
        f"SELECT {cols}, count(*) FROM (SELECT * FROM (SELECT user_id, c, {leads}, {pos} "
        f"FROM coded QUALIFY c = {anchor}) "
        "QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY pos) = 1) GROUP BY ALL"
    ).fetchall()
    paths = Counter()
    for r in rows:
        paths[(ANCHOR, *(names[c] for c in r[:-1] if c is not None))] += int(r[-1])
    return trans, paths


def journeys_duckdb_sql_one_pass(data: Path):
    """The hand-written SQL in the shape of ``flow``: one window, one ``GROUP BY``."""
    import duckdb

    path = str(F.events_path(data))
    con = duckdb.connect()
    names = [r[0] for r in con.sql(f"SELECT DISTINCT event FROM '{path}' ORDER BY 1").fetchall()]
    case = " ".join(f"WHEN {F._sql_str(n)} THEN {i}" for i, n in enumerate(names))
    con.sql(
        f"CREATE TEMP TABLE coded AS SELECT user_id, ts, CASE event {case} END::SMALLINT AS c "
        f"FROM '{path}'"
    )
    anchor = names.index(ANCHOR)
    order = "PARTITION BY user_id ORDER BY ts, c"
    leads = ", ".join(f"LEAD(c, {k}) OVER ({order}) AS s{k}" for k in range(1, DEPTH + 1))
    # the user's first anchor: an anchor row whose running count of anchors is 1
    first = (
        f"c = {anchor} AND sum((c = {anchor})::INTEGER) OVER ({order} ROWS BETWEEN "
        "UNBOUNDED PRECEDING AND CURRENT ROW) = 1 AS f"
    )
    rest = ", ".join(f"CASE WHEN f THEN s{k} END AS p{k}" for k in range(2, DEPTH + 1))
    cols = ", ".join(f"p{k}" for k in range(2, DEPTH + 1))
    rows = con.sql(
        f"SELECT c, s1, f, {cols}, count(*) FROM (SELECT c, s1, f, {rest} FROM "
        f"(SELECT c, {leads}, {first} FROM coded)) WHERE s1 IS NOT NULL OR f GROUP BY ALL"
    ).fetchall()
    trans, paths = Counter(), Counter()
    for c, s1, f, *rest, n in rows:
        if s1 is not None:
            trans[(names[c], names[s1])] += int(n)
        if f:
            steps = [s for s in (s1, *rest) if s is not None]
            paths[(ANCHOR, *(names[s] for s in steps))] += int(n)
    return dict(trans), paths


def journeys_polars(data: Path):
    import polars as pl

    df = pl.read_parquet(F.events_path(data), columns=["user_id", "event", "ts"])
    df = df.with_columns(pl.col("event").cast(pl.Categorical)).sort(
        ["user_id", "ts", pl.col("event").cast(pl.String)]
    )
    nxt = df.with_columns(pl.col("event").shift(-1).over("user_id").alias("n"))
    t = nxt.filter(pl.col("n").is_not_null()).group_by(["event", "n"]).len()
    trans = {(a, b): int(k) for a, b, k in t.iter_rows()}
    shifts = [pl.col("event").shift(-k).over("user_id").alias(f"s{k}") for k in range(1, DEPTH + 1)]
    first = pl.int_range(pl.len()).over(["user_id", "event"]) == 0
    p = (
        df.with_columns(*shifts)
        .filter((pl.col("event") == ANCHOR) & first)
        .group_by([f"s{k}" for k in range(1, DEPTH + 1)])
        .len()
    )
    paths = Counter()
    for r in p.iter_rows():
        paths[(ANCHOR, *(s for s in r[:-1] if s is not None))] += int(r[-1])
    return trans, paths


def journeys_pandas(data: Path):
    import pandas as pd

    df = pd.read_parquet(F.events_path(data), columns=["user_id", "event", "ts"])
    df = df.sort_values(["user_id", "ts", "event"], kind="stable", ignore_index=True)
    g = df.groupby("user_id", sort=False)["event"]
    n = g.shift(-1)
    t = pd.DataFrame({"a": df["event"], "b": n}).dropna().value_counts()
    trans = {(a, b): int(k) for (a, b), k in t.items()}
    first = (df["event"] == ANCHOR) & ~df.duplicated(["user_id", "event"])
    cols = {f"s{k}": g.shift(-k)[first] for k in range(1, DEPTH + 1)}
    p = pd.DataFrame(cols).fillna("").value_counts()
    paths = Counter()
    for key, k in p.items():
        paths[(ANCHOR, *(s for s in key if s))] += int(k)
    return trans, paths


def journeys_numpy(data: Path):
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tbl = pq.read_table(F.events_path(data), columns=["user_id", "event", "ts"])
    user = tbl.column("user_id").to_numpy()
    ts = tbl.column("ts").cast("int64").to_numpy()
    enc = pc.dictionary_encode(tbl.column("event")).combine_chunks()
    names = enc.dictionary.to_pylist()
    order_names = np.argsort(np.array(names, dtype=object))  # codes in name order (tie rule)
    rank = np.empty(len(names), np.int16)
    rank[order_names] = np.arange(len(names))
    code = rank[enc.indices.to_numpy()]
    names = [names[i] for i in order_names]
    o = np.lexsort((code, ts, user))
    user, code = user[o], code[o]
    same = user[1:] == user[:-1]
    k = len(names)
    pair = code[:-1][same].astype(np.int64) * k + code[1:][same]
    cnt = np.bincount(pair, minlength=k * k)
    trans = {(names[i // k], names[i % k]): int(c) for i, c in enumerate(cnt) if c}
    a = names.index(ANCHOR)
    is_a = code == a
    ua = user[is_a]
    idx = np.flatnonzero(is_a)[np.r_[True, ua[1:] != ua[:-1]]]  # first anchor per user
    n = len(code)
    steps = np.full((len(idx), DEPTH), -1, np.int64)
    alive = np.ones(len(idx), bool)
    for j in range(1, DEPTH + 1):
        pos = np.minimum(idx + j, n - 1)
        alive &= (idx + j < n) & (user[pos] == user[idx])
        steps[:, j - 1] = np.where(alive, code[pos], -1)
    uniq, counts = np.unique(steps, axis=0, return_counts=True)
    paths = Counter()
    for row, c in zip(uniq, counts, strict=True):
        paths[(ANCHOR, *(names[s] for s in row if s >= 0))] += int(c)
    return trans, paths


def journeys_retentioneering(data: Path):
    import pandas as pd
    import retentioneering as rete

    t0 = time.perf_counter()
    df = pd.read_parquet(F.events_path(data), columns=["user_id", "event", "ts"])
    # the tie rule: retentioneering orders each path by its `index` column
    df = df.sort_values(["user_id", "ts", "event"], kind="stable", ignore_index=True)
    df["index"] = df.groupby("user_id", sort=False).cumcount() + 1
    stream = rete.Eventstream(
        df.rename(columns={"ts": "timestamp"}),
        schema={"path_cols": ["user_id"], "event_col": "event", "timestamp_col": "timestamp"},
    )
    prep_s = time.perf_counter() - t0
    tm = stream.transition_graph_data(edge_weight="count")
    synthetic = {"path_start", "path_end"}
    trans = {
        (str(a), str(b)): int(n)
        for a, row in tm.iterrows()
        for b, n in row.items()
        if n and str(a) not in synthetic and str(b) not in synthetic
    }
    return trans, None, {"prep_s": prep_s}


# --- from the prepared arrays (#25): the rows live in journey_kernels.py ----------------------

IMPLEMENTATIONS = {
    "helper": journeys_helper,
    "helper_separate": journeys_helper_separate,
    "duckdb_sql": journeys_duckdb_sql,
    "duckdb_sql_one_pass": journeys_duckdb_sql_one_pass,
    "polars": journeys_polars,
    "pandas": journeys_pandas,
    "numpy": journeys_numpy,
    "retentioneering": journeys_retentioneering,
    "kernel": journeys_kernel,
    "kernel_times": lambda a: journeys_kernel(a, timings=True),
    "floor": journeys_floor,
    "floor_dfg": journeys_floor_dfg,
    "kernel_dfg": journeys_kernel_dfg,
    "floor_times": journeys_floor_times,
    "floor_dfg_times": journeys_floor_dfg_times,
    "kernel_dfg_times": lambda a: journeys_kernel_dfg(a, timings=True),
}
#: Implementations that start from the prepared arrays: built once per worker, untimed.
SETUP = {i: prepared_arrays for i in ("kernel", "kernel_times", *FLOOR_OF.values(), *FLOOR_OF)}


# --- running -----------------------------------------------------------------------------------


def vm_hwm_bytes() -> int | None:
    """This process's resident high-water mark (``VmHWM``), None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _digest(trans, paths, timings) -> dict:
    return {
        "transitions": sorted([a, b, n] for (a, b), n in trans.items()),
        # None: the implementation has no path counts (compared on transitions only)
        "paths": None if paths is None else sorted([list(p), n] for p, n in paths.items()),
        # None: no transition times (compared with the other rows that have them)
        "timings": timings,
    }


def worker(impl: str, data: Path, repeat: int) -> None:
    fn, setup = IMPLEMENTATIONS[impl], SETUP.get(impl)
    times, extra = [], {}
    state = data
    if setup is not None:
        t0 = time.perf_counter()
        state = setup(data)
        extra["setup_s"] = time.perf_counter() - t0
        reset_peak()  # from here the peak is the arrays in memory plus the runs
    cpu, timings = [], None
    # a kernel row also times its floor in the same worker, alternating round by round: a
    # burst of other work on a shared machine then slows one round of each, not one side
    floor_fn = IMPLEMENTATIONS[FLOOR_OF[impl]] if impl in FLOOR_OF else None
    floor_times, floor_cpu, floor_digest = [], [], None
    for _ in range(repeat):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        trans, paths, *more = fn(state)
        times.append(time.perf_counter() - t0)
        cpu.append(cpu_seconds() - c0)
        for k, v in (more[0] if more else {}).items():
            if k == "timings":
                timings = v
            else:
                extra[k] = min(extra.get(k, v), v)
        if floor_fn is not None:
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            f_trans, f_paths, *f_more = floor_fn(state)
            floor_times.append(time.perf_counter() - t0)
            floor_cpu.append(cpu_seconds() - c0)
            floor_digest = _digest(f_trans, f_paths, (f_more[0] if f_more else {}).get("timings"))
    digest = _digest(trans, paths, timings)
    res = {"impl": impl, "times": times, "cpu": cpu, "result": digest, **extra}
    if setup is not None:
        res["run_peak_bytes"] = vm_hwm_bytes()
    if floor_fn is not None:
        res["floor"] = {"times": floor_times, "cpu": floor_cpu, "equal": floor_digest == digest}
    print(RESULT_TAG + json.dumps(res))


def run_worker(impl: str, data: Path, repeat: int, timeout: float) -> dict:
    python = sys.executable
    if impl == "retentioneering":
        python = RETE_PYTHON
        if not Path(python).exists():
            return {
                "impl": impl,
                "error": f"no {python}: run `bash benchmarks/retentioneering_env.sh` first",
            }
        os.environ.setdefault("RETENTIONEERING_NO_TRACK", "1")  # no telemetry calls
    cmd = [python, __file__, "--worker", impl, "--data", str(data), "--repeat", str(repeat)]
    load1 = os.getloadavg()[0]
    code, out, err, peak = run_polled(cmd, timeout)
    if code is None:
        return {"impl": impl, "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_TAG)]
    if code != 0 or not lines:
        tail = (err or out).strip().splitlines()[-3:]
        return {"impl": impl, "error": f"exit {code}: " + " | ".join(tail)}
    res = json.loads(lines[-1][len(RESULT_TAG) :])
    res.update(peak_bytes=peak, load1=load1)
    return res


def bench(n_users: int, n_events: int, impls, repeat: int, timeout: float) -> tuple[str, bool]:
    data = F.ensure_data(n_users, n_events)
    results = [run_worker(i, data, repeat, timeout) for i in impls]
    ok = [r for r in results if "error" not in r]
    ref = next((r["result"] for r in ok if r["result"]["paths"] is not None), None)
    ref_t = next((r["result"]["timings"] for r in ok if r["result"].get("timings")), None)
    for r in ok:  # compared on what each implementation computes
        r["equal"] = ref is None or (
            r["result"]["transitions"] == ref["transitions"]
            and r["result"]["paths"] in (None, ref["paths"])
            and r["result"].get("timings") in (None, ref_t)
            and r.get("floor", {}).get("equal", True)
        )
    equal = all(r["equal"] for r in ok)
    best = {r["impl"]: min(r["times"]) for r in ok}
    best_cpu = {r["impl"]: min(r["cpu"]) for r in ok}
    baselines = ("duckdb_sql", "duckdb_sql_one_pass", "polars", "pandas")
    base = min((best[i] for i in baselines if i in best), default=None)
    floor = best.get("numpy")
    n_trans = sum(t[2] for t in ref["transitions"]) if ref else 0
    lines = [
        f"### {n_events:,} events, {n_users:,} users "
        f"({n_trans:,} transitions; results {'EQUAL' if equal else 'DIFFER'})",
        "",
        f"Settings: helper on `engine.connect('duckdb')`, memory_limit {_helper_limit()}; "
        "duckdb_sql on a plain `duckdb.connect()` (no bound: DuckDB's default, 80% of RAM); "
        f"DuckDB threads: its default ({os.cpu_count()} cores); each implementation alone.",
        "",
        "Rows kernel*, floor* start from the prepared arrays (built before the clock, time "
        "in brackets); x its floor = a kernel row / the floor of the same output "
        f"({', '.join(f'{k} / {v}' for k, v in FLOOR_OF.items())}), best wall / best CPU "
        "(user + system seconds, all threads), the floor timed in the kernel's worker in "
        f"alternating rounds (its seconds in brackets). Best of {repeat} runs each. Peak: "
        "the worker's, building the arrays included; in brackets the peak from the arrays "
        "in memory on (the high-water mark restarted after building them, Linux).",
        "",
        "| implementation | best s | CPU s | x fastest baseline | x numpy floor "
        "| x its floor (wall / CPU) | x helper | peak MB (arrays + runs) | load | checked |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    helper = best.get("helper")
    for r in results:
        if "error" in r:
            lines.append(f"| {r['impl']} | {r['error']} | | | | | | | | |")
            continue
        b = best[r["impl"]]
        fl = FLOOR_OF.get(r["impl"])
        vs_floor = ""
        if "floor" in r and min(r["floor"]["cpu"]) > 0:  # timed in the same worker
            f_wall, f_cpu = min(r["floor"]["times"]), min(r["floor"]["cpu"])
            vs_floor = (
                f"{b / f_wall:.2f} / {best_cpu[r['impl']] / f_cpu:.2f} "
                f"({fl} {f_wall:.3f} / {f_cpu:.3f} s)"
            )
        elif fl in best and best_cpu[fl] > 0:
            vs_floor = f"{b / best[fl]:.2f} / {best_cpu[r['impl']] / best_cpu[fl]:.2f}"
        cells = [
            f"{b:.3f}"
            + (f" (prep {r['prep_s']:.2f})" if "prep_s" in r else "")
            + (f" (arrays {r['setup_s']:.1f})" if "setup_s" in r else ""),
            f"{best_cpu[r['impl']]:.3f}",
            f"{b / base:.2f}" if base else "",
            f"{b / floor:.1f}" if floor else "",
            vs_floor,
            f"{b / helper:.1f}" if helper else "",
            f"{r['peak_bytes'] / 2**20:,.0f}"
            + (f" (runs {r['run_peak_bytes'] / 2**20:,.0f})" if r.get("run_peak_bytes") else ""),
            f"{r['load1']:.1f}",
            ("equal" if r["equal"] else "DIFFERS")
            + (" (transitions only)" if r["result"]["paths"] is None else "")
            + (" (with times)" if r["result"].get("timings") else ""),
        ]
        lines.append(f"| {r['impl']} | " + " | ".join(cells) + " |")
    return "\n".join(lines), equal


def _helper_limit() -> str:
    """The DuckDB memory bound the helper's connection gets (``engine.connect`` default)."""
    from crm_helpers.engine import DUCKDB_MEMORY_LIMIT

    return os.environ.get("CRM_DUCKDB_MEMORY_LIMIT") or DUCKDB_MEMORY_LIMIT


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def main(argv: list[str] | None = None) -> int:
    global RETE_PYTHON
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10M,50M", help="event counts, e.g. 200k,10M")
    ap.add_argument("--users-per-event", type=float, default=0.1, help="users = events x this")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument(
        "--rete-python",
        default=RETE_PYTHON,
        help="Python of the venv with retentioneering (benchmarks/retentioneering_env.sh)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    RETE_PYTHON = a.rete_python
    if a.worker:
        worker(a.worker, Path(a.data), a.repeat)
        return 0
    all_equal = True
    for size in a.sizes.split(","):
        n = parse_size(size)
        table, equal = bench(
            max(1, int(n * a.users_per_event)), n, a.impls.split(","), a.repeat, a.timeout
        )
        print(table + "\n", flush=True)
        all_equal &= equal
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())

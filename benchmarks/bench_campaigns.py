"""Benchmark: the campaign scorecard and the hour x weekday table, helper vs hand-written SQL.

Usage::

    python benchmarks/bench_campaigns.py --data-dir /tmp/camp_world [--repeat 3]
    python benchmarks/bench_campaigns.py --users 1000000 --messages 10000000 [--spark]

``--data-dir`` is a world written by ``crm generate`` (users, messages, orders, ... Parquet);
``--users``/``--messages`` write (once, cached under ``--root``) a messages-scale world with
:mod:`campaign_world` (numpy, users/messages/orders only). Each implementation runs in its
own worker process, ``--repeat`` times (best wall time reported), end to end from Parquet:

* **helper**: ``crm_helpers.load`` (finding, typing and validating every table present),
  ``conversions_of``, ``message_facts`` (last-touch attribution within 3 days, machine opens,
  UTC hours) and ``counts_tables``: the scorecard per campaign and channel and the counts
  per channel x weekday x hour from one pass over the facts (equal to ``scorecard_counts``
  and ``hour_counts``; Ibis -> DuckDB, ``GROUP BY GROUPING SETS`` since 2026-12-07 22:50
  UTC, before that grouped by the union of both tables' keys); ``load`` is also timed alone.
* **duckdb_sql**: the same two tables from one hand-written DuckDB SQL query over the
  Parquet files (a range join of orders to messages, ``row_number`` for the last touch, and
  ``GROUP BY GROUPING SETS`` for both tables in one pass; until 2026-12-07 19:00 UTC the
  facts went to a temporary table first, which made the SQL slower).
* **spark** (``--spark``, once): the helper on Spark (``load(engine="spark")``); its counts
  must equal the SQL's too.

Both DuckDB sides run with the same ``memory_limit`` and ``threads`` (``--memory-limit``,
default the helper's own :data:`crm_helpers.engine.DUCKDB_MEMORY_LIMIT`; ``--threads``,
default the machine's cores) and both spill to a temp directory; the table prints them.
Wall time is measured inside the worker from the first read to the two tables in pandas
(interpreter start and imports excluded for both), with the worker's CPU seconds (user +
system of all its threads; not for Spark, whose JVM is another process). The machine's load
average is printed before and after: on a shared machine the ratio of two workers run
back to back is what travels, and the best of ``--repeat`` interleaved runs is reported. Peak memory is each worker's own: the
RSS of its process tree (Spark's JVM included) polled with psutil (``procmem.run_polled``),
the largest over the repeats. All implementations must give the same counts (exit status 1
otherwise). The result is a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import duckdb  # noqa: E402
import pandas as pd  # noqa: E402
from procmem import run_polled  # noqa: E402

DEFAULT_ROOT = Path(os.environ.get("CRM_BENCH_DIR", "/tmp/crm_bench"))

SQL = """
WITH m AS (
  SELECT message_id, user_id, campaign_id, channel, sent_at,
         CAST(sent_at AS TIMESTAMP) AS st, opened_at, clicked_at
  FROM read_parquet('{msgs}')
), o AS (
  SELECT user_id, CAST(ts AS TIMESTAMP) AS ts, revenue, row_number() OVER () AS cid
  FROM read_parquet('{orders}')
), pick AS (
  SELECT m.message_id, o.revenue,
         row_number() OVER (PARTITION BY o.cid ORDER BY m.st DESC, m.message_id DESC) AS rk
  FROM o JOIN m ON o.user_id = m.user_id AND m.st < o.ts
                AND o.ts <= m.st + INTERVAL 3 DAY
), credit AS (
  SELECT message_id, count(*) AS n, sum(revenue) AS rev FROM pick WHERE rk = 1
  GROUP BY message_id
), f AS (
  SELECT m.campaign_id, m.channel, hour(m.st) AS hour, isodow(m.st) - 1 AS weekday,
         (opened_at IS NOT NULL)::INT AS opened,
         (opened_at IS NOT NULL AND epoch_us(CAST(opened_at AS TIMESTAMP)) - epoch_us(m.st)
            <= 5000000)::INT AS machine_opened,
         (clicked_at IS NOT NULL)::INT AS clicked,
         (coalesce(c.n, 0) > 0)::INT AS converted, coalesce(c.n, 0) AS conversions,
         coalesce(c.rev, 0.0) AS revenue
  FROM m LEFT JOIN credit c USING (message_id)
)
SELECT * FROM f
"""
SCORE_KEYS = "campaign_id, channel"
HOUR_KEYS = "channel, weekday, hour"
COMPARED = ["sent", "opened", "machine_opened", "clicked", "converted", "conversions"]


def same(a: pd.DataFrame, b: pd.DataFrame, keys: str) -> bool:
    k = [c.strip() for c in keys.split(",")]
    a = a.sort_values(k).reset_index(drop=True)
    b = b.sort_values(k).reset_index(drop=True)
    ok = all(a[c].astype("int64").tolist() == b[c].astype("int64").tolist() for c in COMPARED)
    return ok and bool(
        ((a["revenue"] - b["revenue"]).abs() < 1e-6 * (1 + b["revenue"].abs())).all()
    )


def helper(
    data_dir: Path, engine: str = "duckdb", memory_limit: str = "", threads: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """The helper path; returns the scorecard, the hour table and ``load``'s seconds.

    On DuckDB the connection gets ``memory_limit`` and ``threads`` (those of the SQL)."""
    from crm_helpers import load
    from crm_helpers.campaigns import core
    from crm_helpers.engine import connect

    t0 = time.perf_counter()
    con = engine
    if engine == "duckdb":
        con = connect("duckdb", memory_limit=memory_limit or None, threads=threads or None)
    data = load(data_dir, engine=con, require=["messages"])
    t_load = time.perf_counter() - t0
    conv = core.conversions_of(data)
    facts = core.message_facts(data.messages, conv.table, attribution_days=3.0)
    # the facts once, grouped by campaign x channel x weekday x hour, both tables from that
    score, hours = core.counts_tables(
        facts, [("campaign_id", "channel"), ("channel", "weekday", "hour")]
    )
    return score, hours, t_load


def sql(
    data_dir: Path, memory_limit: str = "", threads: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The hand-written DuckDB SQL (``memory_limit`` and ``threads`` as given): both tables."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET temp_directory = '{Path(tempfile.gettempdir()) / 'bench_campaigns_sql'}'")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    files = {"msgs": data_dir / "messages.parquet", "orders": data_dir / "orders.parquet"}
    # one pass for both tables: the facts grouped by both sets at once
    q = (
        f"SELECT campaign_id, channel, weekday, hour, grouping(campaign_id) AS g, "
        "count(*) AS sent, sum(opened) AS opened, sum(machine_opened) AS machine_opened, "
        "sum(clicked) AS clicked, sum(converted) AS converted, "
        "sum(conversions) AS conversions, sum(revenue) AS revenue "
        f"FROM ({SQL.format(**files)}) "
        f"GROUP BY GROUPING SETS (({SCORE_KEYS}), ({HOUR_KEYS}))"
    )
    both = con.execute(q).df()
    out = []
    for g, keys in ((0, SCORE_KEYS), (1, HOUR_KEYS)):
        k = [c.strip() for c in keys.split(",")]
        part = both[both.g == g].drop(
            columns=["g", *({"campaign_id", "channel", "weekday", "hour"} - set(k))]
        )
        out.append(part.sort_values(k).reset_index(drop=True))
    return out[0], out[1]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(impl: str, data_dir: Path, out: Path, memory: str = "", threads: int = 0) -> dict:
    """Run ``impl`` once in this process; write its two tables under ``out``; timings."""
    if impl != "duckdb_sql":  # imports before the clock, like the SQL's duckdb (until
        # 2026-12-07 19:45 UTC they were timed: ~0.8 CPU s, 1-11 s wall on a loaded VM)
        import crm_helpers.campaigns.core  # noqa: F401
        import crm_helpers.data  # noqa: F401
    t0, c0 = time.perf_counter(), _cpu()
    if impl == "duckdb_sql":
        score, hours = sql(data_dir, memory, threads)
        t_load = None
    else:
        engine = "spark" if impl == "spark" else "duckdb"
        score, hours, t_load = helper(data_dir, engine, memory, threads)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    score.to_parquet(out / f"{impl}_score.parquet")
    hours.to_parquet(out / f"{impl}_hours.parquet")
    return {"wall_s": wall, "cpu_s": cpu, "load_s": t_load}


def measure(
    impl: str, data_dir: Path, out: Path, timeout: float, memory: str = "", threads: int = 0
) -> dict:
    """One run of ``impl`` in its own process; the peak RSS of its process tree (bytes)."""
    cmd = [sys.executable, __file__, "--worker", impl, "--data-dir", str(data_dir)]
    cmd += ["--memory-limit", memory, "--threads", str(threads)]
    code, stdout, err, peak = run_polled([*cmd, "--out", str(out)], timeout)
    if code != 0:
        raise RuntimeError(f"{impl} failed: {err[-3000:] or f'timed out after {timeout:.0f} s'}")
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak": peak}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, help="a world to read (else --users/--messages)")
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--messages", type=int, default=10_000_000)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="cache of generated worlds")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--spark", action="store_true", help="also run the helper on Spark, once")
    ap.add_argument("--timeout", type=float, default=7200)
    ap.add_argument(
        "--memory-limit",
        default=None,
        help="DuckDB memory_limit of both the helper and the SQL (default: the helper's own)",
    )
    ap.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="DuckDB threads of both"
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    mem = args.memory_limit
    if mem is None and not args.worker:  # not imported by the SQL's worker (its peak memory)
        from crm_helpers.engine import DUCKDB_MEMORY_LIMIT

        mem = DUCKDB_MEMORY_LIMIT
    if args.worker:
        print(json.dumps(worker(args.worker, args.data_dir, args.out, mem or "", args.threads)))
        return 0
    data_dir = args.data_dir
    if data_dir is None:
        import campaign_world

        t0 = time.perf_counter()
        data_dir = args.root / f"campaigns_u{args.users}_m{args.messages}"
        campaign_world.write_world(data_dir, args.users, args.messages)
        print(f"world: {data_dir} ({time.perf_counter() - t0:.1f} s incl. generation if new)")
    n_msgs = (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM read_parquet('{data_dir / 'messages.parquet'}')")
        .fetchone()[0]
    )
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {"helper": [], "duckdb_sql": []}
    with tempfile.TemporaryDirectory(prefix="bench_campaigns_") as tmp:
        out = Path(tmp)
        for _ in range(args.repeat):
            for impl in runs:
                runs[impl].append(measure(impl, data_dir, out, args.timeout, mem, args.threads))
        if args.spark:
            runs["spark"] = [measure("spark", data_dir, out, args.timeout)]
        load_after = os.getloadavg()
        res = {
            impl: (
                pd.read_parquet(out / f"{impl}_score.parquet"),
                pd.read_parquet(out / f"{impl}_hours.parquet"),
            )
            for impl in runs
        }
    ref = res["duckdb_sql"]
    equal = {
        impl: same(s, ref[0], SCORE_KEYS) and same(h, ref[1], HOUR_KEYS)
        for impl, (s, h) in res.items()
    }
    ok = all(equal.values())
    best = {impl: min(r["wall_s"] for r in rs) for impl, rs in runs.items()}
    cpu = {impl: min(r["cpu_s"] for r in rs) for impl, rs in runs.items()}
    peak = {impl: max(r["peak"] for r in rs) / 2**20 for impl, rs in runs.items()}
    t_load = min(r["load_s"] for r in runs["helper"])
    sql_s = best["duckdb_sql"]
    print(
        f"{n_msgs:,} messages from {data_dir}; best of {args.repeat}; "
        f"same counts as the SQL: {equal}"
    )
    print(
        f"DuckDB (helper and SQL): memory_limit {mem}, threads {args.threads}; "
        f"{os.cpu_count()} cores; load average (1/5/15 min) before "
        f"{'/'.join(f'{x:.1f}' for x in load_before)}, after "
        f"{'/'.join(f'{x:.1f}' for x in load_after)}"
    )
    print()
    print("| implementation | wall s | vs SQL | CPU s | vs SQL | peak MB (own process tree) |")
    print("|---|---:|---:|---:|---:|---:|")
    h, q = "helper", "duckdb_sql"
    print(f"| helper end to end (`load` + facts + scorecard + hour x weekday) | "
          f"{best[h]:.2f} | {best[h] / sql_s:.2f}x | {cpu[h]:.2f} | {cpu[h] / cpu[q]:.2f}x | "
          f"{peak[h]:,.0f} |")  # fmt: skip
    print(f"| ↳ `load`: finds, types and validates every table | {t_load:.2f} | | | | |")
    print(f"| hand-written DuckDB SQL | {sql_s:.2f} | 1.00x | {cpu[q]:.2f} | 1.00x | "
          f"{peak[q]:,.0f} |")  # fmt: skip
    if "spark" in best:
        print(f"| helper on Spark (once; counts compared) | {best['spark']:.2f} | "
              f"{best['spark'] / sql_s:.2f}x | | | {peak['spark']:,.0f} |")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

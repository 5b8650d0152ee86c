"""Benchmark: the campaign scorecard and the hour x weekday table, helper vs hand-written SQL.

Usage::

    python benchmarks/bench_campaigns.py --data-dir /tmp/camp_world [--repeat 3]

``--data-dir`` is a world written by ``crm generate`` (messages.parquet, orders.parquet).
Both implementations run in this one process, one after the other, ``--repeat`` times each
(best wall time reported), end to end from Parquet:

* **helper**: ``crm_helpers.load`` (with its validation queries), ``conversions_of``,
  ``message_facts`` (last-touch attribution within 3 days, machine opens, UTC hours),
  ``scorecard_counts`` per campaign and channel and ``hour_counts`` per channel x weekday x
  hour (Ibis -> DuckDB); ``load`` is also timed alone.
* **duckdb_sql**: the same two tables from one hand-written DuckDB SQL script over the
  Parquet files (a range join of orders to messages, ``row_number`` for the last touch).

Both must give the same counts (exit status 1 otherwise). Peak memory is the process's
``VmHWM`` after all runs: one figure for both implementations (same process), so it bounds
each from above. The result is a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd

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


def helper(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    from crm_helpers import load
    from crm_helpers.campaigns import core

    t0 = time.perf_counter()
    data = load(data_dir)
    t_load = time.perf_counter() - t0
    conv = core.conversions_of(data)
    facts = core.message_facts(data.messages, conv.table, attribution_days=3.0).cache()
    return core.scorecard_counts(facts), core.hour_counts(facts), t_load


def sql(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    files = {"msgs": data_dir / "messages.parquet", "orders": data_dir / "orders.parquet"}
    # one scan for both tables: the facts as a temp table, then the two GROUP BYs
    con.execute("CREATE TEMP TABLE facts AS " + SQL.format(**files))
    out = []
    for keys in (SCORE_KEYS, HOUR_KEYS):
        q = (
            f"SELECT {keys}, count(*) AS sent, sum(opened) AS opened, "
            "sum(machine_opened) AS machine_opened, sum(clicked) AS clicked, "
            "sum(converted) AS converted, sum(conversions) AS conversions, "
            f"sum(revenue) AS revenue FROM facts GROUP BY {keys} ORDER BY {keys}"
        )
        out.append(con.execute(q).df())
    return out[0], out[1]


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def same(a: pd.DataFrame, b: pd.DataFrame, keys: str) -> bool:
    k = [c.strip() for c in keys.split(",")]
    a = a.sort_values(k).reset_index(drop=True)
    b = b.sort_values(k).reset_index(drop=True)
    ok = all(a[c].astype("int64").tolist() == b[c].astype("int64").tolist() for c in COMPARED)
    return ok and bool(
        ((a["revenue"] - b["revenue"]).abs() < 1e-6 * (1 + b["revenue"].abs())).all()
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n_msgs = (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM read_parquet('{args.data_dir / 'messages.parquet'}')")
        .fetchone()[0]
    )
    times: dict[str, list[float]] = {"helper": [], "duckdb_sql": [], "load": [], "query": []}
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        hs, hh, t_load = helper(args.data_dir)
        times["helper"].append(time.perf_counter() - t0)
        times["load"].append(t_load)
        times["query"].append(times["helper"][-1] - t_load)
        t0 = time.perf_counter()
        ss, sh = sql(args.data_dir)
        times["duckdb_sql"].append(time.perf_counter() - t0)
    ok = same(hs, ss, SCORE_KEYS) and same(hh, sh, HOUR_KEYS)
    best = {k: min(v) for k, v in times.items()}
    print(f"{n_msgs:,} messages from {args.data_dir}; best of {args.repeat}; same counts: {ok}")
    print()
    print("| implementation | wall s | vs SQL |")
    print("|---|---:|---:|")
    print(f"| helper (load + facts + scorecard + hour x weekday) | {best['helper']:.2f} | "
          f"{best['helper'] / best['duckdb_sql']:.2f}x |")  # fmt: skip
    print(f"| ↳ `load`: finds, types and validates all five tables | {best['load']:.2f} | |")
    print(f"| ↳ the campaign queries after `load` | {best['query']:.2f} | "
          f"{best['query'] / best['duckdb_sql']:.2f}x |")  # fmt: skip
    print(f"| hand-written DuckDB SQL | {best['duckdb_sql']:.2f} | 1.00x |")
    print()
    print(f"peak memory of the process (both implementations): {peak_mb():,.0f} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

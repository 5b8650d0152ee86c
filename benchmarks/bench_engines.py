"""Foundation benchmark: the same Ibis aggregation on DuckDB, Spark (local mode and a
standalone cluster) and PostgreSQL, and `make reports` time.

Prints a Markdown table. DuckDB and local Spark are measured in this process (Spark after its
session start, which is reported separately); the Spark cluster (master + one worker from the
pyspark wheel) in a child process, since a process has one SparkContext; PostgreSQL is a
throwaway server (crm_helpers.servers) into which the events are copied first (the copy is
reported, not timed as the query). Every engine must return the DuckDB result.

    python benchmarks/bench_engines.py                 # 10M events (~200k users), DuckDB + Spark
    python benchmarks/bench_engines.py --users 20000   # smoke run
    python benchmarks/bench_engines.py --postgres --cluster   # + PostgreSQL, + Spark cluster
    python benchmarks/bench_engines.py --reports       # also time `crm run-all` on data/synthetic

The query is representative of the event-level work the analyses push down: a filter, a
per-(event, day) count with distinct users, and a per-user window (gap to the previous event)
aggregated back to a small table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import ibis
import pandas as pd

from crm_helpers import config, load
from crm_helpers.synth import SynthConfig, generate_to


def world_dir(n_users: int, seed: int, root: Path) -> Path:
    """Generate (once) a synthetic world of ``n_users`` into ``root`` and return its dir."""
    out = root / f"world_{n_users}_{seed}"
    if not (out / "ground_truth.json").exists():
        generate_to(SynthConfig(n_users=n_users, seed=seed), out, overwrite=True)
    return out


def representative_query(events: ibis.Table) -> ibis.Table:
    """Daily counts, distinct users and median gap between a user's events, per event name.

    Shape in: events (user_id, event, ts, ...). Shape out: one row per (event, day).
    """
    w = ibis.window(group_by=events.user_id, order_by=events.ts)
    # ts.delta in microseconds is exact on both engines; epoch_seconds() is not portable
    # (DuckDB keeps the fraction, Spark truncates to whole seconds).
    gaps = events.mutate(
        day=events.ts.truncate("D"),
        gap_s=events.ts.delta(events.ts.lag().over(w), unit="microsecond") / 1e6,
    )
    return gaps.group_by(["event", "day"]).aggregate(
        n=gaps.count(), users=gaps.user_id.nunique(), mean_gap_s=gaps.gap_s.mean()
    )


def timed(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["day"] = pd.to_datetime(df["day"]).dt.tz_localize(None)
    return df.sort_values(["event", "day"]).reset_index(drop=True)


def _assert_same(duck_res: pd.DataFrame, other: pd.DataFrame) -> None:
    a, b = _canonical(duck_res), _canonical(other)
    pd.testing.assert_frame_equal(
        a[["event", "day", "n", "users"]], b[["event", "day", "n", "users"]], check_dtype=False
    )
    pd.testing.assert_series_equal(a["mean_gap_s"], b["mean_gap_s"], check_dtype=False, rtol=1e-9)


def postgres_rows(
    d: Path, duck_res: pd.DataFrame, duck_s: float, repeat: int, n_events: int
) -> list[tuple]:
    """PostgreSQL beside DuckDB: server start, COPY of the events, the same aggregation."""
    from crm_helpers.servers import LocalPostgres, copy_to_postgres

    rows = []
    t0 = time.perf_counter()
    with LocalPostgres() as pg:
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        copy_to_postgres(d, pg.url, tables={"events": "events"})
        rows.append(("PostgreSQL server start (initdb + pg_ctl)", start_s, ""))
        rows.append(("PostgreSQL COPY of the events (set-up, not the query)", time.perf_counter() - t0, ""))  # fmt: skip
        data = load(engine=pg.url, validate=False)
        pg_s, pg_res = timed(lambda: representative_query(data.events).to_pandas(), repeat)
        data.con.disconnect()
    rows.append(
        (f"PostgreSQL aggregation, {n_events / 1e6:.1f}M events", pg_s, f"{pg_s / duck_s:.2f}x")
    )
    _assert_same(duck_res, pg_res)
    rows.append(("DuckDB and PostgreSQL results equal", 0.0, "yes"))
    return rows


def cluster_rows(
    d: Path, duck_res: pd.DataFrame, duck_s: float, repeat: int, n_events: int
) -> list[tuple]:
    """A Spark standalone cluster (1 worker, all cores, 1 GB executor) beside local mode."""
    import json
    import tempfile

    from crm_helpers.servers import LocalSparkCluster

    t0 = time.perf_counter()
    with LocalSparkCluster(cores=os.cpu_count() or 1, memory="1g") as cluster:
        daemons_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.parquet"
            env = {**cluster.env(), "CRM_SPARK_DRIVER_MEMORY": "1g"}
            cmd = [sys.executable, __file__, "--spark-child", str(d), str(out), str(repeat)]
            proc = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            times = json.loads(proc.stdout.strip().splitlines()[-1])
            res = pd.read_parquet(out)
    _assert_same(duck_res, res)
    return [
        ("Spark cluster: master + worker start", daemons_s, "fixed cost, once"),
        ("Spark cluster: session start + first load", times["start_s"], "executors start here"),
        (
            f"Spark cluster aggregation, {n_events / 1e6:.1f}M events",
            times["agg_s"],
            f"{times['agg_s'] / duck_s:.2f}x",
        ),
        ("DuckDB and Spark-cluster results equal", 0.0, "yes"),
    ]


def _spark_child(d: str, out: str, repeat: int) -> int:
    """In a child process (CRM_SPARK_MASTER set): time session start and the aggregation."""
    import json

    t0 = time.perf_counter()
    spark = load(d, engine="spark", validate=False)
    spark.row_counts()
    start_s = time.perf_counter() - t0
    agg_s, res = timed(lambda: representative_query(spark.events).to_pandas(), repeat)
    res.to_parquet(out)
    spark.con._session.stop()
    print(json.dumps({"start_s": start_s, "agg_s": agg_s}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=200_000, help="users (about 50 events each)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--root", type=Path, default=Path(os.environ.get("CRM_BENCH_DIR", "/tmp/crm_bench"))
    )
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--postgres", action="store_true", help="also a throwaway PostgreSQL server")
    ap.add_argument("--cluster", action="store_true", help="also a Spark standalone cluster")
    ap.add_argument("--spark-child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument(
        "--reports", action="store_true", help="also time `crm run-all` on data/synthetic"
    )
    args = ap.parse_args(argv)
    if args.spark_child:
        return _spark_child(args.spark_child[0], args.spark_child[1], int(args.spark_child[2]))

    rows = []
    t0 = time.perf_counter()
    d = world_dir(args.users, args.seed, args.root)
    gen_s = time.perf_counter() - t0
    duck = load(d, engine="duckdb", validate=False)
    n_events = duck.row_counts()["events"]
    rows.append(("generate world (or reuse)", gen_s, ""))

    duck_s, duck_res = timed(lambda: representative_query(duck.events).to_pandas(), args.repeat)
    rows.append((f"DuckDB aggregation, {n_events / 1e6:.1f}M events", duck_s, "1.00x"))

    if not args.no_spark:
        t0 = time.perf_counter()
        spark = load(d, engine="spark", validate=False)
        spark.row_counts()
        start_s = time.perf_counter() - t0
        rows.append(("Spark session start + first load", start_s, ""))
        spark_s, spark_res = timed(
            lambda: representative_query(spark.events).to_pandas(), args.repeat
        )
        rows.append(
            (
                f"Spark aggregation, {n_events / 1e6:.1f}M events",
                spark_s,
                f"{spark_s / duck_s:.2f}x",
            )
        )
        _assert_same(duck_res, spark_res)
        rows.append(("DuckDB and Spark results equal", 0.0, "yes"))

    if args.cluster:
        rows += cluster_rows(d, duck_res, duck_s, args.repeat, n_events)
    if args.postgres:
        rows += postgres_rows(d, duck_res, duck_s, args.repeat, n_events)

    if args.reports:
        env = dict(os.environ)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "crm"),
                "run-all",
                "--data",
                str(config.DEFAULT_DATA_DIR),
            ],
            env=env,
            cwd=config.ROOT,
        )
        rows.append(
            (
                "`crm run-all` (make reports) on data/synthetic",
                time.perf_counter() - t0,
                f"exit {proc.returncode}",
            )
        )

    print(
        f"\n{n_events:,} events, {args.users:,} users, best of {args.repeat}, {os.cpu_count()} cores\n"
    )
    print("| step | seconds | note |\n|---|---:|---|")
    for name, sec, note in rows:
        print(f"| {name} | {sec:.2f} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

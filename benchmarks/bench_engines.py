"""Foundation benchmark: the same Ibis aggregation on DuckDB and Spark, and `make reports` time.

Prints a Markdown table. Measured in one process (Spark in the same process after its
session start, which is reported separately); both engines must return equal results.

    python benchmarks/bench_engines.py                 # 10M events (~200k users), both engines
    python benchmarks/bench_engines.py --users 20000   # smoke run
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=200_000, help="users (about 50 events each)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--root", type=Path, default=Path(os.environ.get("CRM_BENCH_DIR", "/tmp/crm_bench"))
    )
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument(
        "--reports", action="store_true", help="also time `crm run-all` on data/synthetic"
    )
    args = ap.parse_args(argv)

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
        a, b = _canonical(duck_res), _canonical(spark_res)
        pd.testing.assert_frame_equal(
            a[["event", "day", "n", "users"]], b[["event", "day", "n", "users"]], check_dtype=False
        )
        pd.testing.assert_series_equal(
            a["mean_gap_s"], b["mean_gap_s"], check_dtype=False, rtol=1e-9
        )
        rows.append(("DuckDB and Spark results equal", 0.0, "yes"))

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

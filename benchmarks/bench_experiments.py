"""Benchmark: an experiment readout's engine side vs hand-written DuckDB SQL, and its stats layer.

A readout of 3 arms x 5 metrics (``conversion``, ``revenue``, ``orders``, ``event:visit``,
``event_count:purchase``, each with its pre-period for CUPED) over a generated data set:

* ``helper``: :mod:`crm_helpers.experiments.core` (clean assignments, per-user metrics,
  sufficient statistics) on DuckDB, then the statistics layer (arms table with Holm,
  Bayesian, non-inferiority, CUPED, posterior, power) timed separately;
* ``sql``: one hand-written DuckDB query computing the same sufficient statistics straight
  from the Parquet files.

Each implementation runs in its own process, ``--repeat`` times in it (best wall time kept,
with the CPU seconds of that repeat: ``getrusage`` of the worker, all its threads, DuckDB's
included; a shared machine disturbs CPU time less than wall time, both ratios are printed);
peak memory is polled from that process tree with psutil (not ``ru_maxrss``). Both sides
read the same raw Parquet folders (assignments, orders, events); no prepared store is used.
The helper's time is split into its stages (load, assignment cleaning with the data end,
per-user metrics and sufficient statistics) to show where it goes. Both must return the same statistics (relative 1e-9), else
the exit status is 1. The goal of issue #9 at 10M users / 100M events: engine time at most
1.25x the SQL, statistics layer under 1 s, peak memory under 4 GB; measure that size on a
quiet machine::

    python benchmarks/bench_experiments.py --users 10000000 --events-per-user 10

The data are generated once, streamed in parts of :data:`CHUNK` users (generation's memory
does not grow with the size), in this process *before* the measured ones, and cached under
``$CRM_BENCH_DIR`` or ``/tmp/crm_bench`` (``experiments_u<users>_e<events>_s<seed>``) for the
next run.

Prints a Markdown table (``--json`` for JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from procmem import run_polled  # noqa: E402

METRICS = ["conversion", "revenue", "orders", "event:visit", "event_count:purchase"]
EVENTS = np.array(["visit", "product_view", "purchase", "open"])
ARMS = np.array(["control", "variant_a", "variant_b"])
WINDOW_DAYS, PRE_DAYS = 14.0, 28.0
START = np.datetime64("2025-01-01T00:00:00", "us")
DAY_US = 86_400_000_000
#: Users per generated Parquet part: generation holds one part at a time (~10 events per
#: user: 2.5M events, ~0.2 GB), so its memory does not grow with ``--users``.
CHUNK = 250_000
#: Where generated data sets are cached (one folder per size and seed), as the other benchmarks.
DEFAULT_ROOT = Path(os.environ.get("CRM_BENCH_DIR", "/tmp/crm_bench"))


def generate(
    out: Path, users: int, events_per_user: float, seed: int = 1, chunk: int = CHUNK
) -> Path:
    """Write assignments, orders and events (folders of Parquet parts) for the benchmark.

    Streamed: ``chunk`` users (and their orders and events) are drawn, written as one part of
    each table and dropped before the next, so peak memory depends on ``chunk`` only (the
    event names are written dictionary-encoded from small integer codes).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    for name in ("assignments", "orders", "events"):
        (out / name).mkdir(parents=True, exist_ok=True)
    arms, events = pa.array(ARMS), pa.array(EVENTS)
    n_orders = 0
    for part, lo in enumerate(range(0, users, chunk)):
        uid = np.arange(lo, min(users, lo + chunk), dtype=np.int64)
        arm = rng.integers(0, 3, len(uid))
        t0 = START + (30 * DAY_US + rng.integers(0, 30 * DAY_US, len(uid))).astype(
            "timedelta64[us]"
        )
        pq.write_table(
            pa.table({"experiment_id": pa.array(np.full(len(uid), "bench")), "user_id": uid,
                      "variant": arms.take(pa.array(arm)), "assigned_at": t0}),
            out / "assignments" / f"part-{part:05d}.parquet",
        )  # fmt: skip
        k = rng.poisson(0.4 + 0.05 * arm)
        ou = np.repeat(uid, k)
        ots = START + rng.integers(0, 75 * DAY_US, len(ou)).astype("timedelta64[us]")
        oid = np.arange(n_orders, n_orders + len(ou), dtype=np.int64)
        n_orders += len(ou)
        pq.write_table(
            pa.table({"order_id": oid, "user_id": ou, "ts": ots,
                      "revenue": np.round(rng.lognormal(3.5, 0.8, len(ou)), 2)}),
            out / "orders" / f"part-{part:05d}.parquet",
        )  # fmt: skip
        del ou, ots, oid
        ke = rng.poisson(events_per_user, len(uid))
        eu = np.repeat(uid, ke)
        ets = START + rng.integers(0, 75 * DAY_US, len(eu)).astype("timedelta64[us]")
        code = pa.array(rng.integers(0, len(EVENTS), len(eu)).astype(np.int8))
        pq.write_table(
            pa.table({"user_id": eu, "event": pa.DictionaryArray.from_arrays(code, events),
                      "ts": ets}),
            out / "events" / f"part-{part:05d}.parquet",
        )  # fmt: skip
        del eu, ets, code
    return out


def ensure_data(
    users: int, events_per_user: float, seed: int = 1, root: Path = DEFAULT_ROOT
) -> Path:
    """The cached data set of this size and seed under ``root``, generated on first use.

    ``root / f"experiments_u{users}_e{events_per_user:g}_s{seed}"``; it is generated into a
    hidden sibling folder and renamed when whole, so an interrupted run is never reused.
    """
    name = f"experiments_u{users}_e{events_per_user:g}_s{seed}"
    out = Path(root) / name
    if (out / ".complete").exists():
        return out
    tmp = Path(root) / f".{name}.tmp"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    generate(tmp, users, events_per_user, seed)
    (tmp / ".complete").write_text(
        json.dumps({"users": users, "events_per_user": events_per_user, "seed": seed})
    )
    if out.exists():  # an incomplete folder of an older run
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _cpu() -> float:
    """CPU seconds of this process so far, all threads (user + system, ``getrusage``)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _engine_once(data_dir: Path) -> tuple[dict, object]:
    from crm_helpers import load
    from crm_helpers.experiments import core

    stages: dict[str, list[float]] = {}
    t, c = time.perf_counter(), _cpu()

    def stage(name: str) -> None:
        nonlocal t, c
        stages[name] = [time.perf_counter() - t, _cpu() - c]
        t, c = time.perf_counter(), _cpu()

    data = load(data_dir, validate=False)
    stage("load")
    a = core.assigned_users(data, "bench", WINDOW_DAYS, tables={"orders", "events"})
    stage("assigned_users")
    pu = core.per_user_metrics(
        data, a, METRICS, analysis_window_days=WINDOW_DAYS, pre_period_days=PRE_DAYS
    )
    stats = core.sufficient_stats(pu, METRICS)
    stage("per_user_metrics + sufficient_stats")
    return stages, stats


def run_helper(data_dir: Path, repeat: int = 1) -> dict:
    from crm_helpers.experiments import analysis

    best = None
    for _ in range(repeat):
        stages, stats = _engine_once(data_dir)
        wall = sum(v[0] for v in stages.values())
        if best is None or wall < best[0]:
            best = (wall, sum(v[1] for v in stages.values()), stages, stats)
    engine_s, engine_cpu, stages, stats = best

    def stats_layer():
        arms = analysis.arms_table(
            stats, "control", primary="conversion", secondary=METRICS[1:4],
            guardrails=METRICS[4:], correction="holm",
        )  # fmt: skip
        analysis.cuped_table(stats, "control", METRICS)
        analysis.posterior_table(stats, "control", "conversion")
        analysis.power_summary(stats, "control", "conversion")
        assert len(arms) == 15  # 3 arms x 5 metrics

    t = time.perf_counter()
    stats_layer()  # the first call also imports statsmodels' modules
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    stats_layer()
    stats_s = time.perf_counter() - t
    return {
        "engine_s": engine_s,
        "engine_cpu": engine_cpu,
        "stages": stages,
        "stats_s": stats_s,
        "stats_first_s": first_s,
        "stats": _rows(stats),
    }


def _rows(stats) -> list:
    cols = ["n", "sum", "sum_sq", "pre_sum", "pre_sum_sq", "cross_sum"]
    stats = stats.sort_values(["variant", "metric"])
    return [[r["variant"], r["metric"], *[float(r[c]) for c in cols]] for _, r in stats.iterrows()]


def sql_query(data_dir: Path) -> str:
    w, p = int(WINDOW_DAYS * DAY_US), int(PRE_DAYS * DAY_US)
    src = {
        n: f"read_parquet('{data_dir / n}/*.parquet')" for n in ("assignments", "orders", "events")
    }
    metric_sql = {
        "conversion": ("(o.orders > 0)::DOUBLE", "(o.pre_orders > 0)::DOUBLE"),
        "revenue": ("o.revenue", "o.pre_revenue"),
        "orders": ("o.orders::DOUBLE", "o.pre_orders::DOUBLE"),
        "event:visit": ("(e.visits > 0)::DOUBLE", "(e.pre_visits > 0)::DOUBLE"),
        "event_count:purchase": ("e.purchases::DOUBLE", "e.pre_purchases::DOUBLE"),
    }
    sums = []
    for i, (y, x) in enumerate(metric_sql.values()):
        y, x = f"coalesce({y}, 0)", f"coalesce({x}, 0)"
        sums += [f"sum({y}) s{i}", f"sum({y}*{y}) ss{i}", f"sum({x}) ps{i}", f"sum({x}*{x}) pss{i}",
                 f"sum({x}*{y}) xy{i}"]  # fmt: skip
    return f"""
WITH ends AS (SELECT max(ts) AS t FROM (SELECT ts FROM {src["orders"]} UNION ALL SELECT ts FROM {src["events"]})),
a AS (SELECT user_id, min(variant) AS variant, epoch_us(min(assigned_at)) AS t0,
             count(DISTINCT variant) AS nv
      FROM {src["assignments"]} WHERE experiment_id = 'bench' GROUP BY user_id),
u AS (SELECT user_id, variant, t0 FROM a, ends WHERE nv = 1 AND t0 + {w} <= epoch_us(ends.t)),
o AS (SELECT u.user_id,
        sum(CASE WHEN t > t0 THEN 1 ELSE 0 END) AS orders,
        sum(CASE WHEN t > t0 THEN revenue ELSE 0 END) AS revenue,
        sum(CASE WHEN t <= t0 THEN 1 ELSE 0 END) AS pre_orders,
        sum(CASE WHEN t <= t0 THEN revenue ELSE 0 END) AS pre_revenue
      FROM u JOIN (SELECT user_id, epoch_us(ts) AS t, revenue FROM {src["orders"]}) r USING (user_id)
      WHERE t >= t0 - {p} AND t <= t0 + {w} GROUP BY u.user_id),
e AS (SELECT u.user_id,
        sum(CASE WHEN t > t0 AND event = 'visit' THEN 1 ELSE 0 END) AS visits,
        sum(CASE WHEN t <= t0 AND event = 'visit' THEN 1 ELSE 0 END) AS pre_visits,
        sum(CASE WHEN t > t0 AND event = 'purchase' THEN 1 ELSE 0 END) AS purchases,
        sum(CASE WHEN t <= t0 AND event = 'purchase' THEN 1 ELSE 0 END) AS pre_purchases
      FROM u JOIN (SELECT user_id, event, epoch_us(ts) AS t FROM {src["events"]}
                   WHERE event IN ('visit', 'purchase')) r USING (user_id)
      WHERE t >= t0 - {p} AND t <= t0 + {w} GROUP BY u.user_id)
SELECT u.variant, count(*) AS n, {", ".join(sums)}
FROM u LEFT JOIN o USING (user_id) LEFT JOIN e USING (user_id) GROUP BY u.variant ORDER BY 1
"""


def run_sql(data_dir: Path, repeat: int = 1) -> dict:
    from crm_helpers.engine import connect

    con = connect("duckdb")  # the same memory limit and settings as the helper's engine
    engine_s, engine_cpu, df = float("inf"), float("nan"), None
    for _ in range(repeat):
        t, c = time.perf_counter(), _cpu()
        out = con.con.execute(sql_query(data_dir)).fetch_df()
        wall, used = time.perf_counter() - t, _cpu() - c
        if wall < engine_s:
            engine_s, engine_cpu, df = wall, used, out
    rows = []
    for _, r in df.iterrows():
        for i, m in enumerate(METRICS):
            rows.append(
                [
                    r["variant"],
                    m,
                    float(r["n"]),
                    *[float(r[f"{k}{i}"]) for k in ("s", "ss", "ps", "pss", "xy")],
                ]
            )
    rows.sort(key=lambda x: (x[0], x[1]))
    return {"engine_s": engine_s, "engine_cpu": engine_cpu, "stats_s": None, "stats": rows}


def measure(impl: str, data_dir: Path, repeat: int = 1, timeout: float = 3600) -> dict:
    """Run one implementation in a subprocess; poll the peak RSS of its process tree."""
    cmd = [sys.executable, __file__, "--worker", impl, "--data", str(data_dir),
           "--repeat", str(repeat)]  # fmt: skip
    code, out, err, peak = run_polled(cmd, timeout)
    if code != 0:
        return {"impl": impl, "error": err[-2000:] or f"timed out after {timeout:.0f} s"}
    res = json.loads(out.strip().splitlines()[-1])
    return {"impl": impl, "peak_mb": peak / 2**20, **res}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--events-per-user", type=float, default=10.0)
    ap.add_argument(
        "--data", type=Path, help="use (or generate into) this folder instead of the cache"
    )
    ap.add_argument(
        "--root", type=Path, default=DEFAULT_ROOT,
        help="cache of generated data sets (default $CRM_BENCH_DIR or /tmp/crm_bench)",
    )  # fmt: skip
    ap.add_argument("--worker", choices=["helper", "sql"], help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=3, help="repeats per implementation (best)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.worker:
        fn = run_helper if args.worker == "helper" else run_sql
        print(json.dumps(fn(args.data, args.repeat)))
        return 0
    if args.data is not None:
        data_dir = args.data
        if not (data_dir / "assignments").exists():
            generate(data_dir, args.users, args.events_per_user)
    else:
        t = time.perf_counter()
        data_dir = ensure_data(args.users, args.events_per_user, root=args.root)
        print(f"data: {data_dir} ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    # generation ran in this process; each measured implementation is a fresh process
    results = [measure("helper", data_dir, args.repeat), measure("sql", data_dir, args.repeat)]
    bad = [r for r in results if "error" in r]
    if bad:
        print(json.dumps(bad, indent=1), file=sys.stderr)
        return 1
    helper, sql = results
    same = len(helper["stats"]) == len(sql["stats"]) and all(
        a[:2] == b[:2] and np.allclose(a[2:], b[2:], rtol=1e-9, atol=1e-9)
        for a, b in zip(helper["stats"], sql["stats"], strict=True)
    )
    ratio = helper["engine_s"] / sql["engine_s"]
    cpu_ratio = helper["engine_cpu"] / sql["engine_cpu"]
    load1 = os.getloadavg()[0]
    done = (
        json.loads((data_dir / ".complete").read_text())
        if (data_dir / ".complete").exists()
        else {}
    )
    users = done.get("users", args.users)
    epu = done.get("events_per_user", args.events_per_user)
    if args.json:
        print(json.dumps({"users": users, "same": same, "ratio": ratio, "cpu_ratio": cpu_ratio,
                          "load1": load1,
                          "results": [{k: v for k, v in r.items() if k != "stats"} for r in results]}))  # fmt: skip
    else:
        print(f"\n{users:,} users, ~{epu:g} events each, 3 arms x 5 metrics, best of "
              f"{args.repeat}, both reading the raw Parquet folders (load average {load1:.1f})\n")  # fmt: skip
        print(
            "| implementation | engine s | engine CPU s (all threads) | stats layer s "
            "(first call, with imports) | peak MB (process tree) | same stats |"
        )
        print("|---|---:|---:|---:|---:|---|")
        for r in results:
            st = "-"
            if r["stats_s"] is not None:
                st = f"{r['stats_s']:.3f} ({r['stats_first_s']:.2f})"
            print(f"| {r['impl']} | {r['engine_s']:.2f} | {r['engine_cpu']:.2f} | {st} | "
                  f"{r['peak_mb']:.0f} | {same} |")  # fmt: skip
        print("\nhelper stages (wall s / CPU s): " + ", ".join(
            f"{k} {w:.2f} / {c:.2f}" for k, (w, c) in helper["stages"].items()))  # fmt: skip
        print(f"helper / hand-written SQL engine time: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU "
              "(goal <= 1.0x)")  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

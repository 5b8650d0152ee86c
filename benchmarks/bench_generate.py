"""Benchmark the synthetic world generator: users/s, events/s and MB written.

Usage::

    .venv/bin/python benchmarks/bench_generate.py            # 100k (in memory + streamed), 1M
    .venv/bin/python benchmarks/bench_generate.py --large    # also 10M users (streamed)
    .venv/bin/python benchmarks/bench_generate.py --users 20000   # a quick check, both modes

All sizes run in this one process, one after the other, into a temporary directory that is
removed afterwards. ``in-memory`` is ``generate`` + ``write_world``; ``streamed`` is
``generate_to`` (chunk by chunk into Parquet row groups). Peak RSS is the process maximum
so far (it only grows). ``cpu s`` is this process's CPU time (all threads): on a shared
machine wall time can be far above it; on a free one below it, as the generator writes
Parquet and builds the events table on background threads.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from crm_helpers.synth import SynthConfig, generate, generate_to, write_world


def _mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def run(n_users: int, mode: str, root: Path, seed: int = 42) -> dict:
    cfg = SynthConfig(n_users=n_users, seed=seed)
    out = root / f"{mode}_{n_users}"
    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "in-memory":
        world = generate(cfg)
        t_gen = time.perf_counter() - t0
        write_world(world, out)
        gt = world.ground_truth
        del world
    else:
        gt = generate_to(cfg, out)
        t_gen = float("nan")
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    n_events = gt["counts"]["events"]
    row = {
        "users": n_users,
        "mode": mode,
        "events": n_events,
        "generate_s": t_gen,
        "total_s": total,
        "cpu_s": cpu,
        "users_per_s": n_users / total,
        "events_per_s": n_events / total,
        "events_per_cpu_s": n_events / cpu,
        "mb_written": _mb(out),
        "peak_rss_gb": _peak_rss_gb(),
    }
    shutil.rmtree(out)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also 10M users (streamed)")
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument(
        "--users", type=int, nargs="+", help="only these sizes (in-memory and streamed)"
    )
    args = ap.parse_args()
    plan = [(100_000, "in-memory"), (100_000, "streamed"), (1_000_000, "streamed")]
    if args.users:
        plan = [(n, mode) for n in args.users for mode in ("in-memory", "streamed")]
    if args.large:
        plan.append((10_000_000, "streamed"))
    root = Path(tempfile.mkdtemp(prefix="bench_generate_", dir=args.dir))
    rows = []
    try:
        for n, mode in plan:
            rows.append(run(n, mode, root))
            r = rows[-1]
            print(f"  done {n:>11,} users {mode:<9} in {r['total_s']:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    head = (
        f"{'users':>11} {'mode':<9} {'events':>12} {'gen s':>7} {'total s':>8} {'cpu s':>7} "
        f"{'users/s':>9} {'events/s':>10} {'ev/cpu s':>10} {'MB':>8} {'peak RSS GB':>11}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['users']:>11,} {r['mode']:<9} {r['events']:>12,} {r['generate_s']:>7.1f} "
            f"{r['total_s']:>8.1f} {r['cpu_s']:>7.1f} {r['users_per_s']:>9,.0f} {r['events_per_s']:>10,.0f} "
            f"{r['events_per_cpu_s']:>10,.0f} "
            f"{r['mb_written']:>8.1f} {r['peak_rss_gb']:>11.2f}"
        )


if __name__ == "__main__":
    main()

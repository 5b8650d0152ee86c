"""Benchmark (#25): funnel and journeys end to end from the source Parquet, store build included.

Usage::

    python benchmarks/bench_e2e.py [--events 1M,10M] [--users 100k,1M] [--data-dir /tmp/crm_bench]

Per size and implementation, one fresh worker process (peak memory = the larger of its
``VmHWM`` and a 20 ms poll of its process tree's RSS; CPU = ``getrusage`` of the worker, all
threads, for the timed part only), on ``funnel_impls.ensure_data``'s event log:

* ``helper e2e``: the notebooks' real path from a missing store, in a fresh cache:
  ``crm_helpers.load(data, validate=False)`` (the rows as the peers read them: validation
  would also drop the log's few exact duplicates, which the peers keep and which change the
  journeys' counts), ``ensure_store`` (built), the analysis' ``prepared_arrays`` (fresh check
  and ``load_arrays``), then the computation: ``funnel_table(data, spec, arrays=...)`` for the
  4-step ordered funnel with a 7-day window; for journeys the kernel path of
  ``bench_journeys.journeys_kernel`` (directly-follows counts with median/p90 times and the
  depth-5 paths after the first ``product_view``). The split load / build / read / compute.
* ``helper e2e validated`` (funnel only): the same with the validated ``load`` the notebooks
  call (duplicates dropped in the store; the funnel's counts do not change).
* ``helper from store``: the same as ``helper e2e`` with the store already built (by an
  earlier process, untimed): load, fresh check, read, compute.
* the peers, imported and not rewritten: funnel ``duckdb_sql``, ``polars``, ``pandas`` of
  ``funnel_impls``; journeys ``duckdb_sql``, ``duckdb_sql_one_pass``, ``polars``, ``pandas``
  of ``bench_journeys``.

Ratios are to the fastest peer of the analysis (wall to the fastest wall, CPU to the least
CPU). Every implementation's counts must agree (exit 1 otherwise). The machine is shared:
the 1-minute load average at each worker's start is printed beside the times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import funnel_impls as F  # noqa: E402
from bench_funnel import fmt_size, parse_size, vm_hwm_bytes  # noqa: E402
from procmem import run_polled  # noqa: E402

RESULT_TAG = "E2E_RESULT "
FUNNEL_PEERS = ("duckdb_sql", "polars", "pandas")
JOURNEY_PEERS = ("duckdb_sql", "duckdb_sql_one_pass", "polars", "pandas")
HELPERS = {
    "funnel": ("helper e2e", "helper e2e validated", "helper from store"),
    "journeys": ("helper e2e", "helper from store"),
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _funnel_counts(table) -> list[int]:
    return [int(v) for v in table["users"].tolist()]


def _journey_counts(result) -> dict:
    trans, paths = result[:2]  # a kernel with timings returns them third
    return {
        "transitions": sorted([a, b, int(n)] for (a, b), n in trans.items()),
        "paths": sorted([list(k), int(n)] for k, n in paths.items()),
    }


def helper(analysis: str, data_dir: Path, validate: bool) -> tuple[dict, object]:
    """The helper's path, timed in its four parts; returns (split seconds, counts)."""
    from crm_helpers.data import load
    from crm_helpers.store import ensure_store

    split, t0, c0 = {}, time.perf_counter(), _cpu()

    def lap(name: str) -> None:
        nonlocal t0, c0
        now, cnow = time.perf_counter(), _cpu()
        split[name], split[name + "_cpu"] = now - t0, cnow - c0
        t0, c0 = now, cnow

    data = load(data_dir, validate=validate)
    lap("load")
    prepared = ensure_store(data)
    lap("build")
    split["store_status"] = prepared.status
    if analysis == "funnel":
        from crm_helpers.funnels import FunnelSpec, funnel_table
        from crm_helpers.funnels.analysis import prepared_arrays

        spec = FunnelSpec(list(F.STEPS), mode="ordered", conversion_window_days=F.WINDOW_DAYS)
        arrays = prepared_arrays(data, spec)
        lap("read")
        counts = _funnel_counts(funnel_table(data, spec, arrays=arrays))
    else:
        import bench_journeys as J

        from crm_helpers.journeys.analysis import prepared_arrays
        from crm_helpers.journeys.core import JourneySpec

        arrays = prepared_arrays(data, JourneySpec())
        lap("read")
        counts = _journey_counts(J.journeys_kernel(arrays, timings=True))
    lap("compute")
    return split, counts


def peer(analysis: str, impl: str, data_dir: Path):
    if analysis == "funnel":
        return F.IMPLEMENTATIONS[impl](data_dir)
    import bench_journeys as J

    return _journey_counts(J.IMPLEMENTATIONS[impl](data_dir))


def worker(analysis: str, impl: str, data_dir: Path) -> dict:
    import bench_journeys  # noqa: F401  (imported before the clock, as the helper's modules)

    import crm_helpers.funnels  # noqa: F401
    import crm_helpers.journeys  # noqa: F401
    import crm_helpers.store  # noqa: F401

    out: dict = {}
    c0, t0 = _cpu(), time.perf_counter()
    if impl == "prebuild":
        from crm_helpers.data import load
        from crm_helpers.store import ensure_store

        ensure_store(load(data_dir, validate=False))
        counts = None
    elif impl.startswith("helper"):
        split, counts = helper(analysis, data_dir, validate=impl.endswith("validated"))
        out["split"] = split
    else:
        counts = peer(analysis, impl, data_dir)
    out["wall_s"], out["cpu_s"] = time.perf_counter() - t0, _cpu() - c0
    out["counts"] = counts
    out["self_hwm_bytes"] = vm_hwm_bytes()
    return out


def run_worker(analysis: str, impl: str, data_dir: Path, cache: Path, timeout: float) -> dict:
    load1 = os.getloadavg()[0]
    env_cache = os.environ.get("CRM_CACHE_DIR")
    os.environ["CRM_CACHE_DIR"] = str(cache)
    try:
        cmd = [sys.executable, __file__, "--worker", analysis, impl, str(data_dir)]
        code, stdout, stderr, peak = run_polled(cmd, timeout)
    finally:
        if env_cache is None:
            os.environ.pop("CRM_CACHE_DIR", None)
        else:
            os.environ["CRM_CACHE_DIR"] = env_cache
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if code != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        return {"impl": impl, "error": f"exit {code}: " + " | ".join(tail), "load1": load1}
    res = json.loads(lines[-1][len(RESULT_TAG) :])
    res.update(impl=impl, load1=load1, peak_bytes=max(peak, res.pop("self_hwm_bytes") or 0))
    return res


def bench(analysis: str, data_dir: Path, timeout: float) -> list[dict]:
    peers = FUNNEL_PEERS if analysis == "funnel" else JOURNEY_PEERS
    rows = []
    built = Path(tempfile.mkdtemp(prefix="crm_e2e_built_"))
    try:
        for impl in HELPERS[analysis]:
            if impl == "helper from store":
                pre = run_worker(analysis, "prebuild", data_dir, built, timeout)
                if "error" in pre:
                    rows.append({**pre, "impl": impl})
                    continue
                rows.append(run_worker(analysis, impl, data_dir, built, timeout))
                continue
            fresh = Path(tempfile.mkdtemp(prefix="crm_e2e_fresh_"))
            try:
                rows.append(run_worker(analysis, impl, data_dir, fresh, timeout))
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
        for impl in peers:
            rows.append(run_worker(analysis, impl, data_dir, built, timeout))
    finally:
        shutil.rmtree(built, ignore_errors=True)
    return rows


def table(analysis: str, n_events: int, rows: list[dict]) -> tuple[str, bool]:
    ok = [r for r in rows if "error" not in r]
    peers = [r for r in ok if not r["impl"].startswith("helper")]
    best_wall = min((r["wall_s"] for r in peers), default=float("nan"))
    best_cpu = min((r["cpu_s"] for r in peers), default=float("nan"))
    ref = peers[0]["counts"] if peers else None
    agree = all(r["counts"] == ref for r in ok) and len(ok) == len(rows)
    lines = [
        f"\n{analysis}, {fmt_size(n_events)} events",
        "| implementation | load 1-min | wall s | CPU s | peak memory | wall / best peer "
        "| CPU / best peer | load / build / read / compute (wall s) | (CPU s) | same counts |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['impl']} | {r['load1']:.1f} | error: {r['error']} |" + " |" * 7)
            continue
        sp = r.get("split")
        phases = ("load", "build", "read", "compute")
        split = " / ".join(f"{sp[k]:.2f}" for k in phases) if sp else ""
        split_cpu = " / ".join(f"{sp[k + '_cpu']:.2f}" for k in phases) if sp else ""
        lines.append(
            f"| {r['impl']} | {r['load1']:.1f} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} "
            f"| {r['peak_bytes'] / 1e9:.2f} GB | {r['wall_s'] / best_wall:.2f}x "
            f"| {r['cpu_s'] / best_cpu:.2f}x | {split} | {split_cpu} | {'yes' if r['counts'] == ref else 'NO'} |"
        )
    return "\n".join(lines), agree


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", default="1M,10M")
    p.add_argument("--users", default="100k,1M", help="users per size (comma-separated)")
    p.add_argument("--analyses", default="funnel,journeys")
    p.add_argument("--data-dir", type=Path, default=F.DEFAULT_DATA_DIR)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        analysis, impl, data_dir = args.worker
        print(RESULT_TAG + json.dumps(worker(analysis, impl, Path(data_dir))))
        return 0
    sizes = [parse_size(s) for s in args.events.split(",")]
    users = [parse_size(s) for s in args.users.split(",")]
    all_agree = True
    for n_events, n_users in zip(sizes, users, strict=True):
        d = F.ensure_data(n_users, n_events, data_dir=args.data_dir)
        for analysis in args.analyses.split(","):
            text, agree = table(analysis, n_events, bench(analysis, d, args.timeout))
            all_agree &= agree
            print(text, flush=True)
    print(f"\ncores {os.cpu_count()}, load average now {os.getloadavg()[0]:.1f} (a shared machine)")
    if not all_agree:
        print("FAILED: the implementations' counts differ (or one failed)")
    return 0 if all_agree else 1


if __name__ == "__main__":
    sys.exit(main())

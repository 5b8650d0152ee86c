"""Benchmark: building the prepared event store (#25) and reading it back, per size.

Usage::

    python benchmarks/bench_store.py [--events 1M,10M] [--users 100k,1M] [--data-dir /tmp/crm_bench]

Per size, in a fresh subprocess each (peak memory = the larger of its ``VmHWM`` and a 20 ms
poll of its process tree's RSS, as ``bench_funnel.py`` measures it), into a fresh cache:

* ``load``: :func:`crm_helpers.data.load` of the events (DuckDB over Parquet, validated);
* ``build``: :func:`crm_helpers.store.ensure_store` from missing, with its path (in memory:
  one scan, codes and sort in numpy; or DuckDB) and steps from the manifest;
* ``fresh check``: the same call again (the store found fresh);
* ``read``: :func:`crm_helpers.store.load_arrays` of the core arrays (user, t, event);
* ``raw read``: for scale, one read of the source's ``user_id``, ``event``, ``ts`` columns
  into Arrow with DuckDB (what every report pays today before its first sort).

The data are ``funnel_impls.ensure_data`` (the funnel/journeys benchmarks' event log).
The load average at the start of each worker is printed: on a shared machine the wall times
are inflated by others' work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import funnel_impls as F  # noqa: E402
from bench_funnel import fmt_size, parse_size, vm_hwm_bytes  # noqa: E402
from procmem import run_polled  # noqa: E402

RESULT_TAG = "BENCH_RESULT "


def _cpu() -> float:
    """CPU seconds of this process, all threads (DuckDB's included): less inflated by other
    work on the machine than the wall time."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(data_dir: Path) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="crm_store_bench_"))
    os.environ["CRM_CACHE_DIR"] = str(cache)
    try:
        from crm_helpers.data import load
        from crm_helpers.store import ensure_store, load_arrays

        out: dict = {}
        t0 = time.perf_counter()
        data = load(data_dir)
        out["load_s"] = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), _cpu()
        p = ensure_store(data)
        out["build_s"], out["build_cpu_s"] = time.perf_counter() - t0, _cpu() - c0
        assert p.status == "built"
        out["steps"] = p.manifest.get("build_steps")
        out["build_path"] = p.manifest.get("build_path", "duckdb")
        out["n_events"] = p.manifest["n_events"]
        out["parts"] = len(p.manifest["files"])
        out["store_bytes"] = sum(f.stat().st_size for f in p.path.rglob("*") if f.is_file())
        t0 = time.perf_counter()
        assert ensure_store(data).status == "fresh"
        out["fresh_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        a = load_arrays(p.path)
        out["read_s"] = time.perf_counter() - t0
        assert a.n_events == out["n_events"]
        del a
        import duckdb

        t0 = time.perf_counter()
        src = F.events_path(data_dir)
        duckdb.sql(f"SELECT user_id, event, ts FROM read_parquet('{src}')").to_arrow_table()
        out["raw_read_s"] = time.perf_counter() - t0
        out["self_hwm_bytes"] = vm_hwm_bytes()
        return out
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run_worker(data_dir: Path, timeout: float) -> dict:
    load1 = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--worker", str(data_dir)]
    code, stdout, stderr, peak = run_polled(cmd, timeout)
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if code != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        return {"error": f"exit {code}: " + " | ".join(tail), "load1": load1}
    res = json.loads(lines[-1][len(RESULT_TAG) :])
    res["load1"] = load1
    res["peak_bytes"] = max(peak, res.pop("self_hwm_bytes") or 0)
    return res


def table(rows: list[tuple[str, dict]]) -> str:
    head = (
        "| events | users | load 1-min | load data | build store | build CPU | path: steps (wall s) "
        "| fresh check | read arrays | raw read (DuckDB) | store size | parts | peak memory |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for label, r in rows:
        if "error" in r:
            lines.append(f"| {label} | | {r['load1']:.1f} | error: {r['error']} |" + " |" * 9)
            continue
        st = r.get("steps") or {}
        steps = f"{r.get('build_path', '?')}: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items())
        lines.append(
            f"| {fmt_size(r['n_events'])} | {label} | {r['load1']:.1f} | {r['load_s']:.2f} s "
            f"| **{r['build_s']:.2f} s** | {r['build_cpu_s']:.2f} s | {steps} "
            f"| {r['fresh_s'] * 1000:.0f} ms | {r['read_s']:.2f} s | {r['raw_read_s']:.2f} s "
            f"| {r['store_bytes'] / 1e6:.0f} MB | {r['parts']} | {r['peak_bytes'] / 1e9:.2f} GB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", default="1M,10M")
    p.add_argument("--users", default="100k,1M", help="users per size (comma-separated)")
    p.add_argument("--data-dir", type=Path, default=F.DEFAULT_DATA_DIR)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(RESULT_TAG + json.dumps(worker(Path(args.worker))))
        return 0
    sizes = [parse_size(s) for s in args.events.split(",")]
    users = [parse_size(s) for s in args.users.split(",")]
    rows = []
    for n_events, n_users in zip(sizes, users, strict=True):
        d = F.ensure_data(n_users, n_events, data_dir=args.data_dir)
        rows.append((fmt_size(n_users), run_worker(d, args.timeout)))
    print(f"cores {os.cpu_count()}, load average now {os.getloadavg()[0]:.1f} (a shared machine)")
    print(table(rows))
    return 0 if all("error" not in r for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

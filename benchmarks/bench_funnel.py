"""Benchmark: a 4-step ordered funnel with a 7-day window, end to end from Parquet.

Usage::

    python benchmarks/bench_funnel.py [--events 10M,50M] [--users 1M] [--repeat 2]
                                      [--spark] [--quick] [--data-dir /tmp/crm_bench]

``--impls helper,helper_kernel`` compares the Ibis helper with the helper on prepared arrays
(``funnel_table(..., arrays=)``, the sorted-array kernel of ``crm_helpers.funnels.kernel``,
issue #25) and, in the same subprocess, with the numpy floor on the same arrays
(:func:`floor_kernel`); the arrays are built in memory from the Parquet file
(:func:`prepare_arrays`, reported apart: it stands in for the prepared store). On a machine
shared with other work, run it at 1M and 10M events only (``--events 1M --users 100k``,
``--events 10M --users 1M``) and read the CPU-time ratio beside the wall-time one: the
table, the kernel alone and the floor run in interleaved rounds (``max(--repeat, 3)``), and
each ratio is best to best (CPU: ``getrusage`` user + system seconds, all threads).

Each implementation (see ``funnel_impls.py``) runs in its own subprocess, ``--repeat``
times; the best wall time is reported with the subprocess's peak memory: the larger of its
own ``VmHWM`` (Linux: the resident high-water mark of its address space, which starts afresh
at ``exec``) and a 20 ms psutil poll of its process tree's RSS (which covers Spark's JVM).
Not ``ru_maxrss``: on Linux a process keeps its parent's ``ru_maxrss`` across fork and exec,
so every worker started from a large parent (which may have just generated the data) would
report at least the parent's size. All
implementations must return the same step counts; a mismatch is flagged and the exit
status is 1. The result is a Markdown table on stdout (and JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import funnel_impls as F  # noqa: E402
from procmem import cpu_seconds, reset_peak, run_polled  # noqa: E402

BASELINES = ("duckdb_sql", "polars", "pandas")
LABELS = {
    "helper": "helper `funnel_table` (Ibis → DuckDB)",
    "duckdb_sql": "DuckDB SQL over Parquet (ASOF)",
    "duckdb_sql_windows": "DuckDB SQL, pruned windows (proposed for core.py)",
    "polars": "polars (join_asof)",
    "pandas": "pandas (merge_asof)",
    "numpy": "numpy end to end (read, sort, kernel)",
    "numpy_kernel": "↳ numpy kernel only (arrays in memory)",
    "numpy_sorted": "↳ numpy kernel on events sorted by (user, ts): the floor",
    "helper_kernel": "helper `funnel_table(arrays=)` (sorted-array kernel, arrays in memory)",
    "kernel_compute": "↳ kernel only (`kernel.compute`, arrays in memory)",
    "arrays_floor": "↳ numpy floor on the same arrays (minimal 4-step ordered kernel)",
    "arrays_prepare": "↳ preparing the arrays (read, code, sort; stands in for the store)",
    "spark_helper": "helper on Spark local (query)",
    "spark_session": "↳ Spark session start",
}
RESULT_TAG = "BENCH_RESULT "


def parse_size(text: str) -> int:
    """``"10M"`` -> 10_000_000, ``"500k"`` -> 500_000, ``"1234"`` -> 1234."""
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def fmt_size(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n:,}"


# --- worker (runs inside the subprocess) -----------------------------------------------------


def worker(impl: str, data_dir: Path, repeat: int) -> dict:
    """Run one implementation ``repeat`` times; return times, counts and extra phases."""
    out: dict = {"impl": impl, "times": [], "cpu": [], "extra": {}}
    if impl == "spark_helper":
        from crm_helpers.engine import connect

        t0 = time.perf_counter()
        con = connect("spark")
        con.raw_sql("SELECT 1").collect()
        out["extra"]["spark_session"] = [time.perf_counter() - t0]
        for _ in range(repeat):
            c0 = cpu_seconds()
            dt, counts = F.timed(lambda: F.funnel_helper(data_dir, engine=con))
            out["times"].append(dt)
            out["cpu"].append(cpu_seconds() - c0)
    elif impl == "helper_kernel":
        return _worker_kernel(out, data_dir, repeat)
    else:
        fn = F.IMPLEMENTATIONS[impl]
        for _ in range(repeat):
            c0 = cpu_seconds()  # all threads of this process (not Spark's JVM)
            dt, counts = F.timed(lambda fn=fn: fn(data_dir))
            out["times"].append(dt)
            out["cpu"].append(cpu_seconds() - c0)
    out["counts"] = counts
    if impl == "numpy":  # phases: the kernel on arrays in memory, the search on sorted keys
        user, ts, code = F.read_numpy(data_dir)
        w = F.window_us()
        kernel, search = [], []
        for _ in range(max(repeat, 3)):
            dt, c = F.timed(lambda: F.numpy_kernel(user, ts, code, len(F.STEPS), w))
            assert c == counts
            kernel.append(dt)
        key, codes, span, wk = F.sort_events(user, ts, code, len(F.STEPS), w)
        for _ in range(max(repeat, 3)):
            dt, c = F.timed(lambda: F.sorted_kernel(key, codes, span, len(F.STEPS), wk))
            assert c == counts
            search.append(dt)
        out["extra"] = {"numpy_kernel": kernel, "numpy_sorted": search}
    out["self_hwm_bytes"] = vm_hwm_bytes()
    return out


def prepare_arrays(data_dir: Path):
    """:class:`crm_helpers.store.EventArrays` of the benchmark's events, built in numpy from
    the Parquet file (what the prepared store will hold; the store itself is not used)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crm_helpers.store import EventArrays

    t = pq.read_table(
        F.events_path(data_dir), columns=["user_id", "event", "ts"], read_dictionary=["event"]
    )
    ev = t.column("event").combine_chunks()
    names = ev.dictionary.to_pylist()
    rank = np.empty(len(names), dtype=np.int32)
    rank[np.argsort(np.array(names, dtype=object))] = np.arange(len(names), dtype=np.int32)
    code = rank[ev.indices.to_numpy(zero_copy_only=False)]
    uids, ucode = np.unique(t.column("user_id").to_numpy(), return_inverse=True)
    ts = t.column("ts").cast(pa.timestamp("us")).combine_chunks().view(pa.int64()).to_numpy()
    order = np.lexsort((code, ts, ucode))
    user = ucode[order].astype(np.int32)
    counts = np.bincount(user, minlength=len(uids))
    return EventArrays(
        user=user,
        t=np.ascontiguousarray(ts[order], dtype=np.int64),
        event=code[order],
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        user_ids=uids,
        event_names=tuple(sorted(names)),
    )


def floor_kernel(arrays, steps=F.STEPS, window: int | None = None) -> list[int]:
    """The numpy floor on :class:`EventArrays`: a minimal ordered windowed funnel (no date
    range, gaps, exclusions, filters or timing; users reaching each step only).

    Step rows only; ``before`` is the last row of an earlier moment; ``best`` the latest
    entry row among them (``np.maximum.accumulate`` of row indices: rows are sorted by
    (user, t), so the latest row is the latest-starting chain); same user and in window.
    """
    import numpy as np

    w = F.window_us() if window is None else window
    lut = np.full(len(arrays.event_names) + 1, -1, dtype=np.int8)
    for k, name in enumerate(steps):
        c = arrays.event_code(name)
        if c is not None:
            lut[c] = k
    code = lut[arrays.event]
    idx = np.flatnonzero(code >= 0)
    if idx.size == 0:
        return [0] * len(steps)
    u, t, code = arrays.user[idx], arrays.t[idx], code[idx]
    n = idx.size
    pos = np.arange(n, dtype=np.int64)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(t[1:], t[:-1], out=new[1:])
    new[1:] |= u[1:] != u[:-1]
    before = np.maximum.accumulate(np.where(new, pos, 0)) - 1
    has = before >= 0
    before[~has] = 0
    ent = np.where(code == 0, pos, -1)
    ok = code == 0
    counts = [_n_distinct_sorted(u[ok])]
    for k in range(1, len(steps)):
        best = np.maximum.accumulate(ent)[before]
        bc = np.maximum(best, 0)
        ok = (code == k) & has & (best >= 0) & (u[bc] == u) & (t - t[bc] <= w)
        ent = np.where(ok, best, -1)
        counts.append(_n_distinct_sorted(u[ok]))
    return counts


def _n_distinct_sorted(a) -> int:
    return 0 if len(a) == 0 else int((a[1:] != a[:-1]).sum()) + 1


def _worker_kernel(out: dict, data_dir: Path, repeat: int) -> dict:
    """``helper_kernel``: the helper's ``funnel_table`` on arrays in memory, with the kernel
    alone, the numpy floor on the same arrays and the preparation as extra rows."""
    import crm_helpers
    from crm_helpers.funnels import FunnelSpec, funnel_table, kernel
    from crm_helpers.store.paths import paths_used, reset_paths

    t0 = time.perf_counter()
    arrays = prepare_arrays(data_dir)
    prep = time.perf_counter() - t0
    loaded = crm_helpers.load(data_dir, validate=False)
    spec = FunnelSpec(list(F.STEPS), mode="ordered", conversion_window_days=F.WINDOW_DAYS)
    reset_paths()
    hwm_prepare = vm_hwm_bytes() or 0
    reset_peak()  # from here the peak is the arrays (and the Ibis table) plus the runs
    comp, floor, floor_cpu = [], [], []
    # interleaved (table, kernel alone, floor) rounds, at least 3: a burst of other work on
    # a shared machine then slows one round of each, not every run of one of them
    for _ in range(max(repeat, 3)):
        c0 = cpu_seconds()
        dt, table = F.timed(lambda: funnel_table(loaded.events, spec, arrays=arrays))
        out["times"].append(dt)
        out["cpu"].append(cpu_seconds() - c0)
        dt, kf = F.timed(lambda: kernel.compute(arrays, spec))
        comp.append(dt)
        c0 = cpu_seconds()
        dt, c = F.timed(lambda: floor_kernel(arrays))
        floor_cpu.append(cpu_seconds() - c0)
        floor.append(dt)
    assert paths_used().get("funnel") == ["kernel"], paths_used()
    out["counts"] = [int(v) for v in table["users"].tolist()]
    assert c == out["counts"], (c, out["counts"])
    out["extra"] = {"kernel_compute": comp, "arrays_floor": floor, "arrays_prepare": [prep]}
    out["floor_cpu"] = floor_cpu
    out["run_peak_bytes"] = vm_hwm_bytes()
    out["self_hwm_bytes"] = max(hwm_prepare, out["run_peak_bytes"] or 0)
    return out


def vm_hwm_bytes(pid: int | str = "self") -> int | None:
    """Peak resident memory of one process's address space (``VmHWM``), or None off Linux.

    Unlike ``getrusage(...).ru_maxrss``, which a child inherits from its parent across fork
    and exec, ``VmHWM`` belongs to the address space that ``exec`` creates anew.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


# --- parent ----------------------------------------------------------------------------------


def run_worker(impl: str, data_dir: Path, repeat: int, timeout: float) -> dict:
    """Run :func:`worker` in a subprocess, polling its process tree's RSS every 20 ms."""
    load1 = os.getloadavg()[0]  # other work on the machine inflates wall times: reported
    cmd = [sys.executable, __file__, "--worker", impl, "--data", str(data_dir)]
    cmd += ["--repeat", str(repeat)]
    code, stdout, stderr, peak = run_polled(cmd, timeout)
    if code is None:
        return {"impl": impl, "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if code != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        return {"impl": impl, "error": f"exit {code}: " + " | ".join(tail)}
    res = json.loads(lines[-1][len(RESULT_TAG) :])
    res["load1"] = load1
    res["poll_peak_bytes"] = peak
    res["peak_bytes"] = max(peak, res.pop("self_hwm_bytes") or 0)
    return res


def bench_size(
    n_events: int, n_users: int, args: argparse.Namespace, spark: bool
) -> tuple[Path, list[dict]]:
    t0 = time.perf_counter()
    data_dir = F.ensure_data(n_users, n_events, args.seed, args.data_dir)
    print(f"[data] {data_dir} ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    impls = list(args.impls)
    if "helper" in impls and not F.helper_available():
        print("[skip] helper: crm_helpers.funnels is not importable yet", file=sys.stderr)
        impls.remove("helper")
    if spark and F.helper_available():
        impls.append("spark_helper")
    results = []
    for impl in impls:
        print(f"[run] {fmt_size(n_events)} {impl} x{args.repeat} ...", file=sys.stderr, flush=True)
        res = run_worker(impl, data_dir, args.repeat, args.timeout)
        if "error" in res:
            print(f"[error] {impl}: {res['error']}", file=sys.stderr)
        else:
            print(
                f"[done] {impl}: best {min(res['times']):.2f} s, "
                f"peak {res['peak_bytes'] / 1e9:.2f} GB, counts {res['counts']}",
                file=sys.stderr,
                flush=True,
            )
        results.append(res)
    return data_dir, results


def summarise(n_events: int, results: list[dict]) -> dict:
    """Rows (with ratios), agreement of the counts, and the goals for one size."""
    ok = {r["impl"]: r for r in results if "error" not in r}
    best = {name: min(r["times"]) for name, r in ok.items()}
    base = [best[b] for b in BASELINES if b in best]
    fastest = min(base) if base else None
    floor = best.get("numpy")
    counts = {name: r["counts"] for name, r in ok.items()}
    agree = len({tuple(c) for c in counts.values()}) <= 1
    rows = []
    for r in results:
        name = r["impl"]
        if "error" in r:
            rows.append({"impl": name, "error": r["error"]})
            continue
        t = best[name]
        rows.append(
            {
                "impl": name,
                "best_s": t,
                "runs": len(r["times"]),
                "cpu_s": r["cpu"][r["times"].index(t)],
                "load1": r["load1"],
                "peak_gb": r["peak_bytes"] / 1e9,
                "vs_fastest": t / fastest if fastest else None,
                "vs_floor": t / floor if floor else None,
                "counts": r["counts"],
            }
        )
        for extra, times in r.get("extra", {}).items():
            rows.append({"impl": extra, "best_s": min(times), "runs": len(times)})
    goals = {}
    if "helper" in best and fastest:
        ratio = best["helper"] / fastest
        goals["helper <= 1.25x fastest of SQL/polars/pandas"] = (ratio <= 1.25, f"{ratio:.2f}x")
    if "helper" in ok and n_events >= 50_000_000:
        gb = ok["helper"]["peak_bytes"] / 1e9
        goals["helper peak memory < 2 GB at 50M events"] = (gb < 2.0, f"{gb:.2f} GB")
    notes = {}
    sorted_floor = min(ok["numpy"]["extra"]["numpy_sorted"]) if "numpy" in ok else None
    if "helper" in best and floor:
        notes["helper / numpy end to end"] = f"{best['helper'] / floor:.1f}x"
    if "helper" in best and sorted_floor:
        notes["helper / numpy kernel on sorted events (floor)"] = (
            f"{best['helper'] / sorted_floor:.0f}x ({sorted_floor:.2f} s)"
        )
    if "helper_kernel" in ok:
        afloor = min(ok["helper_kernel"]["extra"]["arrays_floor"])
        hk = best["helper_kernel"]
        notes["numpy floor on the same arrays"] = f"{afloor:.3f} s"
        if ok["helper_kernel"].get("run_peak_bytes"):
            notes["helper kernel peak from the arrays in memory on (after preparing them)"] = (
                f"{ok['helper_kernel']['run_peak_bytes'] / 1e9:.2f} GB"
            )
        ratio = hk / afloor
        goals["helper kernel from prepared arrays within 2x of the numpy floor, wall"] = (
            ratio <= 2.0,
            f"{ratio:.2f}x ({hk:.3f} s vs {afloor:.3f} s)",
        )
        hk_cpu = min(ok["helper_kernel"]["cpu"])  # best of each: the least disturbed run
        fl_cpu = min(ok["helper_kernel"]["floor_cpu"])
        goals["helper kernel from prepared arrays within 2x of the numpy floor, CPU time"] = (
            hk_cpu / fl_cpu <= 2.0,
            f"{hk_cpu / fl_cpu:.2f}x ({hk_cpu:.3f} s vs {fl_cpu:.3f} s)",
        )
        if "helper" in best:
            notes["helper Ibis path / helper kernel from arrays"] = (
                f"{best['helper'] / hk:.1f}x ({best['helper']:.2f} s vs {hk:.3f} s)"
            )
    return {
        "n_events": n_events,
        "notes": notes,
        "rows": rows,
        "agree": agree,
        "counts": counts,
        "goals": goals,
        "fastest_baseline_s": fastest,
    }


def markdown(summaries: list[dict], n_users: int) -> str:
    head = (
        "| events | implementation | best wall s | runs | CPU s | load | peak RSS GB "
        "| x fastest SQL/polars/pandas | x numpy end to end |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for s in summaries:
        size = fmt_size(s["n_events"])
        for r in s["rows"]:
            label = LABELS.get(r["impl"], r["impl"])
            if "error" in r:
                lines.append(f"| {size} | {label} | error: {r['error'][:80]} | | | | | | |")
                continue
            peak = f"{r['peak_gb']:.2f}" if "peak_gb" in r else ""
            cpu = f"{r['cpu_s']:.2f}" if r.get("cpu_s") is not None else ""
            load = f"{r['load1']:.1f}" if "load1" in r else ""
            vf = f"{r['vs_fastest']:.2f}" if r.get("vs_fastest") else ""
            vfl = f"{r['vs_floor']:.1f}" if r.get("vs_floor") else ""
            lines.append(
                f"| {size} | {label} | {r['best_s']:.3f} | {r['runs']} | {cpu} | {load} | {peak} "
                f"| {vf} | {vfl} |"
            )
    text = head + "\n".join(lines) + "\n"
    for s in summaries:
        size = fmt_size(s["n_events"])
        counts = next(iter(s["counts"].values()), None)
        verdict = "all implementations agree" if s["agree"] else "MISMATCH"
        text += f"\n{size} events, {fmt_size(n_users)} users: step counts {counts} ({verdict})"
        if not s["agree"]:
            text += "\n" + "\n".join(f"  {k}: {v}" for k, v in s["counts"].items())
        for note, value in s.get("notes", {}).items():
            text += f"\n- {note}: {value}"
        for goal, (passed, value) in s["goals"].items():
            text += f"\n- goal {goal}: {'PASS' if passed else 'FAIL'} ({value})"
        text += "\n"
    return text


def machine() -> str:
    return f"{platform.node() or 'host'}: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", default="10M,50M", help="comma-separated sizes (default 10M,50M)")
    p.add_argument("--users", default="1M")
    p.add_argument("--repeat", type=int, default=2, help="runs per implementation (best kept)")
    p.add_argument("--spark", action="store_true", help="also the helper on Spark local")
    p.add_argument(
        "--spark-max-events", default="10M", help="run Spark only up to this size (default 10M)"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 1M events")
    p.add_argument("--data-dir", type=Path, default=F.DEFAULT_DATA_DIR)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--impls",
        default="helper,helper_kernel,duckdb_sql,duckdb_sql_windows,polars,pandas,numpy",
        help="comma-separated implementations",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds per implementation")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        res = worker(args.worker, args.data, args.repeat)
        print(RESULT_TAG + json.dumps(res), flush=True)
        return 0

    args.impls = [s.strip() for s in args.impls.split(",") if s.strip()]
    sizes = [1_000_000] if args.quick else [parse_size(s) for s in args.events.split(",")]
    n_users = parse_size(args.users)
    spark_max = parse_size(args.spark_max_events)
    summaries = []
    for n in sizes:
        _, results = bench_size(n, n_users, args, args.spark and n <= spark_max)
        summaries.append(summarise(n, results))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Funnel benchmark, {stamp}, {machine()}\n")
    print(markdown(summaries, n_users))
    if args.json:
        args.json.write_text(json.dumps({"date": stamp, "machine": machine(), "sizes": summaries}))
    return 0 if all(s["agree"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())

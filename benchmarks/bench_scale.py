"""Benchmark: the scale curve of the embedded default path, 1M to 100M events (issue #25).

Usage::

    python benchmarks/bench_scale.py --sizes 1M,10M [--data-dir /tmp/scale_data]
    python benchmarks/bench_scale.py --sizes 50M      # one size at a time at 50M/100M
    python benchmarks/bench_scale.py --report         # the table and the slopes, from the JSON

Data: per size, ``funnel_impls.ensure_data(events // 10, events)`` (the funnel and journeys
benchmarks' event log, one user per ten events) under ``--data-dir``. Every step runs in a
fresh worker process (peak memory = the larger of its ``VmHWM`` and a 20 ms poll of its
process tree's RSS, :mod:`procmem`), as a report runs it:

* ``build``: :func:`crm_helpers.load` of the data (validated), then
  :func:`crm_helpers.store.ensure_store` from missing into ``<data>/../cache/<size>``
  (``$CRM_CACHE_DIR``; the engine's default DuckDB memory limit), its steps from the manifest;
* ``funnel``: ``load``, the arrays from that store
  (:func:`crm_helpers.funnels.analysis.prepared_arrays`), then
  ``funnel_table(data, spec, arrays=...)``: 4-step ordered, 7-day window, as ``bench_funnel``;
* ``journeys``: ``load``, the arrays (:func:`crm_helpers.journeys.analysis.prepared_arrays`),
  ``prepare(events, JourneySpec(), arrays=...)``, ``transitions`` with the median/p90 times and
  the depth-5 ``paths`` after the first ``product_view``, as ``bench_journeys``' ``kernel_times``
  (both must record the kernel path);
* ``sql_funnel`` / ``sql_journeys``: the fastest peer for reference, hand-written DuckDB SQL
  over the source Parquet (``funnel_impls.funnel_duckdb_sql``,
  ``bench_journeys.journeys_duckdb_sql_one_pass``; DuckDB's own defaults: 80% of RAM).

Each worker reports wall and CPU seconds (``getrusage``: all threads of the process, DuckDB's
included) of each phase, the 1-minute load average at its start, and the largest size of its
DuckDB temporary directories, polled every 0.2 s (spilling beyond the memory limit). The
funnel counts must equal the SQL's; the journeys' transitions and paths must equal those of
``bench_journeys.journeys_floor`` (minimal numpy) on the store's arrays, run in a last worker
(``check``, not tabled): the SQL reads the raw rows, with the exact duplicate rows that
:func:`crm_helpers.load` drops (about 0.1% of this log), so its journeys differ by them (a
mismatch is flagged; the exit status is 1). Results are appended to ``<data-dir>/scale_results.json``
(one entry per size and step, the newest kept), so sizes can run separately; ``--report``
prints the table, the CPU seconds per million events and the slope: the least-squares
exponent ``b`` of ``time = a * events**b`` over the sizes (``b = 1`` is linear), overall and
between consecutive sizes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import funnel_impls as F  # noqa: E402
from bench_funnel import fmt_size, parse_size, vm_hwm_bytes  # noqa: E402
from procmem import TreePoller, run_polled  # noqa: E402

RESULT_TAG = "SCALE_RESULT "
STEPS = ("build", "funnel", "journeys", "sql_funnel", "sql_journeys")
#: Steps run but not tabled as a column (the journeys' independent check).
ALL_STEPS = (*STEPS, "check")
DEFAULT_DATA_DIR = Path("/tmp/scale_data")


def _cpu() -> float:
    """CPU seconds of this process, all threads (DuckDB's included)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Clock:
    """Wall and CPU seconds of named phases, in order."""

    def __init__(self) -> None:
        self.phases: dict[str, list[float]] = {}
        self.t0, self.c0 = time.perf_counter(), _cpu()

    def phase(self, name: str, fn):
        """Run ``fn``; record ``[wall s, CPU s, peak RSS bytes of this process during it]``
        (the RSS includes what earlier phases still hold)."""
        t0, c0 = time.perf_counter(), _cpu()
        with TreePoller(os.getpid()) as poller:
            out = fn()
        self.phases[name] = [time.perf_counter() - t0, _cpu() - c0, poller.peak]
        return out

    def total(self) -> list[float]:
        return [time.perf_counter() - self.t0, _cpu() - self.c0]


class _DirPoller:
    """The largest total size of the files under ``root`` (DuckDB's spill files), polled."""

    def __init__(self, root: Path, interval_s: float = 0.2) -> None:
        self.root, self.interval_s, self.peak = root, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _size(self) -> int:
        total = 0
        for dirpath, _, files in os.walk(self.root):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(dirpath, f))
                except OSError:
                    pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._size())
            time.sleep(self.interval_s)

    def __enter__(self) -> _DirPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _journey_digest(trans: dict, paths) -> str:
    """One hash of the transition counts and the path counts (to compare across steps)."""
    return _digest(
        {
            "t": sorted([a, b, int(n)] for (a, b), n in trans.items()),
            "p": sorted([list(p), int(n)] for p, n in paths.items()),
        }
    )


# --- worker steps (each in its own process) ----------------------------------------------------


def _build(clock: _Clock, data_dir: Path) -> dict:
    from crm_helpers.data import load
    from crm_helpers.store import ensure_store

    data = clock.phase("load", lambda: load(data_dir))
    p = clock.phase("build", lambda: ensure_store(data))
    assert p.status == "built", p.status
    return {
        "n_events": p.manifest["n_events"],
        "store_steps": p.manifest.get("build_steps"),
        "store_bytes": sum(f.stat().st_size for f in p.path.rglob("*") if f.is_file()),
    }


def _funnel(clock: _Clock, data_dir: Path) -> dict:
    from crm_helpers.data import load
    from crm_helpers.funnels import FunnelSpec, analysis, funnel_table
    from crm_helpers.store.paths import paths_used

    spec = FunnelSpec(list(F.STEPS), mode="ordered", conversion_window_days=F.WINDOW_DAYS)
    data = clock.phase("load", lambda: load(data_dir))
    arrays = clock.phase("read", lambda: analysis.prepared_arrays(data, spec))
    assert arrays is not None, "no store arrays: the Ibis path would run"
    table = clock.phase("compute", lambda: funnel_table(data, spec, arrays=arrays))
    # diagnostic, not in the step's total: the same call again (warm: imports, first-call
    # set-up and page faults of the first call paid)
    clock.phase("again", lambda: funnel_table(data, spec, arrays=arrays))
    assert paths_used().get("funnel") == ["kernel"], paths_used()
    return {"n_events": int(arrays.n_events), "counts": [int(v) for v in table["users"]]}


def _journeys(clock: _Clock, data_dir: Path) -> dict:
    from bench_journeys import ANCHOR, DEPTH

    from crm_helpers.data import load
    from crm_helpers.journeys import JourneySpec, analysis, paths, prepare, transitions
    from crm_helpers.store.paths import paths_used

    spec = JourneySpec()
    data = clock.phase("load", lambda: load(data_dir))
    arrays = clock.phase("read", lambda: analysis.prepared_arrays(data, spec))
    assert arrays is not None, "no store arrays: the Ibis path would run"

    def compute():
        prep = prepare(data.events, spec, arrays=arrays)
        return transitions(prep), paths(prep, ANCHOR, DEPTH, "after")

    edges, after = clock.phase("compute", compute)
    clock.phase("again", compute)  # diagnostic, not in the total (as in _funnel)
    assert paths_used().get("journeys") == ["kernel"], paths_used()
    assert {"median_seconds", "p90_seconds"} <= set(edges.columns)
    trans = {
        (a, b): n for a, b, n in zip(edges["source"], edges["target"], edges["count"], strict=True)
    }
    pc = {tuple(p): n for p, n in zip(after["path"], after["journeys"], strict=True)}
    return {
        "n_events": int(arrays.n_events),
        "digest": _journey_digest(trans, pc),
        "n_edges": len(edges),
        "n_paths": len(after),
    }


def _check(clock: _Clock, data_dir: Path) -> dict:
    """The journeys' reference: ``bench_journeys.journeys_floor`` (minimal numpy) on the
    store's arrays, read with :func:`crm_helpers.store.load_arrays` (untabled step)."""
    from bench_journeys import journeys_floor

    from crm_helpers.store import load_arrays, store_path

    arrays = clock.phase("read", lambda: load_arrays(store_path(data_dir)))
    trans, pc = clock.phase("compute", lambda: journeys_floor(arrays))
    return {"digest": _journey_digest(trans, pc), "n_edges": len(trans), "n_paths": len(pc)}


def _sql_funnel(clock: _Clock, data_dir: Path) -> dict:
    counts = clock.phase("compute", lambda: F.funnel_duckdb_sql(data_dir))
    return {"counts": [int(c) for c in counts]}


def _sql_journeys(clock: _Clock, data_dir: Path) -> dict:
    from bench_journeys import journeys_duckdb_sql_one_pass

    trans, pc = clock.phase("compute", lambda: journeys_duckdb_sql_one_pass(data_dir))
    return {"digest": _journey_digest(trans, pc), "n_edges": len(trans), "n_paths": len(pc)}


WORKERS = {
    "build": _build,
    "funnel": _funnel,
    "journeys": _journeys,
    "sql_funnel": _sql_funnel,
    "sql_journeys": _sql_journeys,
    "check": _check,
}


def worker(step: str, data_dir: Path, cache: Path) -> dict:
    """Run one step; DuckDB's spill files (the engine's ``temp_directory`` and a plain
    connection's ``.tmp`` in the working directory) go to a scratch directory, polled."""
    scratch = cache.parent / f"scratch_{step}_{os.getpid()}"
    scratch.mkdir(parents=True)
    os.environ["CRM_CACHE_DIR"] = str(cache)
    os.environ["CRM_DUCKDB_TEMP_DIR"] = str(scratch / "crm_duckdb")
    os.chdir(scratch)
    try:
        clock = _Clock()
        with _DirPoller(scratch) as spill:
            out = WORKERS[step](clock, data_dir)
        wall, cpu = clock.total()
        again = clock.phases.get("again", [0.0, 0.0])
        out["wall_s"], out["cpu_s"] = wall - again[0], cpu - again[1]
        out["phases"] = clock.phases
        out["spill_bytes"] = spill.peak
        out["self_hwm_bytes"] = vm_hwm_bytes()
        return out
    finally:
        os.chdir("/")
        shutil.rmtree(scratch, ignore_errors=True)


def run_step(
    step: str, data_dir: Path, cache: Path, timeout: float, build_limit: str | None = None
) -> dict:
    """Run one step in a fresh worker; ``build_limit``: the engine's DuckDB memory limit
    (``$CRM_DUCKDB_MEMORY_LIMIT``) for the ``build`` step only (None: the default)."""
    load1 = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--worker", step, "--data", str(data_dir)]
    cmd += ["--cache", str(cache)]
    saved = os.environ.get("CRM_DUCKDB_MEMORY_LIMIT")
    if build_limit and step == "build":  # the worker inherits this process's environment
        os.environ["CRM_DUCKDB_MEMORY_LIMIT"] = build_limit
    try:
        code, stdout, stderr, peak = run_polled(cmd, timeout)
    finally:
        os.environ.pop("CRM_DUCKDB_MEMORY_LIMIT", None)
        if saved is not None:
            os.environ["CRM_DUCKDB_MEMORY_LIMIT"] = saved
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if code != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()
        err = next((ln for ln in tail if "Error" in ln), tail[-1] if tail else "")
        return {
            "error": f"exit {code}: {err}",
            "stderr_tail": tail[-40:],
            "load1": load1,
            "peak_bytes": peak,
        }
    res = json.loads(lines[-1][len(RESULT_TAG) :])
    res["load1"] = load1
    res["load1_end"] = os.getloadavg()[0]
    res["memory_limit"] = (
        (build_limit if step == "build" else None)
        or os.environ.get("CRM_DUCKDB_MEMORY_LIMIT")
        or "engine default"
    )
    res["peak_bytes"] = max(peak, res.pop("self_hwm_bytes") or 0)
    return res


# --- results file, table and slopes ------------------------------------------------------------


def _results_path(data_dir: Path) -> Path:
    return data_dir / "scale_results.json"


def read_results(data_dir: Path) -> dict:
    p = _results_path(data_dir)
    return json.loads(p.read_text()) if p.exists() else {}


def save_result(data_dir: Path, n_events: int, step: str, res: dict) -> None:
    allres = read_results(data_dir)
    allres.setdefault(str(n_events), {})[step] = res
    _results_path(data_dir).write_text(json.dumps(allres, indent=1))


def fit_exponent(sizes: list[float], times: list[float]) -> float | None:
    """Least-squares slope of log(time) on log(size): ``b`` in ``time = a * size**b``."""
    pts = [(math.log(s), math.log(t)) for s, t in zip(sizes, times, strict=True) if t > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


#: Columns of the slope table: (label, step, getter of seconds from a result).
COLUMNS = (
    ("store build (process total)", "build", lambda r: r["cpu_s"]),
    ("↳ `load` (validated)", "build", lambda r: r["phases"]["load"][1]),
    ("↳ `ensure_store` only", "build", lambda r: r["phases"]["build"][1]),
    ("funnel (process total)", "funnel", lambda r: r["cpu_s"]),
    ("↳ read the store's arrays", "funnel", lambda r: r["phases"]["read"][1]),
    ("↳ `funnel_table(arrays=)` only", "funnel", lambda r: r["phases"]["compute"][1]),
    ("↳ the same, called again", "funnel", lambda r: r["phases"].get("again", [0, 0])[1]),
    ("journeys (process total)", "journeys", lambda r: r["cpu_s"]),
    ("↳ transitions + paths only", "journeys", lambda r: r["phases"]["compute"][1]),
    ("↳ the same, called again", "journeys", lambda r: r["phases"].get("again", [0, 0])[1]),
    ("DuckDB SQL funnel", "sql_funnel", lambda r: r["cpu_s"]),
    ("DuckDB SQL journeys", "sql_journeys", lambda r: r["cpu_s"]),
)


def _row(n: int, step: str, r: dict | None) -> str:
    """One Markdown row: events, step, wall, CPU, CPU per phase, peak, load, spill."""
    if r is None:
        return f"| {fmt_size(n)} | {step} | — | | | | | | |"
    if "error" in r:
        return f"| {fmt_size(n)} | {step} | error: {r['error'][:80]} | | | | | | |"
    ph = r.get("phases", {})
    cpu = " + ".join(f"{k} {v[1]:.2f}" for k, v in ph.items() if k != "again")
    cpu = cpu if len(ph) > 1 else ""
    if "again" in ph:
        cpu += f" (again: {ph['again'][1]:.2f})"
    peaks = " / ".join(f"{v[2] / 1e9:.2f}" for v in ph.values() if len(v) > 2)
    spill = f"{r['spill_bytes'] / 1e9:.2f} GB" if r.get("spill_bytes") else "0"
    return (
        f"| {fmt_size(n)} | {step} | {r['wall_s']:.2f} | **{r['cpu_s']:.2f}** | {cpu} "
        f"| {r['peak_bytes'] / 1e9:.2f} | {peaks} | {r['load1']:.1f} | {spill} |"
    )


def report(data_dir: Path) -> tuple[str, bool]:
    allres = read_results(data_dir)
    sizes = sorted(int(n) for n in allres)
    lines = [
        "| events | step | wall s | CPU s | CPU s per phase | peak GB (tree) "
        "| peak GB per phase (this process) | load 1-min | DuckDB spill |",
        "|---|---|---:|---:|---|---:|---|---:|---:|",
    ]
    agree = True
    notes = []
    for n in sizes:
        row = allres[str(n)]
        lines += [_row(n, s, row.get(s)) for s in STEPS]
        f, sf = row.get("funnel"), row.get("sql_funnel")
        if f and sf and "error" not in f and "error" not in sf:
            same = f["counts"] == sf["counts"]
            agree &= same
            notes.append(
                f"{fmt_size(n)}: funnel counts {f['counts']} "
                + ("= DuckDB SQL" if same else f"DIFFER from DuckDB SQL {sf['counts']}")
            )
        j, ck = row.get("journeys"), row.get("check")
        if j and ck and "error" not in j and "error" not in ck:
            same = j["digest"] == ck["digest"]
            agree &= same
            notes.append(
                f"{fmt_size(n)}: journeys {j['n_edges']} transitions, {j['n_paths']} paths "
                + ("= the numpy floor" if same else "DIFFER from the numpy floor")
                + f" on the store's {j['n_events']:,} events"
            )
    lines += ["", *notes, ""]
    head = "| CPU s per million events | " + " | ".join(fmt_size(n) for n in sizes)
    lines += [
        head + " | exponent b (all sizes) | b between consecutive sizes |",
        "|---|" + "---:|" * len(sizes) + "---:|---|",
    ]
    for label, step, get in COLUMNS:
        pts = []
        for n in sizes:
            r = allres[str(n)].get(step)
            pts.append((n, get(r)) if r and "error" not in r else (n, None))
        cells = [f"{t / (n / 1e6):.3f}" if t else "—" for n, t in pts]
        ok = [(n, t) for n, t in pts if t]
        b = fit_exponent([n for n, _ in ok], [t for _, t in ok])
        seg = [
            f"{fmt_size(n0)}→{fmt_size(n1)} {fit_exponent([n0, n1], [t0, t1]):.2f}"
            for (n0, t0), (n1, t1) in zip(ok, ok[1:], strict=False)
        ]
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {'' if b is None else f'{b:.2f}'} | {', '.join(seg)} |"
        )
    return "\n".join(lines), agree


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1M,10M", help="event counts, comma-separated")
    p.add_argument("--steps", default=",".join(ALL_STEPS))
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--report", action="store_true", help="only print the table from the JSON")
    p.add_argument(
        "--build-memory-limit",
        help="DuckDB memory limit of the build step ($CRM_DUCKDB_MEMORY_LIMIT; default: the engine's)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(RESULT_TAG + json.dumps(worker(args.worker, args.data, args.cache)), flush=True)
        return 0
    if not args.report:
        for n in (parse_size(s) for s in args.sizes.split(",")):
            data = F.ensure_data(n // 10, n, 0, args.data_dir)
            cache = args.data_dir / "cache" / fmt_size(n)
            for step in args.steps.split(","):
                if step == "build":
                    shutil.rmtree(cache, ignore_errors=True)
                print(f"[run] {fmt_size(n)} {step} ...", file=sys.stderr, flush=True)
                res = run_step(step, data, cache, args.timeout, args.build_memory_limit)
                if step == "build" and "error" in res:
                    print(f"[error] build failed: {res['error']}", file=sys.stderr, flush=True)
                    save_result(args.data_dir, n, step, res)
                    break  # without a store the other steps would build it themselves
                res["at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
                print(f"[done] {_row(n, step, res)}", file=sys.stderr, flush=True)
                save_result(args.data_dir, n, step, res)
    text, agree = report(args.data_dir)
    print(f"cores {os.cpu_count()}, load average now {os.getloadavg()[0]:.1f}\n")
    print(text)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run every report: each notebook and each named run, in parallel worker processes.

``crm run-all`` (and ``make reports``) call :func:`run_all`. Each report is one
:func:`~crm_helpers.report.run.run_notebook` call — its own kernel, its own folder, the same
atomic write and last-good-report rule as ``crm run`` — so reports can run side by side:
``jobs`` worker processes (default ``$CRM_JOBS``, else 2, at most the CPU count) take the
reports longest first (by the previous run's ``duration_s``, when there is one), so the
slowest report does not start last. The prepared event store
(:mod:`crm_helpers.report.prepared`) is made fresh once, here, before the first kernel, and
every report gets its record (all reports read one store; none builds it). The reports of
one ``run_all`` share its start as their load time (``$CRM_LOAD_TIME``, unless already set),
so the validation's "now" (a future-date cutoff excludes rows) is the same in every kernel,
and so is the store's source key. A report refused
before running (bad parameters, a malformed params file) is recorded as a failed run; the
others go on. The index page is rewritten once, at the end.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from crm_helpers import config
from crm_helpers.report.run import (
    ParametersError,
    RunResult,
    _environ,
    _now,
    _run_name_of,
    _write_atomic,
    check_outside_data,
    check_writable,
    discover_runs,
    report_dir_name,
    run_notebook,
)

__all__ = ["default_jobs", "run_all"]


def default_jobs() -> int:
    """``$CRM_JOBS`` if set, else 2; never more than the machine's CPUs, never below 1."""
    raw = os.environ.get("CRM_JOBS", "").strip()
    jobs = int(raw) if raw.isdigit() else 2
    return max(1, min(jobs, os.cpu_count() or 1))


def _previous_seconds(reports_root: Path, nb: Path, pf: Path | None) -> float:
    try:  # an unsafe run name (ParametersError, a ValueError) has no previous run
        path = reports_root / report_dir_name(nb.stem, _run_name_of(pf)) / "run.json"
        return float(json.loads(path.read_text()).get("duration_s") or 0.0)
    except (OSError, ValueError, TypeError):
        return 0.0


def _run_one(
    nb: Path,
    pf: Path | None,
    data_dir: str | Path | None,
    engine: str | None,
    reports_root: Path,
    allow_shrink: bool,
    shrink_share: float | None,
    store: dict | None = None,
) -> RunResult:
    """One report; a refusal before execution becomes a failed :class:`RunResult`."""
    try:
        return run_notebook(
            nb,
            params_file=pf,
            data_dir=data_dir,
            engine=engine,
            out_dir=reports_root,
            update_index=False,
            allow_shrink=allow_shrink,
            shrink_share=shrink_share,
            store=store,
            prepare=False,  # run_all prepared it (or found it does not apply)
        )
    except (ParametersError, FileNotFoundError, OSError, ValueError) as exc:
        now = _now()
        run = _run_name_of(pf)
        try:
            folder = reports_root / report_dir_name(nb.stem, run)
        except ParametersError:  # an unsafe run name: no folder of its own is made
            folder = None
        res = RunResult(
            name=nb.stem,
            notebook=str(nb),
            run=run,
            status="failed",
            parameters={},
            started_at=now,
            finished_at=now,
            duration_s=0.0,
            out_dir=str(folder or ""),
            error=f"{type(exc).__name__}: {exc}",
        )
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(folder / "run.json", json.dumps(res.to_dict(), indent=2, default=str))
        return res


def run_all(
    *,
    data_dir: str | Path | None = None,
    engine: str | None = None,
    out_dir: str | Path | None = None,
    notebooks_dir: Path | None = None,
    allow_shrink: bool = False,
    shrink_share: float | None = None,
    jobs: int | None = None,
) -> list[RunResult]:
    """Run every notebook and named run; continue past failures; rewrite the index.

    Parameters
    ----------
    jobs
        Reports run at once (worker processes); default :func:`default_jobs`. 1 runs them
        one after the other in this process.

    Returns
    -------
    list of RunResult
        One per report, in the order of :func:`~crm_helpers.report.run.discover_runs`.
    """
    reports_root = Path(out_dir).expanduser().resolve() if out_dir else config.reports_dir()
    data = Path(data_dir).expanduser().resolve() if data_dir is not None else config.data_dir()
    check_outside_data(reports_root, data)
    check_writable(reports_root)
    runs = discover_runs(notebooks_dir)
    from crm_helpers.report.prepared import prepare_store

    load_time = os.environ.get(config.LOAD_TIME_ENV) or _now()
    store = prepare_store(data, engine, load_time)
    args = [
        (nb, pf, data_dir, engine, reports_root, allow_shrink, shrink_share, store)
        for nb, pf in runs
    ]
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    with _environ(**{config.LOAD_TIME_ENV: load_time}):  # workers inherit it at spawn
        if jobs == 1 or len(args) <= 1:
            results = [_run_one(*a) for a in args]
        else:
            order = sorted(
                range(len(args)), key=lambda i: -_previous_seconds(reports_root, *runs[i])
            )
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                futures = {i: pool.submit(_run_one, *args[i]) for i in order}
                results = [futures[i].result() for i in range(len(args))]
    from crm_helpers.report.index import write_index

    write_index(reports_root)
    return results

"""Run a notebook as a report: papermill execution, HTML rendering, metrics and run record.

Output layout (``reports/`` by default, ``$CRM_REPORTS_DIR`` or ``--out`` otherwise)::

    reports/<name>[--<run>]/
        <name>.html           the report (no code, plotly interactive, works offline)
        <name>.ipynb          the executed notebook of the last good run
        <name>.failed.ipynb   the executed notebook of the last failed run (with the error)
        metrics.json          what the notebook recorded (crm_helpers.report.metrics)
        run.json              status, parameters, timestamps, duration, provenance
        run.log               what the kernel and papermill said, kept out of the terminal
                              (only when they said something)
        history/<UTC time>.json  each good run's metrics.json, the last 52
                              (:mod:`crm_helpers.report.history`)

A failed or interrupted run never replaces the last good HTML or metrics: every file is
written to a temporary path of its own (pid and a random token in the name) in the same folder
and moved into place with :func:`os.replace` only when the whole run succeeded.

Hardened runs: the run name is one safe folder name (``--name ../x`` is refused); the
reports folder may not be, contain or lie inside the data folder (paths resolved, symlinks
followed), so nothing is ever written in the data folder; one run per report folder at a time
(an exclusive lock, :mod:`crm_helpers.report.lock`: a second run waits, or is refused with
``wait=False``), so a published report's HTML and ``metrics.json`` always come from the same
run. All of these are refusals (:class:`RunRefused`) before a kernel starts.

What happens before a kernel starts (the notebook, its parameters, the refusals) is in
:mod:`crm_helpers.report.notebook`, the kernel in :mod:`crm_helpers.report.kernel`; their
names are importable from here too.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from crm_helpers import config
from crm_helpers.report import guard, provenance
from crm_helpers.report import metrics as _metrics
from crm_helpers.report import params as _params
from crm_helpers.report.kernel import (  # noqa: F401 - re-exported
    _same_interpreter,
    ensure_kernel,
    quiet_kernel,
)
from crm_helpers.report.lock import ReportBusy, report_lock
from crm_helpers.report.notebook import (  # re-exported: run.py held them before the split
    PARAMETERS_TAG,
    RUN_SEPARATOR,
    OutputInsideData,
    OutputNotWritable,
    ParametersError,
    ParamsFile,
    RunRefused,
    check_outside_data,
    check_run_name,
    check_value_sizes,
    check_writable,
    coerce_value,
    parameter_types,
    parameters_cell,
    read_params_file,
    resolve_notebook,
)

__all__ = [
    "PARAMETERS_TAG",
    "RUN_SEPARATOR",
    "OutputInsideData",
    "OutputNotWritable",
    "ParametersError",
    "ParamsFile",
    "RunFailed",
    "RunRefused",
    "ReportBusy",
    "RunResult",
    "check_writable",
    "coerce_value",
    "discover_runs",
    "ensure_kernel",
    "parameter_types",
    "parameters_cell",
    "read_params_file",
    "report_dir_name",
    "resolve_notebook",
    "run_notebook",
]


class RunFailed(RuntimeError):
    """A report run failed; ``result`` holds the run record."""

    def __init__(self, result: RunResult):
        self.result = result
        super().__init__(result.error or "run failed")


@dataclass
class RunResult:
    """The record of one run (also written as ``run.json``)."""

    name: str
    notebook: str
    run: str | None
    status: str
    parameters: dict[str, Any]
    started_at: str
    finished_at: str
    duration_s: float
    out_dir: str
    html: str | None = None
    executed: str | None = None
    metrics: str | None = None
    n_figures: int | None = None
    error: str | None = None
    last_success: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    log: str | None = None  # run.log, when the kernel or papermill said something
    #: What was asked for, as passed (``crm rerun`` reads it): ``notebook`` (its name in
    #: notebooks/), ``run``, ``parameters`` (only those given: params file, ``-p``,
    #: ``--data``/``--engine``; the full set is ``parameters`` above) and ``schema_file``.
    request: dict[str, Any] = field(default_factory=dict)
    #: The prepared event store the run used (:mod:`crm_helpers.report.prepared`): its
    #: ``dir``, ``manifest_sha256``, ``status`` (``fresh``/``built``/``failed``); None when
    #: it does not apply (Spark, a warehouse).
    store: dict[str, Any] | None = None
    #: Which path each analysis computed on in the kernel: ``{"funnel": ["kernel"]}``.
    computed_on: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        prov = self.provenance or {}
        out["fingerprint"] = (prov.get("data") or {}).get("fingerprint")
        out["versions"] = prov.get("versions")
        out["lock"] = prov.get("lock")  # crm_helpers.envlock.info(): the lock's sha256
        out["git"] = prov.get("git")
        return out


# --- running ------------------------------------------------------------------------------


@contextlib.contextmanager
def _environ(**values: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _token() -> str:
    """A name part no other run uses: the pid and a random suffix."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{_token()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _error_text(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        if exc.ename in ("EmptyExtractError", "ShrunkExtractError"):  # the data, not the code
            return f"{exc.ename}: {exc.evalue}"
        return f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    return f"{type(exc).__name__}: {exc}"


def report_dir_name(name: str, run: str | None) -> str:
    """``<name>`` or ``<name>--<run>`` for a named run (a safe run name, see
    :func:`~crm_helpers.report.notebook.check_run_name`; else :class:`ParametersError`)."""
    return f"{name}{RUN_SEPARATOR}{check_run_name(run)}" if run else name


def run_notebook(
    notebook: str | Path,
    *,
    parameters: Mapping[str, Any] | None = None,
    cli_parameters: Mapping[str, str] | None = None,
    params_file: str | Path | None = None,
    data_dir: str | Path | None = None,
    engine: str | None = None,
    out_dir: str | Path | None = None,
    run_name: str | None = None,
    kernel_name: str | None = None,
    timeout_s: int | None = 1800,
    update_index: bool = True,
    allow_shrink: bool = False,
    shrink_share: float | None = None,
    schema_file: str | Path | None = None,
    wait: bool = True,
    store: dict[str, Any] | None = None,
    prepare: bool = True,
) -> RunResult:
    """Execute a notebook with parameters and publish its report (see the module docstring).

    Parameters
    ----------
    notebook
        A notebook name in ``notebooks/`` or a path.
    parameters
        Parameter values (typed), applied after the params file.
    cli_parameters
        Parameter values as strings (``-p name value``), converted to the default's type.
    params_file
        A YAML file of parameters; it names the run (``<name>--<run>`` folder).
    data_dir, engine
        Passed as the ``data_dir`` / ``engine`` parameters (and ``$CRM_DATA_DIR``).
    out_dir
        The reports folder (default :func:`crm_helpers.config.reports_dir`).
    run_name
        Name of the run folder suffix (overrides the params file's).
    kernel_name
        Jupyter kernel (default: one running this interpreter, see :func:`ensure_kernel`).
    update_index
        Rewrite ``index.html`` of the reports folder afterwards.
    allow_shrink, shrink_share
        The shrink guard (:mod:`crm_helpers.report.guard`): a table under ``shrink_share``
        (default ``$CRM_SHRINK_SHARE`` or 0.10) of its rows in the previous good run fails
        the run, unless ``allow_shrink``.
    schema_file
        A ``schema.yaml`` mapping warehouse table/column names onto the contract (passed to
        the notebook as ``$CRM_SCHEMA``; files use ``<data_dir>/schema.yaml``).
    wait
        When another run of the same report folder is in progress: wait for it (a line on
        stderr says so), or refuse at once (:class:`ReportBusy`).
    store, prepare
        The prepared event store: ``store`` is the record of one already prepared (``crm
        run-all`` prepares it once for all reports); else, with ``prepare``, it is made
        fresh here before the kernel starts (:func:`crm_helpers.report.prepared.prepare_store`).

    Returns
    -------
    RunResult
        ``status`` is ``"ok"`` or ``"failed"`` (failures do not raise; see ``error``).

    Raises
    ------
    RunRefused, FileNotFoundError
        Problems found before anything is executed: a parameter of the wrong type or out
        of range (:class:`ParametersError`, see :mod:`crm_helpers.report.params`), a
        malformed or too large params file, an unsafe run name, a reports folder that cannot
        be written (:class:`OutputNotWritable`) or touches the data folder
        (:class:`OutputInsideData`), another run of the report in progress with
        ``wait=False`` (:class:`ReportBusy`).
    """
    nb_path = resolve_notebook(notebook)
    name = nb_path.stem
    nb = nbformat.read(str(nb_path), as_version=4)
    _, defaults = parameters_cell(nb)
    types = parameter_types(nb)

    values: dict[str, Any] = {}
    if params_file is not None:
        pf = read_params_file(params_file)
        if pf.notebook and pf.notebook != name:
            raise ParametersError(f"{pf.path} is for notebook {pf.notebook!r}, not {name!r}")
        values.update(pf.parameters)
        run_name = run_name or pf.run
    values.update(parameters or {})
    for key, raw in (cli_parameters or {}).items():
        if key not in defaults:
            raise ParametersError(f"unknown parameter {key!r}; {name} takes {sorted(defaults)}")
        values[key] = coerce_value(raw, defaults[key], types.get(key, ()), key)
    check_value_sizes(values)
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ParametersError(f"unknown parameter(s) {unknown}; {name} takes {sorted(defaults)}")
    try:  # types and ranges, before any kernel starts
        values = _params.check_parameters(name, values, defaults, types)
    except ValueError as exc:
        raise ParametersError(str(exc)) from None
    env_data = None
    if data_dir is not None:
        env_data = str(Path(data_dir).expanduser().resolve())
        values["data_dir"] = env_data
    elif values.get("data_dir"):
        env_data = str(Path(values["data_dir"]).expanduser().resolve())
    if engine is not None:
        values["engine"] = engine
    effective = {**defaults, **values}
    if effective.get("data_dir") and "://" in str(effective.get("engine") or ""):
        from crm_helpers.data.warehouse import SourceConflict, source_of

        try:  # refuse before running: the notebook would stop at load() with the same message
            source_of(effective["data_dir"], str(effective["engine"]))
        except SourceConflict as exc:
            raise ParametersError(str(exc)) from None

    reports_root = Path(out_dir).expanduser().resolve() if out_dir else config.reports_dir()
    folder = reports_root / report_dir_name(name, run_name)
    data_for_check = env_data if env_data is not None else config.data_dir()
    for out in (reports_root, folder):  # before anything is created: symlinks are followed
        check_outside_data(out, data_for_check)
    if effective.get("export_dir"):  # the notebook would refuse it only after the analysis
        export = Path(str(effective["export_dir"])).expanduser()
        export = export if export.is_absolute() else nb_path.parent / export  # the kernel's cwd
        check_outside_data(export, data_for_check, "export_dir", "-p export_dir")
    check_writable(folder)
    try:
        share = guard.shrink_share(shrink_share)
    except ValueError as exc:
        raise ParametersError(str(exc)) from None
    with report_lock(folder, wait=wait, on_wait=_say):
        result = _execute(
            nb_path,
            folder,
            values=values,
            effective=effective,
            run_name=run_name,
            env_data=env_data,
            kernel_name=kernel_name,
            timeout_s=timeout_s,
            allow_shrink=allow_shrink,
            share=share,
            schema_file=schema_file,
            store=store,
            prepare=prepare,
        )
        if update_index:
            from crm_helpers.report.index import write_index

            write_index(reports_root)
    return result


def _say(message: str) -> None:
    print(f"crm run: {message}", file=sys.stderr, flush=True)


def _execute(
    nb_path: Path,
    folder: Path,
    *,
    values: dict[str, Any],
    effective: dict[str, Any],
    run_name: str | None,
    env_data: str | None,
    kernel_name: str | None,
    timeout_s: int | None,
    allow_shrink: bool,
    share: float,
    schema_file: str | Path | None,
    store: dict[str, Any] | None = None,
    prepare: bool = True,
) -> RunResult:
    """Execute and publish, holding the report folder's lock (see :func:`run_notebook`).

    Temporary files have names of their own (pid and a random token), so nothing of a run
    is ever read or removed by another; they are removed also when the run is interrupted.
    """
    import papermill as pm

    name = nb_path.stem
    html_path = folder / f"{name}.html"
    ipynb_path = folder / f"{name}.ipynb"
    failed_path = folder / f"{name}.failed.ipynb"
    metrics_path = folder / "metrics.json"
    run_path = folder / "run.json"
    log_path = folder / "run.log"
    token = _token()
    tmp_ipynb = folder / f".{name}.running.{token}.ipynb"
    tmp_metrics = folder / f".metrics.running.{token}.json"
    tmp_log = folder / f".run.running.{token}.log"

    last_success = None
    if run_path.exists():
        with contextlib.suppress(ValueError, OSError):
            prev = json.loads(run_path.read_text())
            last_success = (
                prev.get("finished_at") if prev.get("status") == "ok" else prev.get("last_success")
            )

    kernel = kernel_name or ensure_kernel()
    started, t0 = _now(), time.perf_counter()
    error: str | None = None
    n_figures: int | None = None
    html: str | None = None
    load_time = os.environ.get(config.LOAD_TIME_ENV) or started  # a rerun sets the recorded one
    env = {
        "CRM_METRICS_PATH": str(tmp_metrics),
        "CRM_DATA_DIR": env_data,
        config.LOAD_TIME_ENV: load_time,
    }
    env[guard.ENV_VAR] = (
        None if allow_shrink else guard.previous_rows_env(metrics_path, share, last_success)
    )
    if env_data is None:
        env.pop("CRM_DATA_DIR")
    if schema_file is not None:  # the warehouse tables' mapping (crm_helpers.data.warehouse)
        env["CRM_SCHEMA"] = str(Path(schema_file).expanduser().resolve())
    run_data = str(Path(env_data or config.data_dir()).resolve())
    if store is not None and store.get("data_dir") not in (None, run_data):
        store, prepare = None, True  # a named run on other data than run-all's
    if effective.get("engine") not in (None, "", "duckdb"):
        store = None  # Spark or a warehouse: no store (the Ibis path)
    if store is None and prepare:  # before the kernel: it finds the store fresh
        from crm_helpers.report.prepared import prepare_store

        store = prepare_store(run_data, effective.get("engine"), load_time)
    from crm_helpers.store import STORE_ENV

    env[STORE_ENV] = (store or {}).get("dir")
    try:
        try:
            with _environ(**env), quiet_kernel(tmp_log, timeout_s) as quiet:
                pm.execute_notebook(
                    str(nb_path),
                    str(tmp_ipynb),
                    parameters=values,
                    kernel_name=kernel,
                    cwd=str(nb_path.parent),
                    progress_bar=False,
                    log_output=False,
                    request_save_on_cell_execute=False,
                    **quiet,
                )
            from crm_helpers.report.prepared import computed_on_text
            from crm_helpers.report.render import render_html

            title = str(effective.get("title") or name.replace("_", " ").capitalize())
            footer = computed_on_text(_paths_of(_read_json(tmp_metrics)), _store_after(store))
            html, n_figures = render_html(tmp_ipynb, title=title, computed_on=footer)
        except Exception as exc:  # noqa: BLE001 - any failure of the notebook is reported
            error = _error_text(exc)
        duration = round(time.perf_counter() - t0, 3)

        recorded = _read_json(tmp_metrics)
        store = _store_after(store)
        prov = recorded.get("provenance") or provenance.collect(
            effective, None, effective.get("title")
        )

        result = RunResult(
            name=name,
            notebook=str(nb_path),
            run=run_name,
            status="failed" if error else "ok",
            parameters=_metrics.to_jsonable(effective),
            started_at=started,
            finished_at=_now(),
            duration_s=duration,
            out_dir=str(folder),
            n_figures=n_figures,
            error=error,
            last_success=last_success,
            provenance=prov,
            store=store,
            computed_on=_paths_of(recorded),
            request={
                "notebook": name,
                "run": run_name,
                "parameters": _metrics.to_jsonable(values),
                "schema_file": str(Path(schema_file).expanduser().resolve())
                if schema_file is not None
                else None,
                "load_time": load_time,  # "now" of the data's validation ($CRM_LOAD_TIME)
            },
        )
        if error is None:
            recorded.setdefault("provenance", prov)
            _write_atomic(metrics_path, json.dumps(recorded, indent=2, sort_keys=True))
            _write_atomic(html_path, html or "")
            os.replace(tmp_ipynb, ipynb_path)
            failed_path.unlink(missing_ok=True)
            result.last_success = result.finished_at
            _record_history(folder, metrics_path, result.finished_at)
            result.html, result.executed, result.metrics = (
                str(html_path),
                str(ipynb_path),
                str(metrics_path),
            )
        else:
            if tmp_ipynb.exists():
                os.replace(tmp_ipynb, failed_path)
                result.executed = str(failed_path)
            result.html = str(html_path) if html_path.exists() else None
            result.metrics = str(metrics_path) if metrics_path.exists() else None
        if tmp_log.exists() and tmp_log.stat().st_size:  # run.log: this run's, if any
            os.replace(tmp_log, log_path)
            result.log = str(log_path)
        else:
            log_path.unlink(missing_ok=True)
    finally:  # also on Ctrl-C: no temporary file is left behind, the last run's log kept
        for tmp in (tmp_metrics, tmp_ipynb, tmp_log):
            tmp.unlink(missing_ok=True)
    _write_atomic(run_path, json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str))
    return result


def _store_after(store: dict[str, Any] | None) -> dict[str, Any] | None:
    """The store record, with ``manifest_sha256_after`` when the store changed during the
    run (a kernel rebuilt it: its validation's key differed from the parent's)."""
    if not store or not store.get("dir") or not store.get("manifest_sha256"):
        return store
    from crm_helpers.store.manifest import manifest_sha256

    try:
        after = manifest_sha256(store["dir"])
    except OSError:
        after = None
    return store if after == store["manifest_sha256"] else {**store, "manifest_sha256_after": after}


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when it is missing or unreadable."""
    with contextlib.suppress(ValueError, OSError):
        value = json.loads(path.read_text())
        return value if isinstance(value, dict) else {}
    return {}


def _paths_of(recorded: dict[str, Any]) -> dict[str, list[str]]:
    """The kernel's ``paths_used()``, as ``metrics.json`` keeps it (``provenance.paths``)."""
    paths = (recorded.get("provenance") or {}).get("paths")
    return dict(paths) if isinstance(paths, dict) else {}


def _record_history(folder: Path, metrics_path: Path, finished_at: str) -> None:
    """A good run's ``metrics.json`` into ``history/`` (:mod:`crm_helpers.report.history`);
    the report is published already, so a failure to copy is said, not raised."""
    from crm_helpers.report import history

    try:
        history.record(folder, metrics_path, finished_at)
    except OSError as exc:
        _say(f"the run's metrics were not added to {folder / history.HISTORY_DIR}: {exc}")


def discover_runs(notebooks_dir: Path | None = None) -> list[tuple[Path, Path | None]]:
    """Every notebook (default parameters) and every named run in ``params/*.yaml``.

    A params file is a named run when its name is ``<notebook>--<run>.yaml`` or it declares
    ``notebook:``. Returns ``(notebook path, params file or None)`` pairs in a stable order.
    """
    notebooks_dir = notebooks_dir or config.NOTEBOOKS_DIR
    runs: list[tuple[Path, Path | None]] = [
        (p, None) for p in sorted(notebooks_dir.glob("*.ipynb"))
    ]
    for pf_path in sorted((notebooks_dir / "params").glob("*.yaml")):
        try:
            nb_name = read_params_file(pf_path).notebook
        except ParametersError:  # a malformed file: its run is refused and shown as failed
            nb_name = (
                pf_path.stem.split(RUN_SEPARATOR, 1)[0] if RUN_SEPARATOR in pf_path.stem else None
            )
        if nb_name is None:
            continue
        nb = notebooks_dir / f"{nb_name}.ipynb"
        if nb.is_file():
            runs.append((nb, pf_path))
    return runs


def _run_name_of(pf: Path | None) -> str | None:
    """The run name of a params file, also when the file cannot be read."""
    if pf is None:
        return None
    try:
        return read_params_file(pf).run
    except ParametersError:
        return pf.stem.split(RUN_SEPARATOR, 1)[1] if RUN_SEPARATOR in pf.stem else pf.stem

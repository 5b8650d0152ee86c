"""Run a notebook as a report: papermill execution, HTML rendering, metrics and run record.

Output layout (``reports/`` by default, ``$CRM_REPORTS_DIR`` or ``--out`` otherwise)::

    reports/<name>[--<run>]/
        <name>.html           the report (no code, plotly interactive, works offline)
        <name>.ipynb          the executed notebook of the last good run
        <name>.failed.ipynb   the executed notebook of the last failed run (with the error)
        metrics.json          what the notebook recorded (crm_helpers.report.metrics)
        run.json              status, parameters, timestamps, duration, provenance

A failed run never replaces the last good HTML or metrics: every file is written to a
temporary path in the same folder and moved into place with :func:`os.replace` only when
the whole run succeeded.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

from crm_helpers import config
from crm_helpers.report import guard, provenance
from crm_helpers.report import metrics as _metrics
from crm_helpers.report import params as _params

PARAMETERS_TAG = "parameters"
RUN_SEPARATOR = "--"


class RunRefused(ValueError):
    """A run refused before any kernel starts (``crm run`` exits with status 2)."""


class ParametersError(RunRefused):
    """The notebook's parameters cell, or the parameters given, are not acceptable."""


class OutputNotWritable(RunRefused):
    """The reports folder cannot be created or written."""


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

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        prov = self.provenance or {}
        out["fingerprint"] = (prov.get("data") or {}).get("fingerprint")
        out["versions"] = prov.get("versions")
        out["git"] = prov.get("git")
        return out


# --- notebooks and parameters ----------------------------------------------------------


def resolve_notebook(notebook: str | Path, notebooks_dir: Path | None = None) -> Path:
    """A notebook name (``data_overview``) or path -> the ``.ipynb`` path (must exist)."""
    notebooks_dir = notebooks_dir or config.NOTEBOOKS_DIR
    candidates = [Path(notebook)]
    if Path(notebook).suffix != ".ipynb":
        candidates.append(Path(f"{notebook}.ipynb"))
    candidates += [notebooks_dir / c.name for c in list(candidates)]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    known = sorted(p.stem for p in notebooks_dir.glob("*.ipynb"))
    raise FileNotFoundError(f"no notebook {notebook!r}: give a path or one of {known}")


def parameters_cell(nb: nbformat.NotebookNode) -> tuple[int, dict[str, Any]]:
    """The index and default values of the cell tagged ``parameters``.

    The cell may hold only assignments of literals to plain names (``x: int = 3``,
    ``name = "a"``, lists/dicts/tuples of literals), comments and a docstring; anything
    else would run code papermill cannot override, so it is refused.

    Raises
    ------
    ParametersError
        No parameters cell, a syntax error, or a statement that is not a literal assignment.
    """
    for i, cell in enumerate(nb.cells):  # noqa: B007 - i is used after the loop
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            break
    else:
        raise ParametersError("the notebook has no code cell tagged 'parameters'")
    source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParametersError(f"the parameters cell is not valid Python: {exc}") from exc
    defaults: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring / bare string
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            target, value = node.target.id, node.value
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            target, value = node.targets[0].id, node.value
        else:
            raise ParametersError(
                f"parameters cell line {node.lineno}: {ast.unparse(node)!r} is not a literal "
                "assignment; keep only `name: type = <literal>` lines there and compute "
                "derived values in a later cell."
            )
        try:
            defaults[target] = ast.literal_eval(value)
        except ValueError as exc:
            raise ParametersError(
                f"parameters cell line {node.lineno}: the value of {target!r} "
                f"({ast.unparse(value)!r}) is not a literal; compute it in a later cell."
            ) from exc
    return i, defaults


def parameter_types(nb: nbformat.NotebookNode) -> dict[str, tuple[str, ...]]:
    """The annotated types of the parameters cell (see :func:`params.annotations`)."""
    i, _ = parameters_cell(nb)
    source = nb.cells[i].source
    return _params.annotations(source if isinstance(source, str) else "".join(source))


def coerce_value(raw: str, default: Any, types: tuple[str, ...] = (), name: str = "value") -> Any:
    """A command-line string as the parameter's type (its annotation, else its default's).

    Text parameters take the string as it is; others read it as YAML (``3``, ``2.5``,
    ``true``, ``[a, b]``, ``{k: v}``) and check the type (:func:`params.check_type`).

    Raises
    ------
    ParametersError
        The value does not fit the type; the message names the parameter, the expected
        type and the value given.
    """
    types = types or _params.default_type(default)
    if "str" in types or (not types and isinstance(default, str)):
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw  # not YAML: the type check names the value as given
    try:
        return _params.check_type(name, value, types)
    except ValueError as exc:
        raise ParametersError(str(exc)) from None


@dataclass(frozen=True)
class ParamsFile:
    """A ``notebooks/params/*.yaml`` file: which notebook, which named run, which values."""

    path: Path
    notebook: str | None
    run: str
    parameters: dict[str, Any]


def read_params_file(path: str | Path) -> ParamsFile:
    """Read a parameters YAML file.

    Either flat (``freq: day``) or with keys ``notebook``, ``name`` and ``parameters``.
    The run name is ``name``, else the part after ``--`` in the file name
    (``data_overview--daily.yaml`` -> ``daily``), else the file stem.
    """
    path = Path(path)
    if not path.is_file() and (config.NOTEBOOKS_DIR / path).is_file():
        path = config.NOTEBOOKS_DIR / path
    if not path.is_file():
        raise ParametersError(f"{path}: no such parameters file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParametersError(f"{path}: {_params.yaml_problem(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParametersError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(raw, dict):
        raise ParametersError(f"{path}: expected a mapping of parameter names to values")
    notebook = raw.pop("notebook", None)
    name = raw.pop("name", None)
    params = raw.pop("parameters", None)
    if params is None:
        params = raw
    elif raw:
        raise ParametersError(f"{path}: unknown key(s) {sorted(raw)} next to 'parameters'")
    stem = path.stem
    if RUN_SEPARATOR in stem:
        nb_part, run_part = stem.split(RUN_SEPARATOR, 1)
        notebook = notebook or nb_part
        name = name or run_part
    return ParamsFile(path=path, notebook=notebook, run=str(name or stem), parameters=params)


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check a file can be written in it.

    Raises
    ------
    OutputNotWritable
        Naming the folder and why (read-only, not a folder, no permission).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".crm-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise OutputNotWritable(
            f"cannot write the report to {folder}: {why}; pass --out with a writable folder"
        ) from None


# --- kernel ------------------------------------------------------------------------------


def _same_interpreter(argv0: str) -> bool:
    if argv0 in {
        "python",
        f"python{sys.version_info[0]}",
        "python{}.{}".format(*sys.version_info[:2]),
    }:
        return True  # jupyter_client substitutes sys.executable for these
    return Path(argv0).absolute() == Path(sys.executable).absolute()


def ensure_kernel(name: str = "python3") -> str:
    """A kernel name that runs in this interpreter's environment; installs one if needed.

    Uses ``python3`` when its kernelspec launches this interpreter, else registers the
    venv's own (``python -m ipykernel install --sys-prefix``) and, if a user-level spec
    still shadows it, a dedicated ``crm-workbench`` kernel in the venv prefix.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def _ok(kname: str) -> bool:
        try:
            spec = KernelSpecManager().get_kernel_spec(kname)
        except NoSuchKernel:
            return False
        return bool(spec.argv) and _same_interpreter(spec.argv[0])

    if _ok(name):
        return name
    cmd = [sys.executable, "-m", "ipykernel", "install", "--sys-prefix"]
    subprocess.run(cmd, check=True, capture_output=True)
    if _ok(name):
        return name
    alt = "crm-workbench"
    subprocess.run(cmd + ["--name", alt, "--display-name", "CRM Workbench"], check=True)
    if not _ok(alt):
        raise RuntimeError("could not register a Jupyter kernel for " + sys.executable)
    return alt


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


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _error_text(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        if exc.ename in ("EmptyExtractError", "ShrunkExtractError"):  # the data, not the code
            return f"{exc.ename}: {exc.evalue}"
        return f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    return f"{type(exc).__name__}: {exc}"


def report_dir_name(name: str, run: str | None) -> str:
    """``<name>`` or ``<name>--<run>`` for a named run."""
    return f"{name}{RUN_SEPARATOR}{run}" if run else name


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

    Returns
    -------
    RunResult
        ``status`` is ``"ok"`` or ``"failed"`` (failures do not raise; see ``error``).

    Raises
    ------
    RunRefused, FileNotFoundError
        Problems found before anything is executed: a parameter of the wrong type or out
        of range (:class:`ParametersError`, see :mod:`crm_helpers.report.params`), a
        malformed params file, a reports folder that cannot be written
        (:class:`OutputNotWritable`).
    """
    import papermill as pm

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
        from crm_helpers.warehouse import SourceConflict, source_of

        try:  # refuse before running: the notebook would stop at load() with the same message
            source_of(effective["data_dir"], str(effective["engine"]))
        except SourceConflict as exc:
            raise ParametersError(str(exc)) from None

    reports_root = Path(out_dir).expanduser().resolve() if out_dir else config.reports_dir()
    folder = reports_root / report_dir_name(name, run_name)
    check_writable(folder)
    html_path = folder / f"{name}.html"
    ipynb_path = folder / f"{name}.ipynb"
    failed_path = folder / f"{name}.failed.ipynb"
    metrics_path = folder / "metrics.json"
    run_path = folder / "run.json"
    tmp_ipynb = folder / f".{name}.running.ipynb"
    tmp_metrics = folder / ".metrics.running.json"
    tmp_metrics.unlink(missing_ok=True)

    try:
        share = guard.shrink_share(shrink_share)
    except ValueError as exc:
        raise ParametersError(str(exc)) from None
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
    env = {"CRM_METRICS_PATH": str(tmp_metrics), "CRM_DATA_DIR": env_data}
    env[guard.ENV_VAR] = (
        None if allow_shrink else guard.previous_rows_env(metrics_path, share, last_success)
    )
    if env_data is None:
        env.pop("CRM_DATA_DIR")
    if schema_file is not None:  # the warehouse tables' mapping (crm_helpers.warehouse)
        env["CRM_SCHEMA"] = str(Path(schema_file).expanduser().resolve())
    try:
        with _environ(**env):
            pm.execute_notebook(
                str(nb_path),
                str(tmp_ipynb),
                parameters=values,
                kernel_name=kernel,
                cwd=str(nb_path.parent),
                progress_bar=False,
                log_output=False,
                request_save_on_cell_execute=False,
                execution_timeout=timeout_s,
            )
        from crm_helpers.report.render import render_html

        title = str(effective.get("title") or name.replace("_", " ").capitalize())
        html, n_figures = render_html(tmp_ipynb, title=title)
    except Exception as exc:  # noqa: BLE001 - any failure of the notebook is reported
        error = _error_text(exc)
    duration = round(time.perf_counter() - t0, 3)

    recorded: dict[str, Any] = {}
    if tmp_metrics.exists():
        with contextlib.suppress(ValueError):
            recorded = json.loads(tmp_metrics.read_text())
    prov = recorded.get("provenance") or provenance.collect(effective, None, effective.get("title"))

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
    )
    if error is None:
        recorded.setdefault("provenance", prov)
        _write_atomic(metrics_path, json.dumps(recorded, indent=2, sort_keys=True))
        _write_atomic(html_path, html or "")
        os.replace(tmp_ipynb, ipynb_path)
        failed_path.unlink(missing_ok=True)
        result.last_success = result.finished_at
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
    tmp_metrics.unlink(missing_ok=True)
    _write_atomic(run_path, json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str))
    if update_index:
        from crm_helpers.report.index import write_index

        write_index(reports_root)
    return result


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

"""Re-run a report from its record and compare its ``metrics.json`` with the recorded one.

``crm rerun REPORT_DIR`` answers "where did this number come from?": it reads the report's
``run.json`` (and ``metrics.json``) and runs the same notebook with the same parameters on
the same data, then says whether the new ``metrics.json`` is identical.

What is read from the record (:func:`read_record`):

- the notebook: its name (``request.notebook``, else ``name``), found in this checkout's
  ``notebooks/`` (the recorded path only when the name is not there);
- the parameters: the full set the run used (``parameters``: every parameter, defaults
  included, so a default changed since does not change the rerun); an empty parameter that
  the notebook derived from the data is derived again;
- the data: the folder the run read (``provenance.data.dir``; ``--data`` to read it from
  elsewhere) through the recorded engine, and ``request.schema_file`` when there was one;
- the load time (``request.load_time``, else ``started_at``): what was "in the future" for
  the data's validation (:func:`crm_helpers.config.load_time`) is judged as of then;
- the environment: data fingerprint, lock hash (``lock.sha256`` of ``run.json`` or of its
  provenance, as ``crm run`` records it; absent is *unknown*), git commit and package versions.

Before any kernel starts, :func:`check` compares the record with now. A different data
fingerprint or a different lock hash **refuses** the rerun (:class:`RerunRefused`; the CLI
exits 2) unless ``force``, which runs anyway and says what differs. A different commit, an
uncommitted change, other package versions or an unknown lock hash are **warnings**: the
rerun goes ahead and the lines are shown.

The rerun goes to a fresh folder: ``<REPORT_DIR>/rerun-<UTC time>/`` (or ``out``), in which
the report folder ``<notebook>[--<run>]`` is made as by ``crm run``; the recorded report is
never written (a non-empty ``out`` is refused). An ``export_dir`` the run had is redirected to
``<out>/exports`` so that the rerun never replaces a published audience file.

:func:`compare_metrics` compares the two ``metrics.json``: ``identical`` when their bytes are
equal, else the dotted keys that differ. The redirected export folder is the one difference a
rerun makes on purpose: a string value of the rerun that names a path inside it (a written
audience file) is compared as if it named the same path inside the recorded ``export_dir``;
any other difference in it still counts. Fields that are by nature specific to a run are
listed in :data:`RUN_SPECIFIC` with the reason; they are the only ones left out of the
comparison. (Run times, durations and output paths are in ``run.json``, never in
``metrics.json``.)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_helpers import config, envlock
from crm_helpers.report import provenance
from crm_helpers.report.run import _environ

__all__ = [
    "RUN_SPECIFIC",
    "Difference",
    "Record",
    "RerunRefused",
    "RerunResult",
    "check",
    "compare_metrics",
    "current_lock_hash",
    "read_record",
    "rerun",
]

#: ``metrics.json`` keys (dotted; a key covers everything below it) left out of the
#: comparison, each with the reason. Nothing else is.
RUN_SPECIFIC: dict[str, str] = {
    "provenance.git": "the checkout the rerun ran from; compared before the run (a warning "
    "when it differs from the recorded commit)",
    "provenance.data.dir": "where the data were read (--data may name a copy); whether they "
    "are the same data is the fingerprint's to say, compared before the run",
    "provenance.parameters.data_dir": "the same folder, as the data_dir parameter shows it",
}


class RerunRefused(RuntimeError):
    """The rerun was refused before running: the record is unusable or the data or the
    lock differ from the recorded ones (and ``force`` was not given)."""


@dataclass(frozen=True)
class Difference:
    """One way now differs from the record.

    ``what`` names it (``data fingerprint``, ``lock hash``, ``commit``, ...); ``refuses``
    is True when it stops a rerun without ``force``.
    """

    what: str
    recorded: Any
    now: Any
    refuses: bool

    def line(self) -> str:
        """One line for the terminal: ``data fingerprint differs: recorded X, now Y``."""
        if self.what == "lock hash" and (self.recorded is None or self.now is None):
            return (
                f"lock hash unknown (recorded {self.recorded or 'none'}, now "
                f"{self.now or 'none'}): the environment cannot be compared"
            )
        if self.what == "uncommitted changes":
            return "the checkout has uncommitted changes (the rerun's code is not a commit)"
        return f"{self.what} differs: recorded {self.recorded}, now {self.now}"


@dataclass(frozen=True)
class Record:
    """What a report's ``run.json`` says is needed to run it again (see the module docstring)."""

    report_dir: Path
    notebook: str
    notebook_path: Path | None
    run: str | None
    parameters: dict[str, Any]
    data_dir: str | None
    engine: str
    schema_file: str | None
    fingerprint: str | None
    lock_hash: str | None
    commit: str | None
    versions: dict[str, str]
    load_time: str | None = None


@dataclass(frozen=True)
class RerunResult:
    """A rerun: what differed before it, where it went, and how its metrics compare."""

    record: Record
    differences: tuple[Difference, ...]
    forced: bool
    out_dir: Path
    status: str
    error: str | None
    differing_keys: tuple[str, ...]
    ignored_keys: tuple[str, ...]

    @property
    def identical(self) -> bool:
        """The rerun succeeded and its ``metrics.json`` equals the recorded one."""
        return self.status == "ok" and not self.differing_keys


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RerunRefused(f"{path.parent} has no {path.name}: not a report folder") from None
    except (OSError, ValueError) as exc:
        raise RerunRefused(f"{path} cannot be read: {exc}") from None
    if not isinstance(value, dict):
        raise RerunRefused(f"{path} does not hold a record (a JSON object)")
    return value


def read_record(report_dir: str | Path, data_dir: str | Path | None = None) -> Record:
    """The record of the report in ``report_dir`` (its ``run.json`` and ``metrics.json``).

    Parameters
    ----------
    report_dir
        A report folder (``reports/<notebook>[--<run>]``).
    data_dir
        Read the data from here instead of the recorded folder.

    Raises
    ------
    RerunRefused
        No ``run.json`` or ``metrics.json``, a failed last run (its ``metrics.json`` is
        from an earlier run whose record was replaced), or no notebook name.
    """
    from crm_helpers.report.notebook import resolve_notebook

    folder = Path(report_dir).expanduser().resolve()
    run = _read_json(folder / "run.json")
    metrics = _read_json(folder / "metrics.json")
    if run.get("status") != "ok":
        raise RerunRefused(
            f"{folder}/run.json records a failed run ({run.get('error') or 'no error given'}); "
            "its metrics.json is from an earlier run whose record was replaced, so there is "
            "nothing to compare with: run the report again with crm run first"
        )
    request = run.get("request") or {}
    name = request.get("notebook") or run.get("name")
    if not name:
        raise RerunRefused(f"{folder}/run.json names no notebook")
    try:
        nb_path: Path | None = resolve_notebook(name)
    except FileNotFoundError:
        recorded = Path(str(run.get("notebook") or ""))
        nb_path = recorded if recorded.suffix == ".ipynb" and recorded.is_file() else None
    prov = metrics.get("provenance") or run.get("provenance") or {}
    data = prov.get("data") or {}
    params = dict(run.get("parameters") or prov.get("parameters") or {})
    engine = str(params.get("engine") or data.get("engine") or "duckdb")
    if data_dir is not None:
        source: str | None = str(Path(data_dir).expanduser().resolve())
    elif "://" in engine and not params.get("data_dir"):
        source = None  # tables in a warehouse: the engine URL says where
    else:
        source = data.get("dir") or params.get("data_dir") or None
    fingerprint = (data.get("fingerprint") or run.get("fingerprint") or {}).get("sha256")
    git = run.get("git") or prov.get("git") or {}
    return Record(
        report_dir=folder,
        notebook=str(name),
        notebook_path=nb_path,
        run=request.get("run", run.get("run")),
        parameters=params,
        data_dir=source,
        engine=engine,
        schema_file=request.get("schema_file"),
        fingerprint=fingerprint,
        lock_hash=_recorded_lock_hash(run, prov),
        commit=git.get("commit"),
        versions=dict(run.get("versions") or prov.get("versions") or {}),
        load_time=request.get("load_time") or run.get("started_at"),
    )


def _recorded_lock_hash(run: dict, prov: dict) -> str | None:
    """The lock's sha256 a record names: ``run.json`` ``lock.sha256`` (as ``crm run`` writes
    it, from :func:`crm_helpers.envlock.info`), its provenance's ``lock.sha256``, or a flat
    ``lock_hash``; None when the record has none (made before reports recorded the lock)."""
    for lock in (run.get("lock"), prov.get("lock")):
        if isinstance(lock, dict) and lock.get("sha256"):
            return str(lock["sha256"])
    value = run.get("lock_hash") or prov.get("lock_hash")
    return str(value) if value else None


def current_lock_hash() -> str | None:
    """The lock hash of this installation (:func:`crm_helpers.envlock.info`'s ``sha256`` of
    ``requirements/lock.txt``), or None when it is unknown (no lock file: not a checkout)."""
    info = envlock.info()
    return str(info["sha256"]) if info and info.get("sha256") else None


def current_fingerprint(record: Record) -> str:
    """The data's fingerprint now (``sha256`` of :meth:`CRMData.fingerprint`).

    Files are hashed without validation (the hash covers the files' names, sizes and
    bytes only); tables in a warehouse are loaded as the notebook loads them.

    Raises
    ------
    RerunRefused
        The data cannot be read.
    """
    from crm_helpers import load
    from crm_helpers.data import warehouse

    try:
        on_files = warehouse.source_of(record.data_dir, record.engine) == "files"
        engine = "duckdb" if on_files else record.engine  # files hash the same on any engine
        data = load(
            record.data_dir,
            engine=engine,
            schema=record.schema_file,
            validate=not on_files,
        )
        return str(data.fingerprint()["sha256"])
    except (OSError, ValueError) as exc:  # DataContractError is a ValueError
        where = record.data_dir or record.engine
        raise RerunRefused(f"the data at {where} cannot be read now: {exc}") from None


def check(
    record: Record,
    *,
    fingerprint: str | None,
    lock_hash: str | None,
    git: Mapping[str, Any],
    versions: Mapping[str, str],
) -> list[Difference]:
    """How now differs from the record (the refusals first).

    Parameters
    ----------
    record
        The report's record (:func:`read_record`).
    fingerprint, lock_hash
        The data's fingerprint and the installation's lock hash now (None: unknown).
    git
        ``{"commit", "dirty"}`` of this checkout (:func:`provenance.git_info`).
    versions
        The package versions now (:func:`provenance.versions`).

    Returns
    -------
    list of Difference
        Empty when everything that can be compared is the same.
    """
    out: list[Difference] = []
    if record.fingerprint is None or fingerprint != record.fingerprint:
        out.append(Difference("data fingerprint", record.fingerprint, fingerprint, True))
    if record.lock_hash is None or lock_hash is None:
        out.append(Difference("lock hash", record.lock_hash, lock_hash, False))
    elif record.lock_hash != lock_hash:
        out.append(Difference("lock hash", record.lock_hash, lock_hash, True))
    if record.commit != git.get("commit"):
        out.append(Difference("commit", record.commit, git.get("commit"), False))
    if git.get("dirty"):
        out.append(Difference("uncommitted changes", False, True, False))
    for pkg in sorted(set(record.versions) | set(versions)):
        if record.versions.get(pkg) != versions.get(pkg):
            out.append(
                Difference(f"{pkg} version", record.versions.get(pkg), versions.get(pkg), False)
            )
    return sorted(out, key=lambda d: not d.refuses)


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def _run_specific(key: str) -> bool:
    return any(key == k or key.startswith((f"{k}.", f"{k}[")) for k in RUN_SPECIFIC)


def _moved_back(value: Any, moved: Mapping[str, str]) -> Any:
    """``value`` with a leading redirected folder (a key of ``moved``) put back as recorded."""
    if not isinstance(value, str):
        return value
    for now, was in moved.items():
        if value == now or value.startswith(now.rstrip(os.sep) + os.sep):
            return was + value[len(now) :]
    return value


def compare_metrics(
    recorded: bytes, rerun: bytes, moved: Mapping[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """The keys that differ between two ``metrics.json`` documents.

    Parameters
    ----------
    recorded, rerun
        The two files' bytes.
    moved
        Folders the rerun wrote to instead of the recorded ones (``{rerun folder: recorded
        folder}``, the redirected ``export_dir``): a string value of ``rerun`` naming a path
        in one is compared as the same path in the recorded folder.

    Returns
    -------
    (differing, ignored)
        ``differing``: dotted keys (``metrics.steps[2].users``) whose values differ, are
        missing on one side or change type, outside :data:`RUN_SPECIFIC`; ``ignored``: the
        differing keys inside it. Both empty when the bytes are equal.
    """
    if recorded == rerun:
        return [], []
    a = dict(_leaves(json.loads(recorded)))
    b = {k: _moved_back(v, moved or {}) for k, v in _leaves(json.loads(rerun))}
    keys = [k for k in dict.fromkeys([*a, *b]) if k not in a or k not in b or a[k] != b[k]]
    if not keys and (not moved or _written_differently(recorded, rerun, moved)):
        # same values, other bytes (key order, spacing): not the same file
        keys = ["(the same values written differently)"]
    return [k for k in keys if not _run_specific(k)], [k for k in keys if _run_specific(k)]


def _written_differently(recorded: bytes, rerun: bytes, moved: Mapping[str, str]) -> bool:
    """Whether the bytes differ for a reason other than the moved folders (then they are
    not the same file though their values are): the rerun's bytes with each moved folder
    written back as recorded (JSON-escaped, as in the file) still differ."""
    text = rerun
    for now, was in moved.items():
        text = text.replace(json.dumps(now)[1:-1].encode(), json.dumps(was)[1:-1].encode())
    return text != recorded


def _fresh_out(record: Record, out: str | Path | None) -> Path:
    if out is None:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        target = record.report_dir / f"rerun-{stamp}"
    else:
        target = Path(out).expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RerunRefused(f"{target} exists and is not empty: a rerun goes to a fresh folder")
    if target == record.report_dir or record.report_dir.is_relative_to(target):
        raise RerunRefused(f"{target} holds the recorded report: a rerun never writes over it")
    return target


def rerun(
    report_dir: str | Path,
    *,
    force: bool = False,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    say=None,
) -> RerunResult:
    """Run a report again from its record and compare the metrics (see the module docstring).

    Parameters
    ----------
    report_dir
        The recorded report's folder.
    force
        Run even when the data fingerprint or the lock hash differ (the differences are
        said, through ``say``, and kept in the result).
    out
        The folder for the rerun (fresh or empty); default ``<report_dir>/rerun-<UTC time>``.
    data_dir
        Read the data from here instead of the recorded folder (the fingerprint is still
        compared with the recorded one).
    say
        Called with each line to show (differences, where the rerun goes); default: nothing.

    Returns
    -------
    RerunResult

    Raises
    ------
    RerunRefused
        Before anything is run: see :func:`read_record`, the refusals of :func:`check`
        (without ``force``), a non-empty ``out``.
    crm_helpers.report.run.RunRefused
        The parameters are refused by this checkout's notebook.
    """
    say = say or (lambda _line: None)
    record = read_record(report_dir, data_dir)
    with _environ(**{config.LOAD_TIME_ENV: record.load_time}):  # validate as of the record
        return _rerun(record, force=force, out=out, say=say)


def _rerun(record: Record, *, force: bool, out: str | Path | None, say) -> RerunResult:
    from crm_helpers.report.run import run_notebook

    if record.notebook_path is None:
        raise RerunRefused(
            f"no notebook {record.notebook!r} in this checkout (recorded at commit "
            f"{record.commit or 'unknown'})"
        )
    target = _fresh_out(record, out)
    diffs = check(
        record,
        fingerprint=current_fingerprint(record),
        lock_hash=current_lock_hash(),
        git=provenance.git_info(),
        versions=provenance.versions(),
    )
    refusals = [d for d in diffs if d.refuses]
    if refusals and not force:
        lines = "; ".join(d.line() for d in refusals)
        raise RerunRefused(
            f"{lines}. The rerun would not reproduce {record.report_dir.name}; "
            "--force runs it anyway"
        )
    for d in diffs:
        say(("running anyway (--force): " if d.refuses else "warning: ") + d.line())
    params = dict(record.parameters)
    params.pop("data_dir", None)
    params.pop("engine", None)
    moved: dict[str, str] = {}
    if params.get("export_dir"):
        was = str(params["export_dir"])
        params["export_dir"] = str(target / "exports")
        moved[params["export_dir"]] = was
        say(f"the audience export goes to {params['export_dir']} (recorded: {was})")
    say(f"rerunning {record.notebook} into {target}")
    res = run_notebook(
        record.notebook_path,
        parameters=params,
        data_dir=record.data_dir,
        engine=record.engine,
        out_dir=target,
        run_name=record.run,
        update_index=False,
        allow_shrink=True,  # a fresh folder: there is no previous run to compare with
        schema_file=record.schema_file,
    )
    differing: list[str] = []
    ignored: list[str] = []
    if res.ok:
        differing, ignored = compare_metrics(
            (record.report_dir / "metrics.json").read_bytes(),
            Path(str(res.metrics)).read_bytes(),
            moved,
        )
    return RerunResult(
        record=record,
        differences=tuple(diffs),
        forced=bool(refusals),
        out_dir=Path(res.out_dir),
        status=res.status,
        error=res.error,
        differing_keys=tuple(differing),
        ignored_keys=tuple(ignored),
    )

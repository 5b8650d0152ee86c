"""Find, check, build and swap in the store of a data set; hand its arrays to the kernels.

:func:`ensure_store` returns a fresh store of a loaded data set, building it when it is
missing, stale (the source key changed: see :mod:`crm_helpers.store.manifest`) or corrupt
(manifest missing or garbled, another format version, a file missing, truncated or with
another row count than the manifest). A store is never used without these checks.

*Concurrency.* Each store has a lock file beside it (``<store>.lock``, :func:`fcntl.flock`).
Checking and reading hold it shared; building holds it exclusive. A build writes a complete
store into a temporary directory beside the store (``.<name>.build-<token>``) and swaps it in
with two renames while holding the exclusive lock, so a reader (holding the shared lock)
never sees a half-written store, and two processes that find the store stale build it once:
the second waits for the lock, checks again and finds it fresh. The OS releases a lock when
its process dies; a killed build leaves only its temporary directory, removed by the next
build.

*Where.* :func:`crm_helpers.config.store_dir` of the data directory, or ``$CRM_STORE_DIR``
when ``crm run`` passes the store it prepared to a kernel (used only when that store is of
the same data directory). Never inside the data directory (refused).

:func:`event_arrays` is what the analyses call: the arrays on the embedded engine (DuckDB
over files), ``None`` elsewhere (Spark, PostgreSQL, warehouse tables), where they take the
Ibis path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from crm_helpers import config
from crm_helpers.store.arrays import EventArrays
from crm_helpers.store.build import build_store
from crm_helpers.store.manifest import (
    StoreInvalid,
    check_files,
    manifest_sha256,
    read_manifest,
    source_hash,
    source_key,
)
from crm_helpers.store.read import load_arrays, load_columns

__all__ = [
    "STORE_ENV",
    "Prepared",
    "StoreInsideData",
    "collect_garbage",
    "ensure_store",
    "event_arrays",
    "prepare_data_dir",
    "store_path",
    "supports_store",
]

#: Set by ``crm run`` for the kernel: the store directory it prepared.
STORE_ENV = "CRM_STORE_DIR"


class StoreInsideData(ValueError):
    """The store would be written inside the (read-only) data directory."""


@dataclass(frozen=True)
class Prepared:
    """A fresh store: where, its manifest, and whether this call built it.

    Attributes
    ----------
    path
        The store directory.
    manifest
        Its manifest.
    status
        ``"fresh"`` (reused) or ``"built"``.
    reason
        Why it was built (``"missing"``, or what was stale or corrupt); None when fresh.
    manifest_sha256
        SHA-256 (16 hex) of ``manifest.json``: the store's identity in provenance.
    """

    path: Path
    manifest: dict[str, Any]
    status: str
    reason: str | None
    manifest_sha256: str

    def record(self) -> dict[str, Any]:
        """What ``run.json`` keeps of the store."""
        return {
            "dir": str(self.path),
            "data_dir": self.manifest.get("data_dir"),
            "manifest_sha256": self.manifest_sha256,
            "status": self.status,
            "reason": self.reason,
            "source_hash": self.manifest["source_hash"],
            "n_events": self.manifest["n_events"],
            "build_seconds": self.manifest.get("build_seconds"),
        }


def supports_store(data) -> bool:
    """Whether ``data`` is embedded files on DuckDB (the store's case) with an events table."""
    return (
        getattr(data, "engine", None) == "duckdb"
        and not getattr(data, "location", None)
        and getattr(data, "data_dir", None) is not None
        and "events" in getattr(data, "files", {})
        and "events" in getattr(data, "tables", {})
    )


def store_path(data_dir: str | Path) -> Path:
    """The store of ``data_dir``: ``$CRM_STORE_DIR`` when it names this data set's store
    (its manifest's ``data_dir``), else :func:`crm_helpers.config.store_dir`."""
    resolved = Path(data_dir).expanduser().resolve()
    given = os.environ.get(STORE_ENV)
    if given:
        with contextlib.suppress(StoreInvalid, OSError):
            if read_manifest(given).get("data_dir") == str(resolved):
                return Path(given)
    return config.store_dir(resolved)


def _check_outside(path: Path, data_dir: Path) -> None:
    p, d = path.resolve(), Path(data_dir).resolve()
    if p == d or d in p.parents:
        raise StoreInsideData(
            f"the event store {p} would lie inside the data directory {d}, which is never "
            f"written; set ${config.CACHE_DIR_ENV} to a folder outside it"
        )


@contextlib.contextmanager
def _lock(path: Path, exclusive: bool) -> Iterator[None]:
    lock = path.with_name(f"{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def _stale(path: Path, expected_hash: str) -> tuple[str | None, dict[str, Any] | None]:
    """(None, manifest) when the store at ``path`` is fresh, else (reason, None)."""
    if not path.exists():
        return "missing", None
    try:
        manifest = read_manifest(path)
        if manifest["source_hash"] != expected_hash:
            return "the source data changed", None
        check_files(path, manifest)
    except StoreInvalid as exc:
        return f"corrupt: {exc}", None
    return None, manifest


def _swap_in(built: Path, path: Path) -> None:
    old = path.with_name(f".{path.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    if path.exists():
        os.rename(path, old)
    os.rename(built, path)
    shutil.rmtree(old, ignore_errors=True)


def ensure_store(data, path: str | Path | None = None) -> Prepared:
    """A fresh store of ``data`` (DuckDB over files), built when missing, stale or corrupt.

    Parameters
    ----------
    data
        A :class:`~crm_helpers.data.CRMData` for which :func:`supports_store` holds.
    path
        The store directory (default :func:`store_path` of the data directory).

    Raises
    ------
    ValueError
        ``data`` is not embedded files on DuckDB.
    StoreInsideData
        The store would lie inside the data directory.
    """
    if not supports_store(data):
        raise ValueError("the event store is built only for files read by DuckDB")
    path = Path(path) if path is not None else store_path(data.data_dir)
    _check_outside(path, data.data_dir)
    expected = source_hash(source_key(data))
    with _lock(path, exclusive=False):
        reason, manifest = _stale(path, expected)
        if manifest is not None:
            return Prepared(path, manifest, "fresh", None, manifest_sha256(path))
    with _lock(path, exclusive=True):
        reason, manifest = _stale(path, expected)  # another process may have built it
        if manifest is not None:
            return Prepared(path, manifest, "fresh", None, manifest_sha256(path))
        for leftover in path.parent.glob(f".{path.name}.*"):  # of killed builds
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = path.with_name(f".{path.name}.build-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            manifest = build_store(data, tmp)
            _swap_in(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Prepared(path, manifest, "built", reason, manifest_sha256(path))


#: The arrays last read in this process: ``(store dir, manifest hash)`` -> EventArrays with
#: every column read so far. One entry: a kernel reads one data set.
_LAST: dict[tuple[str, str], EventArrays] = {}


def try_ensure_store(data) -> Prepared | None:
    """:func:`ensure_store`, or None when the engine or the machine cannot build the store.

    A build that fails for want of memory or disk (DuckDB's out-of-memory or I/O errors,
    ``MemoryError``, ``OSError``: e.g. a data set too large for the engine's memory limit) is
    no reason for a report to fail: the analyses then compute on the Ibis path, as they did
    before the store existed, and a ``RuntimeWarning`` (in the run's log) names the cause.
    Other errors (a store inside the data folder, a bug) are raised.
    """
    import duckdb

    try:
        return ensure_store(data)
    except (duckdb.OutOfMemoryException, duckdb.IOException, MemoryError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        warnings.warn(
            f"the prepared event store could not be built ({type(exc).__name__}: {first}); "
            "computing on the Ibis path",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def _cached(prepared: Prepared, columns: list[str]) -> EventArrays:
    """The arrays of ``prepared`` with ``columns``, read once per store version per process
    (missing columns are read alone and added)."""
    key = (str(prepared.path), prepared.manifest_sha256)
    have = _LAST.get(key)
    if have is None:
        _LAST.clear()
        have = _LAST[key] = load_arrays(prepared.path, columns)
    missing = [c for c in columns if c not in have.columns]
    if missing:
        extra = load_columns(prepared.path, missing)
        have = _LAST[key] = replace(have, columns={**have.columns, **extra})
    return replace(have, columns={c: have.columns[c] for c in columns})


def event_arrays(data, columns: Sequence[str] = ()) -> EventArrays | None:
    """The events of ``data`` as :class:`EventArrays` from its prepared store, or None.

    The store is built on first use and rebuilt when stale (:func:`ensure_store`); reading
    holds the store's shared lock, so no rebuild swaps it underneath. None when ``data`` is
    not embedded files on DuckDB (Spark, PostgreSQL, warehouse tables: the Ibis path), or
    when the store cannot be built for want of memory or disk (:func:`try_ensure_store`).
    ``user``, ``t`` and ``event`` may be read-only views of Arrow memory
    (:mod:`crm_helpers.store.read`): copy before writing in place. The arrays are read once
    per store version in a process and shared by later calls (the columns asked for are
    added as needed): treat every array as read-only.

    Parameters
    ----------
    data
        A loaded :class:`~crm_helpers.data.CRMData`.
    columns
        Property columns of the events to carry along (``KeyError`` for an unknown one).
    """
    if not supports_store(data):
        return None
    for _ in range(3):
        prepared = try_ensure_store(data)
        if prepared is None:  # the store cannot be built here: the Ibis path
            return None
        with _lock(prepared.path, exclusive=False):
            try:
                if manifest_sha256(prepared.path) == prepared.manifest_sha256:
                    return _cached(prepared, list(dict.fromkeys(columns)))
            except (OSError, StoreInvalid):
                pass
    raise RuntimeError(f"the event store {prepared.path} kept changing while being read")


def _quick_fresh(data_dir: Path) -> Prepared | None:
    """The store of ``data_dir`` when its events files and schema mapping are those its
    manifest records and its files check out, without loading the data; else None.

    The parent of a run uses it to skip loading (and validating) the data when nothing
    changed; the validation's part of the key (cleaning rules, column types) is checked by
    the kernel, which has the data loaded and rebuilds the store if that part differs.
    """
    from crm_helpers.data.mapping import _resolve_schema
    from crm_helpers.data.sources import _data_files, find_table_file
    from crm_helpers.store.manifest import _file_entry, _jsonable

    path = store_path(data_dir)
    try:
        manifest = read_manifest(path)
        schema = _resolve_schema(data_dir, None)
        events = find_table_file(data_dir, schema.file_stem("events"))
        if events is None:
            return None
        source = manifest.get("source") or {}
        files = [_file_entry(p, events) for p in _data_files(events)]
        if files != source.get("events_files") or _jsonable(schema.to_dict()) != source.get(
            "schema"
        ):
            return None
        with _lock(path, exclusive=False):
            check_files(path, manifest)
            return Prepared(path, manifest, "fresh", None, manifest_sha256(path))
    except (StoreInvalid, OSError, ValueError):
        return None


def collect_garbage(root: str | Path | None = None) -> list[Path]:
    """Remove the stores whose data directory no longer exists (e.g. of temporary test
    data) and the leftovers of killed builds; skip any store in use. Returns what went."""
    stores = Path(root) if root is not None else config.cache_root() / "stores"
    gone: list[Path] = []
    if not stores.is_dir():
        return gone
    for store in sorted(p for p in stores.iterdir() if p.is_dir() and not p.name.startswith(".")):
        with contextlib.suppress(StoreInvalid, OSError):
            data_dir = read_manifest(store).get("data_dir")
            if not data_dir or Path(data_dir).exists():
                continue
            lock = store.with_name(f"{store.name}.lock")
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # in use: leave it
                shutil.rmtree(store)
                lock.unlink(missing_ok=True)
                gone.append(store)
            finally:
                os.close(fd)
    return gone


def prepare_data_dir(
    data_dir: str | Path | None = None, engine: str | None = None
) -> Prepared | None:
    """Load the files in ``data_dir`` on DuckDB and return their fresh store (built if need be).

    What ``crm prepare`` and ``crm run``/``run-all`` call before any kernel starts. None when
    the store does not apply: another engine (Spark, an Ibis URL) or no events table.
    When the events files and the schema mapping are those the store was built from, the
    data are not loaded at all (the kernel, which loads them, checks the rest of the key).
    Before a build, stores of data directories that no longer exist are removed
    (:func:`collect_garbage`).

    Parameters
    ----------
    data_dir
        The data folder (default :func:`crm_helpers.config.data_dir`).
    engine
        The run's engine; only ``"duckdb"`` (or None) prepares a store.

    Raises
    ------
    crm_helpers.data.DataContractError
        The data cannot be loaded (the run's notebook reports the same error).
    """
    if engine not in (None, "", "duckdb"):
        return None
    from crm_helpers.data import load

    data_dir = Path(data_dir).expanduser().resolve() if data_dir else config.data_dir()
    quick = _quick_fresh(data_dir) if data_dir.is_dir() else None
    if quick is not None:
        return quick
    with contextlib.suppress(OSError):
        collect_garbage()
    data = load(data_dir, engine="duckdb")
    try:
        return ensure_store(data) if supports_store(data) else None
    finally:
        with contextlib.suppress(Exception):
            data.con.disconnect()

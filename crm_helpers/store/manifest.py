"""The store's manifest and the source key that says whether a store is fresh.

A store directory holds ``manifest.json`` beside ``users.parquet`` and
``events/part-NNNNN.parquet``. The manifest records the format version, the source key and
its hash, the row counts, the event names (the code table of ``event``), the property
columns with their types, and every file with its size in bytes and its row count.

*Freshness.* A store is used only when (a) its manifest parses and has this
:data:`FORMAT_VERSION`, (b) its ``source_hash`` equals the hash of the current
:func:`source_key`, and (c) every file the manifest lists exists with the recorded size and
a Parquet footer that reads and gives the recorded row count (:func:`check_files`).
Anything else is stale or corrupt, and the store is rebuilt.

*The source key* (:func:`source_key`) is what the store's rows depend on, and nothing that
needs reading every byte: for each file of the events table its name, size, ``mtime_ns``
and the SHA-256 of its last 64 KiB (a Parquet file's footer: row-group offsets, sizes and
statistics; a CSV file's tail), plus the schema mapping, the events table's column types
after normalisation and validation's cleaning rules for events (e.g. a future-date cutoff,
which excludes rows). ``CRMData.fingerprint()`` is not used: it reads every byte of all five
tables (a full read of the source, seconds at 50M events, in every kernel) and runs a count
query, yet misses the mapping and cleaning the store depends on. A write changes the size or
``mtime_ns``; a same-size rewrite with its mtime restored (``cp -p``, ``rsync -t``) changes
the footer or tail in practice.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "StoreInvalid",
    "check_files",
    "manifest_sha256",
    "read_manifest",
    "source_hash",
    "source_key",
]

#: Bump when the layout on disk changes: a store of another version is rebuilt.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_TAIL = 1 << 16


class StoreInvalid(ValueError):
    """The store on disk is missing, stale or corrupt (the message says which)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _file_entry(path: Path, base: Path) -> dict[str, Any]:
    st = path.stat()
    with path.open("rb") as fh:
        fh.seek(max(0, st.st_size - _TAIL))
        tail = hashlib.sha256(fh.read()).hexdigest()
    name = path.name if path == base else str(path.relative_to(base))
    return {"name": name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "tail": tail}


def source_key(data) -> dict[str, Any]:
    """What the store of ``data`` (a :class:`~crm_helpers.data.CRMData` on files) depends on.

    See the module docstring. Reads only each events file's size, mtime and last 64 KiB.
    """
    from crm_helpers.data.sources import _data_files

    base = Path(data.files["events"])
    files = [_file_entry(p, base) for p in _data_files(base)]
    events = data.tables["events"]
    return {
        "events_files": files,
        "schema": _jsonable(data.schema.to_dict()),
        "columns": {c: str(t) for c, t in events.schema().items()},
        "cleaning": _jsonable(data.quality.cleaning.get("events", {})),
    }


def source_hash(key: dict[str, Any]) -> str:
    """SHA-256 (16 hex) of a :func:`source_key`."""
    text = json.dumps(_jsonable(key), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def manifest_sha256(store: str | Path) -> str:
    """SHA-256 (16 hex) of the store's ``manifest.json`` bytes: the store's identity."""
    return hashlib.sha256((Path(store) / MANIFEST).read_bytes()).hexdigest()[:16]


def read_manifest(store: str | Path) -> dict[str, Any]:
    """The store's manifest; :class:`StoreInvalid` when it is missing, garbled or of another
    format version."""
    path = Path(store) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreInvalid(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise StoreInvalid(f"{path} cannot be read: {exc}") from None
    if not isinstance(manifest, dict):
        raise StoreInvalid(f"{path} is not a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise StoreInvalid(f"{path} has format version {version!r}, expected {FORMAT_VERSION}")
    for key in ("source_hash", "n_events", "n_users", "event_names", "columns", "files"):
        if key not in manifest:
            raise StoreInvalid(f"{path} lacks {key!r}")
    return manifest


def check_files(store: str | Path, manifest: dict[str, Any]) -> None:
    """Raise :class:`StoreInvalid` unless every listed file has its recorded size and a
    readable Parquet footer with its recorded row count, and the counts add up."""
    import pyarrow.parquet as pq

    store = Path(store)
    total = 0
    entries = [*manifest["files"], manifest.get("users_file") or {}]
    for entry in entries:
        try:
            path = store / entry["path"]
            size = path.stat().st_size
        except (KeyError, TypeError, OSError) as exc:
            raise StoreInvalid(f"store file {entry!r} is missing: {exc}") from None
        if size != entry.get("bytes"):
            raise StoreInvalid(f"{path} has {size} bytes, the manifest says {entry.get('bytes')}")
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception as exc:  # noqa: BLE001 - any unreadable footer is corruption
            raise StoreInvalid(f"{path} is not a readable Parquet file: {exc}") from None
        if rows != entry.get("rows"):
            raise StoreInvalid(f"{path} has {rows} rows, the manifest says {entry.get('rows')}")
        if entry is not entries[-1]:
            total += rows
    if total != manifest["n_events"]:
        raise StoreInvalid(f"the event files hold {total} rows, manifest says n_events")
    if manifest["users_file"]["rows"] != manifest["n_users"]:
        raise StoreInvalid("users.parquet does not hold n_users rows")

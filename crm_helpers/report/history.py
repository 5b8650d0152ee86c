"""A dated history of each report's good runs: ``<report folder>/history/<UTC time>.json``.

Semantics
---------
* After a run has published its report (status ``ok``), :func:`record` copies its
  ``metrics.json`` byte for byte to ``history/<YYYYmmddTHHMMSSZ>.json``, named by the run's
  ``finished_at`` in UTC (``-1``, ``-2`` … appended when that name is taken). The copy is
  written to a temporary file of its own and moved into place with :func:`os.replace`, so
  a reader never sees half a file.
* A failed or interrupted run never calls it: the history holds good runs only, and the
  last good report is never touched (:mod:`crm_helpers.report.run`).
* Bounded: after each copy the oldest entries beyond :data:`KEEP` (the last 52 runs, a
  year of weekly runs) are removed.
* The runner holds the report folder's lock (:mod:`crm_helpers.report.lock`) while it
  records, so two runs never write or prune the same history at once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["HISTORY_DIR", "KEEP", "Entry", "entries", "last", "record", "stamp"]

#: The history folder inside a report folder.
HISTORY_DIR = "history"
#: Good runs kept per report.
KEEP = 52

_NAME = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?\.json$")


@dataclass(frozen=True)
class Entry:
    """One good run in the history: when it finished (UTC), its file and its metrics."""

    when: datetime
    path: Path
    metrics: dict[str, Any]


def stamp(when: str | datetime) -> str:
    """``2026-12-07T06:00:05+00:00`` -> ``20261207T060005Z`` (naive times are taken as UTC)."""
    ts = when if isinstance(when, datetime) else datetime.fromisoformat(str(when))
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _key(path: Path) -> tuple[str, int]:
    m = _NAME.match(path.name)
    assert m is not None  # only matching names are listed
    return m.group(1), int(m.group(2) or 0)


def entries(folder: str | Path) -> list[Path]:
    """The history files of report ``folder``, oldest first (other files are ignored)."""
    directory = Path(folder) / HISTORY_DIR
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if _NAME.match(p.name)), key=_key)


def record(
    folder: str | Path, metrics_path: str | Path, when: str | datetime, keep: int = KEEP
) -> Path:
    """Copy ``metrics_path`` into the history of ``folder`` as of ``when``; prune to ``keep``.

    Parameters
    ----------
    folder
        The report folder (``reports/<notebook>[--<run>]``).
    metrics_path
        The ``metrics.json`` the good run has just published.
    when
        The run's ``finished_at`` (ISO 8601) or a datetime.
    keep
        Entries kept (the newest); at least 1.

    Returns
    -------
    Path
        The new history file.
    """
    directory = Path(folder) / HISTORY_DIR
    directory.mkdir(exist_ok=True)
    data = Path(metrics_path).read_bytes()
    base = stamp(when)
    target, n = directory / f"{base}.json", 0
    while target.exists():
        n += 1
        target = directory / f"{base}-{n}.json"
    tmp = directory / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    files = entries(folder)
    for old in files[: max(0, len(files) - max(1, keep))]:
        old.unlink(missing_ok=True)
    return target


def last(folder: str | Path, n: int = 2) -> list[Entry]:
    """The newest ``n`` readable entries of the history of ``folder``, oldest first.

    An unreadable file (not JSON) is skipped, so one damaged entry never hides the others.
    """
    out: list[Entry] = []
    for path in reversed(entries(folder)):
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(metrics, dict):
            continue
        when = datetime.strptime(_key(path)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        out.append(Entry(when=when, path=path, metrics=metrics))
        if len(out) == n:
            break
    return out[::-1]

"""One run per report folder at a time: an exclusive OS lock on ``<folder>/.crm-run.lock``.

:func:`report_lock` takes an exclusive :func:`fcntl.flock` on the lock file of a report
folder for the whole run (reading the previous run, executing, publishing). A second run of
the same report folder (a cron job overlapping a manual run) waits until the first one has
published, then runs on its result (its shrink guard compares with it); with ``wait=False``
it is refused (:class:`ReportBusy`, ``crm run --no-wait`` exits with status 2). The OS
releases the lock when the process ends, also when it is killed, so a crashed run never
leaves a stale lock. The lock file holds the pid and start time of the holder, for the
message of the run that waits.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from crm_helpers.report.notebook import RunRefused

__all__ = ["LOCK_NAME", "ReportBusy", "report_lock"]

LOCK_NAME = ".crm-run.lock"


class ReportBusy(RunRefused):
    """Another run of the same report folder holds its lock (and we were not to wait)."""


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        if text:
            return text
    return "holder unknown"


@contextlib.contextmanager
def report_lock(
    folder: Path, *, wait: bool = True, on_wait: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """Hold the exclusive lock of report ``folder`` (which must exist) for the ``with`` block.

    Parameters
    ----------
    folder
        The report folder (``reports/<notebook>[--<run>]``).
    wait
        When another process holds the lock: wait for it (``True``) or raise
        :class:`ReportBusy` at once.
    on_wait
        Called once with a one-line message before waiting (e.g. print it to stderr).

    Yields
    ------
    Path
        The lock file.
    """
    path = Path(folder) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            msg = f"another run of {folder} is in progress ({_holder(fd)})"
            if not wait:
                raise ReportBusy(f"{msg}; try again when it has finished") from None
            if on_wait is not None:
                on_wait(f"{msg}; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {now}".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock

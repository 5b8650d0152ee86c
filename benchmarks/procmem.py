"""Peak memory of a benchmark worker: its process tree's RSS, polled (one poller for all).

On Linux a child started from a large parent inherits the parent's ``ru_maxrss`` high-water
mark across fork and exec, so ``ru_maxrss`` cannot measure a worker. :func:`run_polled`
starts the worker and samples the RSS of it and all its descendants (Spark's JVM included)
every ``interval_s``; :class:`TreePoller` does the same for a process already running (this
one, for in-process measurements).
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path


def tree_rss(pid: int) -> int:
    """RSS in bytes of process ``pid`` and all its descendants (0 once it has gone)."""
    import psutil

    try:
        p = psutil.Process(pid)
        rss = p.memory_info().rss
        for c in p.children(recursive=True):
            try:
                rss += c.memory_info().rss
            except psutil.Error:
                pass
        return rss
    except psutil.Error:
        return 0


class TreePoller:
    """Sample :func:`tree_rss` of ``pid`` in a thread; ``peak`` is the largest sample (bytes).

    >>> with TreePoller(os.getpid()) as poller:
    ...     work()
    >>> poller.peak
    """

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.pid, self.interval_s, self.peak = pid, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(self.interval_s)

    def __enter__(self) -> TreePoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))


def run_polled(cmd: list[str], timeout: float) -> tuple[int | None, str, str, int]:
    """Run ``cmd``; return ``(returncode, stdout, stderr, peak tree RSS in bytes)``.

    ``returncode`` is None when the command was killed after ``timeout`` seconds.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreePoller(proc.pid) as poller:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return None, out, err, poller.peak
    return proc.returncode, out, err, poller.peak


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all its threads (``getrusage``)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def reset_peak() -> None:
    """Restart this process's resident high-water mark (Linux ``clear_refs``; else no-op)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass

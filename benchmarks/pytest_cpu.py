"""A pytest plugin that records each test's CPU seconds, its own and its children's.

``python -m pytest -p benchmarks.pytest_cpu --cpu-out FILE ...`` writes one JSON line per test
phase (setup, call, teardown): the test id, its xdist group, wall seconds and CPU seconds.
CPU counts this process (user + system), its reaped children (``RUSAGE_CHILDREN``) and every
live descendant read from ``/proc`` (utime + stime + cutime + cstime): the local Spark JVM,
notebook kernels, a PostgreSQL server. The process is made a child subreaper, so daemons that
detach (``pg_ctl``'s postmaster, Spark's standalone master and worker) stay descendants and
are counted too. Linux only; for measurement, not for the normal test run.

With ``--cpu-idle`` a thread samples the process tree every 0.1 s and counts the samples at
which no thread of it is running or runnable (state ``R``): the share of the wall time in
which this worker's tree waits for nothing but time (sleeps, polls, I/O) — what one more
xdist worker could fill. Runnable-but-preempted threads count as busy, so the share holds on
a machine loaded by others. It is written as a last line ``{"idle": share, "samples": n}``.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import threading
import time

import pytest

_TICK = os.sysconf("SC_CLK_TCK")


def _descendants_cpu() -> float:
    me = os.getpid()
    parent: dict[int, int] = {}
    times: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(d)
        parent[pid] = int(f[1])
        times[pid] = sum(int(x) for x in f[11:15]) / _TICK  # utime stime cutime cstime
    total = 0.0
    for pid, t in times.items():
        p, seen = parent.get(pid), 0
        while p and p != me and seen < 64:
            p, seen = parent.get(p), seen + 1
        if p == me:
            total += t
    return total


def cpu_now() -> float:
    """CPU seconds of this process, its reaped children and its live descendants."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime + _descendants_cpu()


def _tree() -> list[int]:
    me, parent = os.getpid(), {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    parent[int(d)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    out = [me]
    for pid in parent:
        p, seen = parent.get(pid), 0
        while p and p != me and seen < 64:
            p, seen = parent.get(p), seen + 1
        if p == me:
            out.append(pid)
    return out


def _busy(skip_tid: int) -> bool:
    for pid in _tree():
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            if int(tid) == skip_tid:
                continue
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] == "R":
                        return True
            except OSError:
                pass
    return False


class _IdleSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples = self.idle = 0
        self.stop = threading.Event()

    def run(self) -> None:
        tid = threading.get_native_id()
        while not self.stop.wait(0.1):
            self.samples += 1
            self.idle += not _busy(tid)


def pytest_addoption(parser):
    parser.addoption("--cpu-out", default=None, help="JSON lines of per-test CPU seconds")
    parser.addoption("--cpu-idle", action="store_true", help="sample the tree's idle share")


def pytest_configure(config):
    out = config.getoption("--cpu-out")
    if not out:
        return
    try:
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:  # noqa: BLE001 - measurement only
        pass
    wid = os.environ.get("PYTEST_XDIST_WORKER")
    config._cpu_out = open(f"{out}.{wid}" if wid else out, "a")  # noqa: SIM115
    if config.getoption("--cpu-idle"):
        config._cpu_idle = _IdleSampler()
        config._cpu_idle.start()


def pytest_unconfigure(config):
    sampler = getattr(config, "_cpu_idle", None)
    if sampler is not None:
        sampler.stop.set()
        share = sampler.idle / max(sampler.samples, 1)
        config._cpu_out.write(json.dumps({"idle": round(share, 3), "samples": sampler.samples}))
        config._cpu_out.write("\n")
        config._cpu_out.flush()


def _record(item, phase, start_cpu, start_wall):
    fh = getattr(item.config, "_cpu_out", None)
    if fh is None:
        return
    group = next((m.args[0] for m in item.iter_markers("xdist_group")), None)
    row = {
        "id": item.nodeid,
        "phase": phase,
        "group": group,
        "wall": round(time.perf_counter() - start_wall, 3),
        "cpu": round(cpu_now() - start_cpu, 3),
    }
    fh.write(json.dumps(row) + "\n")
    fh.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    c, w = cpu_now(), time.perf_counter()
    yield
    _record(item, "setup", c, w)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    c, w = cpu_now(), time.perf_counter()
    yield
    _record(item, "call", c, w)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    c, w = cpu_now(), time.perf_counter()
    yield
    _record(item, "teardown", c, w)

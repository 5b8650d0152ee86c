"""A pytest plugin that records each test's CPU seconds, its own and its children's.

``python -m pytest -p benchmarks.pytest_cpu --cpu-out FILE ...`` writes one JSON line per test
phase (setup, call, teardown): the test id, its xdist group, wall seconds and CPU seconds.
CPU counts this process (user + system), its reaped children (``RUSAGE_CHILDREN``) and every
live descendant read from ``/proc`` (utime + stime + cutime + cstime): the local Spark JVM,
notebook kernels, a PostgreSQL server. The process is made a child subreaper, so daemons that
detach (``pg_ctl``'s postmaster, Spark's standalone master and worker) stay descendants and
are counted too. Linux only; for measurement, not for the normal test run.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
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


def pytest_addoption(parser):
    parser.addoption("--cpu-out", default=None, help="JSON lines of per-test CPU seconds")


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

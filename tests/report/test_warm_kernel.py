"""Warm report kernels (crm_helpers.report.forkserver): forked kernels behave as cold ones.

A probe notebook records what a kernel sees (working folder, ``sys.path``, ``sys.argv``,
parameters, the run's environment, plotly's default renderer, its process group, random
draws); it runs cold (``CRM_WARM_KERNEL=0``) and warm and the records are compared. Then:
what the server refuses starts cold, a server that cannot start or has died leaves the run
to a cold kernel or a new server, a kernel that dies or runs out of time fails the run as a
cold one does, and the kernel's stderr reaches the run's log.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from crm_helpers.report import forkserver
from crm_helpers.report.kernel import quiet_kernel

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and hasattr(os, "pidfd_open")),
    reason="warm kernels need Linux (fork, pidfd_open)",
)

PROBE = """\
import json, os, random, sys, threading
import numpy as np
import plotly.io as pio
info = {
    "cwd": os.getcwd(), "path": sys.path, "argv0": sys.argv[0], "argv_n": len(sys.argv),
    "x": x, "run_env": os.environ.get("CRM_PROBE"), "renderer": pio.renderers.default,
    "own_group": os.getpgid(0) == os.getpid(), "sid": os.getsid(0) == os.getpid(),
    "random": random.random(), "np_random": float(np.random.random()),
    "sigint": str(__import__("signal").getsignal(2)),
    "stdin_null": os.path.samefile("/proc/self/fd/0", os.devnull),
    "open_fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
    "modules_sklearn": "sklearn" in sys.modules,
}
print("probe-stderr", file=sys.__stderr__, flush=True)
with open(os.environ["CRM_PROBE_OUT"], "w") as fh:
    json.dump(info, fh)
"""


def _notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
            "language_info": {"name": "python"},
        }
    )
    nb.cells = [nbformat.v4.new_code_cell("x = 0", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def _run(tmp: Path, nb: Path, warm: str, monkeypatch, tag: str, **kw) -> dict:
    """Run ``nb`` with ``CRM_WARM_KERNEL=warm``; the probe's record (its log under 'log')."""
    import papermill as pm

    out = tmp / f"probe_{tag}.json"
    log = tmp / f"run_{tag}.log"
    monkeypatch.setenv(forkserver.WARM_ENV, warm)
    monkeypatch.setenv("CRM_PROBE", tag)
    monkeypatch.setenv("CRM_PROBE_OUT", str(out))
    with quiet_kernel(log, **kw) as quiet:
        pm.execute_notebook(
            str(nb),
            str(tmp / f"out_{tag}.ipynb"),
            parameters={"x": tag},
            kernel_name="python3",
            cwd=str(nb.parent),
            progress_bar=False,
            **quiet,
        )
    info = json.loads(out.read_text()) if out.exists() else {}
    info["log"] = log.read_text()
    return info


@pytest.fixture(autouse=True)
def _not_the_first_launch(monkeypatch):
    """This process has launched a kernel before (the first one always starts cold)."""
    monkeypatch.setattr(forkserver, "_first_done", True)


@pytest.fixture
def probe(tmp_path) -> Path:
    return _notebook(tmp_path / "probe.ipynb", PROBE)


def test_a_warm_kernel_sees_what_a_cold_one_sees(tmp_path, probe, monkeypatch):
    before = forkserver.launches()
    cold = _run(tmp_path, probe, "0", monkeypatch, "cold")
    warm1 = _run(tmp_path, probe, "1", monkeypatch, "warm1")
    warm2 = _run(tmp_path, probe, "1", monkeypatch, "warm2")
    after = forkserver.launches()
    assert after["warm"] - before["warm"] == 2  # both warm runs were forked
    same = ("cwd", "path", "argv0", "argv_n", "renderer", "own_group", "sid", "sigint")
    for key in same:
        assert warm1[key] == cold[key], key
    assert warm1["stdin_null"] is True
    # the run's own parameters and environment, not the server's or the previous run's
    assert (cold["x"], warm1["x"], warm2["x"]) == ("cold", "warm1", "warm2")
    assert (cold["run_env"], warm1["run_env"], warm2["run_env"]) == ("cold", "warm1", "warm2")
    # reseeded: two kernels of one server draw different numbers
    assert warm1["random"] != warm2["random"]
    assert warm1["np_random"] != warm2["np_random"]
    # no descriptor of the server leaks into the kernel (a cold kernel's count, +- a few
    # the kernel itself opens lazily)
    assert len(warm1["open_fds"]) <= len(cold["open_fds"]) + 2
    # the kernel's stderr reaches the run's log
    assert "probe-stderr" in warm1["log"] and "probe-stderr" in cold["log"]


def test_what_the_server_refuses_starts_cold(tmp_path, probe, monkeypatch):
    _run(tmp_path, probe, "1", monkeypatch, "first")  # a server is running
    monkeypatch.setenv("PLOTLY_RENDERER", "json")  # read by plotly at import: differs
    before = forkserver.launches()
    info = _run(tmp_path, probe, "1", monkeypatch, "refused")
    after = forkserver.launches()
    assert after["cold"] - before["cold"] == 1 and after["warm"] == before["warm"]
    assert info["renderer"] == "json"  # what the cold kernel's plotly picked from it


def test_a_server_that_cannot_start_leaves_a_cold_kernel(tmp_path, probe, monkeypatch):
    forkserver.stop()

    def broken(*a, **k):
        raise RuntimeError("fork server did not start")

    monkeypatch.setattr(forkserver, "_Server", broken)
    before = forkserver.launches()
    info = _run(tmp_path, probe, "1", monkeypatch, "nostart")
    assert info["x"] == "nostart"
    assert forkserver.launches()["cold"] - before["cold"] == 1


def test_a_dead_server_is_replaced(tmp_path, probe, monkeypatch):
    _run(tmp_path, probe, "1", monkeypatch, "one")
    (server,) = forkserver._servers.values()
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(30)
    before = forkserver.launches()
    info = _run(tmp_path, probe, "1", monkeypatch, "two")
    assert info["x"] == "two"
    assert forkserver.launches()["warm"] - before["warm"] == 1
    (new,) = forkserver._servers.values()
    assert new.proc.pid != server.proc.pid


def test_a_kernel_that_dies_fails_the_run(tmp_path, monkeypatch):
    from papermill.exceptions import PapermillExecutionError

    nb = _notebook(
        tmp_path / "dies.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    )
    with pytest.raises((RuntimeError, PapermillExecutionError)) as err:
        _run(tmp_path, nb, "1", monkeypatch, "dies")
    assert "dead" in str(err.value).lower() or "died" in str(err.value).lower()


def test_a_cell_out_of_time_is_interrupted(tmp_path, monkeypatch):
    """The cell timeout interrupts the forked kernel (SIGINT to its process group)."""
    from papermill.exceptions import PapermillExecutionError

    nb = _notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(120)")
    before = forkserver.launches()
    with pytest.raises((PapermillExecutionError, TimeoutError, RuntimeError)) as err:
        _run(tmp_path, nb, "1", monkeypatch, "slow", cell_timeout_s=3)
    assert forkserver.launches()["warm"] - before["warm"] == 1
    assert "timed out" in str(err.value).lower() or "timeout" in str(err.value).lower()


# --- the server's refusals, one by one (no kernel) ---------------------------------------


def test_refusals(tmp_path, monkeypatch):
    env = {"PYTHONPATH": "/a", "USER": "u"}
    ok = {"env": dict(env), "cwd": str(tmp_path), "argv": []}
    # this test runs in a pytest worker, which may have threads of its own (a Spark session's
    # py4j threads): the other rules are checked as in a one-thread server, the thread rule
    # with a real thread of this process last
    real_count = threading.active_count
    monkeypatch.setattr(forkserver.threading, "active_count", lambda: 1)
    assert forkserver._refusal(ok, env, {}) == ""
    assert "PYTHONPATH" in forkserver._refusal({**ok, "env": {"USER": "u"}}, env, {})
    assert "PYTHONHASHSEED" in forkserver._refusal(
        {**ok, "env": {**env, "PYTHONHASHSEED": "0"}}, env, {}
    )
    (tmp_path / "crm_helpers").mkdir()
    assert "shadows crm_helpers" in forkserver._refusal(ok, env, {})
    (tmp_path / "crm_helpers").rmdir()
    src = tmp_path / "mod.py"
    src.write_text("x = 1\n")
    assert "changed" in forkserver._refusal(ok, env, {str(src): src.stat().st_mtime - 5})
    assert forkserver._refusal(ok, env, {str(src): src.stat().st_mtime}) == ""
    monkeypatch.setattr(forkserver.threading, "active_count", real_count)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert "threads" in forkserver._refusal(ok, env, {})
    finally:
        stop.set()
        t.join()


def test_only_this_interpreters_launcher_is_forked():
    exe = sys.executable
    split = forkserver._split_launcher
    assert split([exe, "-m", "ipykernel_launcher", "-f", "c.json"]) == ([], ["-f", "c.json"])
    assert split(
        [exe, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "c.json", "--A=1"]
    ) == (
        ["-Xfrozen_modules=off"],
        ["-f", "c.json", "--A=1"],
    )
    assert split(["/usr/bin/other-python", "-m", "ipykernel_launcher", "-f", "c.json"]) is None
    assert split([exe, "-m", "other_kernel", "-f", "c.json"]) is None
    assert split([exe, "-c", "print(1)"]) is None


def test_the_first_launch_of_a_process_starts_cold_and_no_server(tmp_path, probe, monkeypatch):
    forkserver.stop()
    monkeypatch.setattr(forkserver, "_first_done", False)
    before = forkserver.launches()
    assert _run(tmp_path, probe, "1", monkeypatch, "first")["x"] == "first"
    assert forkserver.launches()["cold"] - before["cold"] == 1
    assert not forkserver._servers
    assert _run(tmp_path, probe, "1", monkeypatch, "second")["x"] == "second"
    assert forkserver.launches()["warm"] - before["warm"] == 1

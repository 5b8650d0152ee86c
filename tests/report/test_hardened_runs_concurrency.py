"""Hardened runs (#23 rows 3 and 10): overlapping runs of one report, and Ctrl-C.

Real ``crm run`` processes on a 300-user synthetic world. The overlap is forced, not timed:
this test process holds the report folder's lock (:func:`report_lock`) while both runs start,
and each run's line "another run ... is in progress; waiting" is read from its stderr before
the lock is released, so both runs are inside ``crm run`` at once. Ctrl-C is sent once the
kernel has recorded a metric (its own temporary metrics file exists).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from crm_helpers.cli import main
from crm_helpers.report.lock import LOCK_NAME, report_lock

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reports")]

ROOT = Path(__file__).resolve().parents[2]
NAME = "data_overview"


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory) -> Path:
    from crm_helpers.synth import SynthConfig, generate, write_world

    out = tmp_path_factory.mktemp("tiny_world")
    write_world(generate(SynthConfig(n_users=300, seed=3)), out, fmt="parquet", overwrite=True)
    return out


def _crm(*argv: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "crm_helpers.cli", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _published(folder: Path) -> dict:
    """The title each published file says it was made with."""
    html = (folder / f"{NAME}.html").read_text()
    nb = nbformat.read(str(folder / f"{NAME}.ipynb"), as_version=4)
    return {
        "run.json": json.loads((folder / "run.json").read_text())["parameters"]["title"],
        "metrics.json": json.loads((folder / "metrics.json").read_text())["provenance"]["title"],
        "ipynb": nb.metadata["papermill"]["parameters"]["title"],
        "html": "Run one" if "Run one" in html else ("Run two" if "Run two" in html else None),
    }


def test_two_overlapping_runs_of_one_report_run_one_after_the_other(tiny_world, tmp_path):
    out = tmp_path / "R"
    folder = out / NAME
    folder.mkdir(parents=True)
    base = ("run", NAME, "--data", str(tiny_world), "--out", str(out))
    with report_lock(folder):  # an earlier run holds the report folder
        runs = {title: _crm(*base, "-p", "title", title) for title in ("Run one", "Run two")}
        for title, p in runs.items():
            line = p.stderr.readline()  # blocks until the run reached the lock
            assert "is in progress" in line and "waiting for it to finish" in line, line
            assert p.poll() is None, title
        # both runs are now inside `crm run`, before their kernels: a forced overlap
        # --no-wait refuses at once, naming the holder (pid of this process)
        assert main([*base, "--no-wait"]) == 2
    results = {title: p.communicate(timeout=600) for title, p in runs.items()}
    for title, (stdout, stderr) in results.items():
        assert runs[title].returncode == 0, (title, stderr)
        assert stdout.startswith("ok "), stdout
    published = _published(folder)
    assert len(set(published.values())) == 1 and published["html"] in runs, published
    recorded = json.loads((folder / "metrics.json").read_text())
    assert set(recorded) - {"provenance"}, "metrics.json kept only provenance"
    assert recorded["metrics"]["rows.events"] > 0
    # the second run compared its extract with the first one's (shrink guard had rows)
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "ok" and run["last_success"] is not None
    left = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    assert left == [LOCK_NAME], left  # no temporary file of either run is left


def test_no_wait_names_the_run_in_progress(tiny_world, tmp_path, capsys):
    out = tmp_path / "R"
    folder = out / NAME
    folder.mkdir(parents=True)
    with report_lock(folder):
        assert main(["run", NAME, "--data", str(tiny_world), "--out", str(out), "--no-wait"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "crm run: refused: another run of" in err
    assert f"pid {os.getpid()}" in err and "try again when it has finished" in err
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]


def test_ctrl_c_exits_130_with_one_line_and_keeps_the_last_good_report(tiny_world, tmp_path):
    out = tmp_path / "R"
    folder = out / NAME
    base = ("run", NAME, "--data", str(tiny_world), "--out", str(out))
    first = _crm(*base)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    kept = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    second = _crm(*base, "-p", "title", "Interrupted")
    deadline = time.monotonic() + 600
    while not list(folder.glob(".metrics.running.*.json")):  # the kernel is running cells
        assert second.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    second.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 130
    assert stderr == "crm run: interrupted; the last good report is kept\n" and stdout == ""
    now = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert set(now) == set(kept) and f"{NAME}.html" in now and "run.json" in now
    for name in now:  # every file of the last good run byte for byte (and no temporary file)
        assert name == LOCK_NAME or now[name] == kept[name], name

"""A run prints nothing that looks like a failure: kernel and papermill talk go to run.log.

Two sources used to reach the terminal on every ``crm run``: ipykernel's warning that the
kernel runs over TCP without encryption (the kernel now uses IPC sockets, and its own
output goes to the run's log), and papermill's "Unable to parse line" when a parameters
cell comment holds ``=`` (the notebooks' comments no longer do; papermill's warnings go to
the log).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from crm_helpers import config
from crm_helpers.report.notebook import parameters_cell
from crm_helpers.report.params import annotations
from tests.test_validate import good_frames, write_frames

NOISE = ("Unable to parse line", "WARNING", "running over TCP", "Traceback", "port")


@pytest.mark.parametrize("path", sorted(config.NOTEBOOKS_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_papermill_reads_every_parameters_cell_without_a_warning(path, caplog):
    from papermill.translators import papermill_translators

    nb = nbformat.read(path, as_version=4)
    i, defaults = parameters_cell(nb)
    translator = papermill_translators.find_translator("python3", "python")
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = translator.inspect(nb.cells[i])
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    # papermill's own listing (``papermill --help-notebook``) has no ``|`` in its annotation
    # grammar, so a union (``x: float | None = None``, ``x: list | dict = []``) is left out of
    # it silently; crm's reader (report.params.annotations) takes those. Every other one is seen.
    unions = {name for name, types in annotations(nb.cells[i].source).items() if len(types) > 1}
    assert set(defaults) - unions <= {p.name for p in found} <= set(defaults)


def _crm_run(notebook: str | Path, data: Path, out: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("crm")
    env = {**os.environ, "PYTHONPATH": str(config.ROOT)}
    args = [str(exe), "run", str(notebook), "--data", str(data), "--out", str(out)]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_crm_run_stderr_is_quiet_and_the_log_keeps_the_warnings(tmp_path):
    data = write_frames(tmp_path / "data", good_frames())
    # a notebook whose parameters-cell comment holds "=": papermill warns about it
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'data_dir = ""  # a == b\nengine = "duckdb"\n', metadata={"tags": ["parameters"]}
    )
    nb.cells = [params, nbformat.v4.new_code_cell("print('to the notebook')")]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Py"}
    nb.metadata["language_info"] = {"name": "python"}
    nb_path = tmp_path / "nb" / "tiny.ipynb"
    nb_path.parent.mkdir()
    nbformat.write(nb, nb_path)

    res = _crm_run(nb_path, data, tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    log = (tmp_path / "out" / "tiny" / "run.log").read_text()
    assert json.loads((tmp_path / "out" / "tiny" / "run.json").read_text())["log"].endswith(
        "run.log"
    )
    assert "Unable to parse line 1" in log and "running over TCP" not in log
    assert not list(Path(nb_path.parent).glob("kernel-ipc*"))  # no sockets left in cwd

    res = _crm_run("data_overview", data, tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert not [ln for ln in res.stderr.splitlines() if any(n in ln for n in NOISE)], res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith("ok ")
    assert not (tmp_path / "out" / "data_overview" / "run.log").exists()  # nothing was said


def test_quiet_kernel_sends_papermill_warnings_to_the_log_only(tmp_path, capfd):
    from crm_helpers.report.kernel import quiet_kernel

    logger = logging.getLogger("papermill")
    before = (logger.propagate, list(logger.handlers))
    log = tmp_path / "run.log"
    with quiet_kernel(log) as kw, quiet_kernel(tmp_path / "other.log"):
        assert set(kw) == {"kernel_manager_class", "timeout_func", "iopub_timeout"}
        logger.warning("Unable to parse line 3 'x = 1  # a == b'.")
        logger.info("Executing notebook")  # below WARNING: not logged
    assert (logger.propagate, list(logger.handlers)) == before
    assert log.read_text() == "[papermill] WARNING | Unable to parse line 3 'x = 1  # a == b'.\n"
    out, err = capfd.readouterr()
    assert out == err == ""

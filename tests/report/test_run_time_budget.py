"""The run's time budget (``CRM_RUN_TIMEOUT_S``, issue #23 row 4): a run stops when it is spent.

A report stuck on absurd data must not run every cell up to papermill's per-cell limit:
each cell gets what is left of the run's budget (:mod:`crm_helpers.report.kernel`).
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest


@pytest.mark.slow
def test_a_run_stops_when_its_time_budget_is_spent(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('title: str = "sleepy"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import time\ntime.sleep(2)"),
        nbformat.v4.new_code_cell("time.sleep(120)"),
    ]
    path = tmp_path / "sleepy.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setenv("CRM_RUN_TIMEOUT_S", "6")
    from crm_helpers.report.run import run_notebook

    t0 = time.perf_counter()
    res = run_notebook(path, out_dir=tmp_path / "out", update_index=False)
    took = time.perf_counter() - t0
    assert not res.ok and "timed out" in res.error
    assert took < 60
    assert "run time budget (CRM_RUN_TIMEOUT_S=6 s)" in Path(res.log).read_text()


def test_a_bad_time_budget_is_refused(monkeypatch):
    from crm_helpers.report.kernel import run_timeout_s

    for bad in ("soon", "-5", "inf", "nan"):
        monkeypatch.setenv("CRM_RUN_TIMEOUT_S", bad)
        with pytest.raises(ValueError, match="CRM_RUN_TIMEOUT_S"):
            run_timeout_s()
    monkeypatch.setenv("CRM_RUN_TIMEOUT_S", "0")
    assert run_timeout_s() is None
    monkeypatch.delenv("CRM_RUN_TIMEOUT_S")
    assert run_timeout_s() == 3600


def test_each_cell_gets_the_smaller_of_the_budget_left_and_the_per_cell_limit(tmp_path):
    """run_notebook(timeout_s=...) is the per-cell limit; the run budget caps it further."""
    import io

    from crm_helpers.report.kernel import _Deadline

    log = io.StringIO()
    assert _Deadline(None, log, 30)(None) == 30  # no budget: the per-cell limit
    assert _Deadline(None, log, None)(None) is None  # neither: no limit
    assert _Deadline(3600, log, 30)(None) == 30  # plenty of budget: the per-cell limit
    assert _Deadline(10, log, 1800)(None) in (9, 10)  # little budget left: the budget
    assert _Deadline(10, log, None)(None) in (9, 10)


@pytest.mark.slow
def test_run_notebook_timeout_s_limits_a_cell(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('title: str = "sleepy"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import time\ntime.sleep(120)"),
    ]
    path = tmp_path / "sleepy.ipynb"
    nbformat.write(nb, path)
    monkeypatch.delenv("CRM_RUN_TIMEOUT_S", raising=False)
    from crm_helpers.report.run import run_notebook

    t0 = time.perf_counter()
    res = run_notebook(path, out_dir=tmp_path / "out", update_index=False, timeout_s=4)
    assert not res.ok and "timed out" in res.error
    assert time.perf_counter() - t0 < 60

"""The dated history of good runs (``<report>/history/``) and what a scheduled run logs.

Unit tests of :mod:`crm_helpers.report.history` on files written here, then real runs of a
tiny notebook: good runs append, a failed run does not (and keeps the last good report),
and ``crm run-all`` exits 1 naming the failed report and its first error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from crm_helpers import config
from crm_helpers.cli import main
from crm_helpers.report import history
from crm_helpers.report.run import run_notebook


def _metrics(folder: Path, x: int) -> Path:
    path = folder / "metrics.json"
    path.write_text(json.dumps({"metrics": {"x": x}, "summary": [], "tables": {}}))
    return path


def test_record_copies_byte_for_byte_under_the_utc_time(tmp_path):
    src = _metrics(tmp_path, 1)
    out = history.record(tmp_path, src, "2026-12-07T07:00:05+01:00")
    assert out == tmp_path / "history" / "20261207T060005Z.json"
    assert out.read_bytes() == src.read_bytes()
    assert [p.name for p in (tmp_path / "history").iterdir()] == [out.name]  # no temp file


def test_good_runs_append_in_order_also_within_one_second(tmp_path):
    t0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    for i, when in enumerate([t0, t0 + timedelta(days=7), t0 + timedelta(days=7)]):
        history.record(tmp_path, _metrics(tmp_path, i), when)
    names = [p.name for p in history.entries(tmp_path)]
    assert names == ["20260105T060000Z.json", "20260112T060000Z.json", "20260112T060000Z-1.json"]
    got = history.last(tmp_path, 2)
    assert [e.metrics["metrics"]["x"] for e in got] == [1, 2]
    assert got[-1].when == t0 + timedelta(days=7)


def test_the_53rd_run_prunes_the_oldest(tmp_path):
    t0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    for i in range(history.KEEP + 1):
        history.record(tmp_path, _metrics(tmp_path, i), t0 + timedelta(weeks=i))
    files = history.entries(tmp_path)
    assert len(files) == history.KEEP == 52
    xs = [json.loads(p.read_text())["metrics"]["x"] for p in files]
    assert xs == list(range(1, 53))  # run 0, the oldest, is gone; the newest is kept


def test_last_skips_a_damaged_entry_and_ignores_other_files(tmp_path):
    t0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    for i in range(3):
        history.record(tmp_path, _metrics(tmp_path, i), t0 + timedelta(weeks=i))
    history.entries(tmp_path)[1].write_text("{not json")
    (tmp_path / "history" / "notes.txt").write_text("x")
    (tmp_path / "history" / ".20991231T000000Z.json.1-ab.tmp").write_text("{}")
    assert [e.metrics["metrics"]["x"] for e in history.last(tmp_path, 2)] == [0, 2]
    assert len(history.entries(tmp_path)) == 3


# --- real runs of a tiny notebook --------------------------------------------------------


def _tiny_notebook(path: Path, body: str) -> Path:
    cells = [
        nbformat.v4.new_code_cell('data_dir: str = ""\nx: int = 1'),
        nbformat.v4.new_code_cell(body),
    ]
    cells[0].metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))
    return path


GOOD_UNLESS_NEGATIVE = (
    "from crm_helpers.report import metrics\n"
    "if x < 0:\n"
    "    raise ValueError(f'x is negative: {x}')\n"
    "metrics.record('x', x)"
)


@pytest.mark.slow
def test_good_runs_append_and_a_failed_run_does_not(tmp_path):
    nb = _tiny_notebook(tmp_path / "tiny.ipynb", GOOD_UNLESS_NEGATIVE)
    out = tmp_path / "reports"
    folder = out / "tiny"
    for x in (1, 2):
        assert run_notebook(nb, parameters={"x": x}, out_dir=out).ok
    assert [e.metrics["metrics"]["x"] for e in history.last(folder, 5)] == [1, 2]
    good = (folder / "metrics.json").read_bytes()
    assert history.entries(folder)[-1].read_bytes() == good  # the published metrics, copied
    files_before = {p.name: p.read_bytes() for p in history.entries(folder)}

    res = run_notebook(nb, parameters={"x": -1}, out_dir=out)
    assert not res.ok and "x is negative: -1" in res.error
    assert {p.name: p.read_bytes() for p in history.entries(folder)} == files_before
    assert (folder / "metrics.json").read_bytes() == good  # the last good report kept
    assert not list((folder / "history").glob(".*"))  # no temporary file left


@pytest.mark.slow
def test_run_all_exits_1_and_the_log_names_the_report_and_its_first_error(
    tmp_path, monkeypatch, capsys
):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _tiny_notebook(
        nbs / "alpha.ipynb", "from crm_helpers.report import metrics\nmetrics.record('x', x)"
    )
    broken = _tiny_notebook(nbs / "broken.ipynb", "raise KeyError('first_error')")
    nb = nbformat.read(str(broken), as_version=4)  # a later cell that would fail differently
    nb.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('second_error')"))
    nbformat.write(nb, str(broken))
    monkeypatch.setattr(config, "NOTEBOOKS_DIR", nbs)
    out = tmp_path / "reports"

    code = main(["run-all", "--out", str(out), "--jobs", "1"])
    captured = capsys.readouterr()
    log = captured.out + captured.err  # cron: >> crm.log 2>&1
    assert code == 1
    failed = [line for line in log.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1
    assert f"{out / 'broken'}: " in failed[0] and "KeyError: 'first_error'" in failed[0]
    assert "second_error" not in log
    assert f"ok      {out / 'alpha'}" in log
    last = log.strip().splitlines()[-1]
    assert last.startswith("crm run-all 20") and last.endswith(": 1 ok, 1 failed: broken")
    assert len(history.entries(out / "alpha")) == 1 and not history.entries(out / "broken")

    nb.cells[1].source = "x + 1"  # fixed: every report good, exit 0
    nb.cells.pop()
    nbformat.write(nb, str(broken))
    assert main(["run-all", "--out", str(out), "--jobs", "1"]) == 0
    assert capsys.readouterr().out.strip().endswith(": 2 ok, 0 failed")
    assert len(history.entries(out / "alpha")) == 2 and len(history.entries(out / "broken")) == 1

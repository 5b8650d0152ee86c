"""Progress lines of long steps and the summary slot at the top of a notebook (#26).

The kernel side (the lines shown and updated in JupyterLab and in the executed notebook) is
tested on executed reports in tests/notebooks/test_report_for_analysts.py; here: the lines'
wording outside a kernel, and that the renderer leaves both kinds of output out of the report.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from crm_helpers.report import answer, progress, render


def test_a_step_says_what_it_did_and_how_long_it_took(capsys):
    with progress.step("Fitting the models") as s:
        s.done("3 models")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Fitting the models…"
    assert re.fullmatch(r"Fitting the models: 3 models \(0\.\d s\)", err[1])


def test_a_failing_step_says_so_and_the_error_goes_on(capsys):
    with pytest.raises(ZeroDivisionError), progress.step("Dividing"):
        1 / 0  # noqa: B018
    assert re.fullmatch(r"Dividing: failed after 0\.\d s", capsys.readouterr().err.splitlines()[1])


def test_a_step_without_a_result_says_done(capsys):
    with progress.step("Waiting"):
        pass
    assert re.fullmatch(r"Waiting: done \(0\.\d s\)", capsys.readouterr().err.splitlines()[1])


@pytest.mark.parametrize(
    ("seconds", "text"), [(3.24, "3.2 s"), (59.9, "59.9 s"), (75, "1 min 15 s")]
)
def test_durations_read_as_seconds_or_minutes(seconds, text):
    assert progress._seconds(seconds) == text


def test_load_names_the_tables_it_validated(small_world, capsys):
    data = progress.load(small_world, require=["events"], count_rows=True)
    line = capsys.readouterr().err.splitlines()[-1]
    names = ", ".join(data.tables)
    events = data.row_counts()["events"]
    assert line.startswith(f"Loading the data: {len(data.tables)} tables ({names}), validated; ")
    assert f"events: {events:,} rows (" in line


def test_the_slot_waits_then_holds_the_summary():
    assert answer.PENDING in answer.top_markdown(None)
    md = answer.top_markdown(["a *b*", "c"], "Decision memo")
    assert md.startswith("**Decision memo** ([the full section](#Decision-memo)")
    assert md.endswith("\n\n- a *b*\n- c")


def test_the_report_leaves_progress_and_the_slot_out():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    keep = nbformat.v4.new_output("display_data", data={"text/plain": "a result"})
    line = nbformat.v4.new_output(
        "display_data", data={"text/plain": "Loading…"}, metadata={progress.PROGRESS_META: True}
    )
    slot = nbformat.v4.new_output(
        "display_data", data={"text/markdown": "**Summary**"}, metadata={answer.ANSWER_META: True}
    )
    cell.outputs = [slot, line, keep]
    nb.cells = [cell]
    out, _ = render.prepare(nb)
    assert [o["data"] for o in out.cells[0].outputs] == [{"text/plain": "a result"}]
    assert len(nb.cells[0].outputs) == 3  # the input is not modified

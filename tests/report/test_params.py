"""Refusals before a kernel starts: parameter types and ranges, malformed YAML, --out (exit 2)."""

from __future__ import annotations

import datetime as dt
import os
import time

import nbformat
import pytest

from crm_helpers.cli import main
from crm_helpers.report import params
from crm_helpers.report.run import (
    OutputNotWritable,
    ParametersError,
    _run_name_of,
    check_writable,
    discover_runs,
    run_notebook,
)

CELL = """\
n_days: int = 7
rate: float = 0.5
flag: bool = False
name: str = "a"
items: list = []
opts: dict = {}
maybe: str | None = None
free = None
"""


def _nb(source: str = CELL) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("raise RuntimeError('the kernel ran')")]
    return nb


def test_annotations_of_the_parameters_cell():
    got = params.annotations(CELL + "p: Path = None\nq: Optional[int] = None\nr: list[str] = []\n")
    assert got == {
        "n_days": ("int",),
        "rate": ("float",),
        "flag": ("bool",),
        "name": ("str",),
        "items": ("list",),
        "opts": ("dict",),
        "maybe": ("str", "None"),
        "q": ("int", "None"),
        "r": ("list",),
    }  # `p: Path` is unknown: its default's type is used; `free` has no annotation


@pytest.mark.parametrize(
    ("value", "types", "expected"),
    [
        (3, ("int",), 3),
        (3, ("float",), 3.0),
        (2.5, ("float",), 2.5),
        (True, ("bool",), True),
        ("x", ("str",), "x"),
        (dt.date(2024, 3, 1), ("str",), "2024-03-01"),
        (("a", "b"), ("list",), ["a", "b"]),
        ({"k": 1}, ("dict",), {"k": 1}),
        (None, ("str", "None"), None),
        (object, (), object),  # no type known: anything
    ],
)
def test_check_type_accepts_and_converts(value, types, expected):
    got = params.check_type("p", value, types)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("value", "types", "expected_word"),
    [
        ("abc", ("float",), "a number"),
        (True, ("int",), "an integer"),  # a bool is not a count
        (2.5, ("int",), "an integer"),
        ("yes", ("bool",), "true or false"),
        (3, ("str",), "text"),
        ("a", ("list",), "a list"),
        ([1], ("dict",), "a mapping"),
    ],
)
def test_check_type_refusal_names_parameter_type_and_value(value, types, expected_word):
    with pytest.raises(ValueError) as exc:
        params.check_type("window_days", value, types)
    msg = str(exc.value)
    assert "'window_days'" in msg and expected_word in msg and repr(value) in msg


def test_ranges_common_and_per_notebook():
    defaults = {
        "steps": ["a", "b", "c"],
        "audience_step": 1,
        "conversion_window_days": 7.0,
        "start_date": "",
        "end_date": "",
        "trend_period": "week",
    }
    types = {k: params.default_type(v) for k, v in defaults.items()}
    ok = params.check_parameters("funnel_dropoff", {"audience_step": 2}, defaults, types)
    assert ok == {"audience_step": 2}
    cases = {
        "conversion_window_days": (-1.0, r"must be in \[0, 36525\]"),
        "audience_step": (3, "between 1 and 2"),
        "trend_period": ("fortnight", "one of 'day', 'week', 'month'"),
        "start_date": ("March", "ISO date"),
        "steps": ([], "non-empty list"),
    }
    for name, (value, words) in cases.items():
        with pytest.raises(ValueError, match=words) as exc:
            params.check_parameters("funnel_dropoff", {name: value}, defaults, types)
        assert f"'{name}'" in str(exc.value) and repr(value) in str(exc.value)
    # a check reads the other parameters: fewer steps make the default audience_step invalid
    with pytest.raises(ValueError, match="audience_step.*between 1 and 1.*default"):
        params.check_parameters(
            "funnel_dropoff", {"steps": ["a", "b"]}, {**defaults, "audience_step": 2}, types
        )
    with pytest.raises(ValueError, match="before end_date"):
        params.check_parameters(
            "other", {"start_date": "2024-02-01", "end_date": "2024-01-01"}, defaults, types
        )
    # a default that fails on its own is the notebook's sentinel ("derive"): left alone,
    # but the same value given differently is refused
    sentinel = {**defaults, "audience_step": 0, "steps": []}
    assert params.check_parameters("funnel_dropoff", {"audience_step": 0}, sentinel, types)
    with pytest.raises(ValueError, match="'audience_step' must be 0 .derive it from the data."):
        params.check_parameters("funnel_dropoff", {"audience_step": -1}, defaults, types)
    # 0 means "derive": accepted whatever the steps (the notebook picks the largest loss)
    three = {"steps": ["a", "b", "c"], "audience_step": 0}
    assert params.check_parameters("funnel_dropoff", three, defaults, types) == three
    # another notebook has no funnel checks
    assert params.check_parameters("other", {"audience_step": 9}, defaults, types)


def test_register_adds_a_notebook_check(monkeypatch):
    monkeypatch.setattr(params, "NOTEBOOK_CHECKS", {})
    params.register("nb", "k", lambda v, p: "be even" if v % 2 else None)
    with pytest.raises(ValueError, match="'k' must be even; got 3"):
        params.check_parameters("nb", {"k": 3}, {"k": 2}, {})
    assert params.check_parameters("nb", {"k": 4}, {"k": 2}, {}) == {"k": 4}


def _refused(capsys, *argv) -> str:
    t0 = time.perf_counter()
    assert main(["run", *argv]) == 2
    assert time.perf_counter() - t0 < 20  # refused before a kernel started
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_cli_refuses_a_mistyped_value_naming_it(capsys, tmp_path):
    out = tmp_path / "r"
    err = _refused(
        capsys, "funnel_dropoff", "-p", "conversion_window_days", "abc", "--out", str(out)
    )
    assert "'conversion_window_days' must be a number; got 'abc'" in err
    err = _refused(capsys, "funnel_dropoff", "-p", "steps", "visit", "--out", str(out))
    assert "'steps' must be a list" in err
    assert not out.exists()


def test_cli_refuses_values_out_of_range(capsys, tmp_path):
    out = tmp_path / "r"
    err = _refused(
        capsys, "funnel_dropoff", "-p", "conversion_window_days", "-2", "--out", str(out)
    )
    assert (
        "'conversion_window_days' must be in [0, 36525] (days; at most 100 years); got -2.0" in err
    )
    pf = tmp_path / "short.yaml"
    pf.write_text("steps: [visit, purchase]\naudience_step: 2\n")
    err = _refused(capsys, "funnel_dropoff", "-f", str(pf), "--out", str(out))
    assert "'audience_step' must be between 1 and 1" in err and "got 2" in err
    assert not out.exists()


def test_cli_refuses_malformed_yaml_with_file_and_line(capsys, tmp_path):
    pf = tmp_path / "bad.yaml"
    pf.write_text("mode: ordered\nsteps: [visit, purchase\nconversion_window_days: 3\n")
    err = _refused(capsys, "funnel_dropoff", "-f", str(pf), "--out", str(tmp_path / "r"))
    assert str(pf) in err and "line 3" in err and "not valid YAML" in err
    assert "flow sequence that starts on line 2" in err
    wrong_type = tmp_path / "typed.yaml"
    wrong_type.write_text("top_n_events: ten\n")
    err = _refused(capsys, "data_overview", "-f", str(wrong_type), "--out", str(tmp_path / "r"))
    assert "'top_n_events' must be an integer; got 'ten'" in err


def test_unwritable_out_is_refused_before_running(capsys, tmp_path):
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    with pytest.raises(OutputNotWritable, match="cannot write the report to"):
        check_writable(a_file / "reports")
    err = _refused(capsys, "data_overview", "--out", str(a_file / "reports"))
    assert "cannot write the report to" in err and "--out" in err
    assert main(["run-all", "--out", str(a_file / "all")]) == 2
    assert "cannot write the report to" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere; a read-only folder only stops others
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            err = _refused(capsys, "data_overview", "--out", str(ro))
            assert "Permission denied" in err
        finally:
            ro.chmod(0o755)


def test_run_notebook_checks_before_the_kernel(tmp_path):
    nb_path = tmp_path / "nb.ipynb"
    nbformat.write(_nb(), str(nb_path))
    with pytest.raises(ParametersError, match="'rate' must be a number"):
        run_notebook(nb_path, cli_parameters={"rate": "lots"}, out_dir=tmp_path / "r")
    with pytest.raises(ParametersError, match="'opts' must be a mapping"):
        run_notebook(nb_path, parameters={"opts": [1]}, out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_run_all_records_a_malformed_params_file_instead_of_crashing(tmp_path):
    nbs = tmp_path / "notebooks"
    (nbs / "params").mkdir(parents=True)
    nbformat.write(_nb(), str(nbs / "nb.ipynb"))
    bad = nbs / "params" / "nb--weekly.yaml"
    bad.write_text("n_days: [1\n")
    assert discover_runs(nbs) == [(nbs / "nb.ipynb", None), (nbs / "nb.ipynb", bad)]
    assert _run_name_of(bad) == "weekly"
    with pytest.raises(ParametersError, match="line 2"):
        run_notebook(nbs / "nb.ipynb", params_file=bad, out_dir=tmp_path / "r")

"""Hardened runs (#23 rows 1, 2, 6, 10): what ``crm run`` refuses with exit 2 before a kernel.

A run name is one safe folder name; the reports folder may not be, contain or lie inside the
data folder (symlinks followed); a parameter value that expands to more than
``MAX_VALUE_ITEMS`` values (a YAML alias bomb) is refused naming it; numbers are read in any
notation and every declared range is checked before a kernel starts. Every test here fails
if a kernel is started (``ensure_kernel`` is replaced by a failure).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from crm_helpers import config
from crm_helpers.cli import main
from crm_helpers.report import params
from crm_helpers.report import run as _run
from crm_helpers.report.notebook import (
    MAX_VALUE_ITEMS,
    ParametersError,
    check_run_name,
    check_value_sizes,
    coerce_value,
    parameter_types,
    parameters_cell,
    read_params_file,
)


@pytest.fixture(autouse=True)
def _no_kernel(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a kernel was started for a run that should have been refused")

    monkeypatch.setattr(_run, "ensure_kernel", fail)


@pytest.fixture
def world(tmp_path) -> Path:
    """A stand-in data folder (refusals happen before any table is read)."""
    w = tmp_path / "W"
    (w / "sub").mkdir(parents=True)
    (w / "events.parquet").write_bytes(b"PAR1 not really")
    (w / "sub" / "users.csv").write_text("user_id\n1\n")
    return w


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> the sha256 of its bytes ('dir' for a folder)."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = (
            "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        )
    return out


def _refused(capsys, *argv: str) -> str:
    t0 = time.perf_counter()
    assert main(["run", *argv]) == 2
    assert time.perf_counter() - t0 < 20
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("crm run: refused: ")
    return err


# --- row 1: run names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../../../x", "../W/sub", "a/b", "/tmp/x", "..", ".hidden", "-x", "a b", "a\nb", "x" * 101],
)
def test_unsafe_run_names_are_refused_by_name_and_params_file(capsys, tmp_path, world, name):
    out = tmp_path / "deep" / "er" / "R"
    before = _snapshot(tmp_path)
    err = _refused(
        capsys, "data_overview", "--data", str(world), "--out", str(out), f"--name={name}"
    )
    assert "run name" in err and "one folder name" in err
    pf = tmp_path / "p.yaml"
    pf.write_text(yaml.safe_dump({"name": name, "parameters": {"freq": "day"}}))
    err = _refused(capsys, "data_overview", "--data", str(world), "--out", str(out), "-f", str(pf))
    assert "run name" in err
    pf.unlink()
    assert _snapshot(tmp_path) == before  # nothing written anywhere, not even --out


@pytest.mark.parametrize(
    "name", ["daily", "cart_abandoner_coupon", "v1.2-beta", "été_2024", "a--b"]
)
def test_safe_run_names_are_accepted(name):
    assert check_run_name(name) == name
    assert _run.report_dir_name("data_overview", name) == f"data_overview--{name}"


def test_every_shipped_named_run_has_a_safe_name():
    for _, pf in _run.discover_runs():
        if pf is not None:
            check_run_name(read_params_file(pf).run)


# --- row 2: the output folder and the data folder -------------------------------------------


def test_out_that_is_contains_or_lies_in_the_data_folder_is_refused(capsys, tmp_path, world):
    before = _snapshot(world)
    cases = {
        world: "is the data folder",
        world / "sub": "lies inside the data folder",
        world / "new" / "reports": "lies inside the data folder",
        tmp_path: "contains the data folder",
        Path(str(world) + "/../W/."): "is the data folder",
    }
    for out, words in cases.items():
        err = _refused(capsys, "data_overview", "--data", str(world), "--out", str(out))
        assert words in err and "--out" in err
    link = tmp_path / "to_data"
    link.symlink_to(world / "sub")
    err = _refused(capsys, "data_overview", "--data", str(world), "--out", str(link))
    assert "lies inside the data folder" in err
    assert _snapshot(world) == before


def test_a_report_folder_that_is_a_symlink_into_the_data_folder_is_refused(capsys, tmp_path, world):
    out = tmp_path / "R"
    out.mkdir()
    (out / "data_overview").symlink_to(world / "sub")  # the report folder itself
    (out / "funnel_dropoff--x").symlink_to(world)
    before = _snapshot(world)
    err = _refused(capsys, "data_overview", "--data", str(world), "--out", str(out))
    assert "lies inside the data folder" in err
    err = _refused(capsys, "funnel_dropoff", "--data", str(world), "--out", str(out), "--name", "x")
    assert "is the data folder" in err
    assert _snapshot(world) == before and sorted(p.name for p in out.iterdir()) == [
        "data_overview",
        "funnel_dropoff--x",
    ]


def test_an_export_dir_in_the_data_folder_is_refused_before_the_kernel(capsys, tmp_path, world):
    before = _snapshot(world)
    out = tmp_path / "R"
    for nb in ("funnel_dropoff", "lookalike_expansion", "segment_profiling"):
        argv = (nb, "--data", str(world), "--out", str(out), "-p", "export_dir")
        err = _refused(capsys, *argv, str(world / "exports"))
        assert "export_dir" in err and "lies inside the data folder" in err
    assert _snapshot(world) == before and not out.exists()


def test_the_default_data_folder_is_protected_too(capsys, tmp_path, monkeypatch):
    data = tmp_path / "env_data"
    data.mkdir()
    monkeypatch.setenv("CRM_DATA_DIR", str(data))
    assert config.data_dir() == data.resolve()
    err = _refused(capsys, "data_overview", "--out", str(data / "reports"))
    assert "lies inside the data folder" in err
    assert list(data.iterdir()) == []


def test_run_all_into_the_data_folder_is_refused(capsys, world):
    before = _snapshot(world)
    assert main(["run-all", "--data", str(world), "--out", str(world / "reports")]) == 2
    err = capsys.readouterr().err
    assert "crm run-all: refused:" in err and "lies inside the data folder" in err
    assert _snapshot(world) == before


# --- row 6: alias bombs and oversized values -------------------------------------------------


def _leaves(value) -> int:
    return sum(_leaves(v) for v in value) if isinstance(value, list) else 1


def _bomb(levels: int = 6, width: int = 10) -> str:
    """A YAML mapping whose ``stages`` expands to ``width ** levels`` leaves."""
    items = ",".join(["x"] * width)
    lines = ["parameters:", "  stages:", f"    l0: &a0 [{items}]"]
    for i in range(1, levels):
        lines.append(f"    l{i}: &a{i} [{','.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_naming_the_parameter(capsys, tmp_path, world):
    pf = tmp_path / "bomb.yaml"
    pf.write_text(_bomb())
    assert pf.stat().st_size < 500  # a few hundred bytes ...
    loaded = yaml.safe_load(pf.read_text())["parameters"]["stages"]["l5"]
    assert _leaves(loaded) == 10**6  # ... 10**6 leaves once expanded
    out = tmp_path / "R"
    t0 = time.perf_counter()
    err = _refused(
        capsys, "journey_mapping", "--data", str(world), "--out", str(out), "-f", str(pf)
    )
    assert time.perf_counter() - t0 < 5
    assert "parameter 'stages' is too large" in err and f"over {MAX_VALUE_ITEMS:,}" in err
    assert str(pf) in err and not out.exists()


def test_value_size_limits_count_every_use_of_an_alias():
    shared = ["x"] * 100
    check_value_sizes({"ok": [shared] * 90})  # 1 + 90 * 101 = 9,091 values
    with pytest.raises(ParametersError, match="'big' is too large.*11,111"):
        check_value_sizes({"big": [shared] * 110})
    loop: list = []
    loop.append(loop)  # YAML `&a [*a]`
    with pytest.raises(ParametersError, match="'loop' is too large"):
        check_value_sizes({"loop": loop})
    with pytest.raises(ParametersError, match="'text' is too large.*characters"):
        check_value_sizes({"text": ["y" * 600_000] * 2})
    with pytest.raises(ParametersError, match="'steps' is too large"):
        _run.run_notebook("funnel_dropoff", parameters={"steps": ["visit"] * 20_000})


def test_a_recursive_alias_and_a_huge_file_are_refused(capsys, tmp_path, world):
    pf = tmp_path / "loop.yaml"
    pf.write_text("steps: &s [visit, *s]\n")
    err = _refused(
        capsys, "funnel_dropoff", "--data", str(world), "-f", str(pf), "--out", str(tmp_path / "R")
    )
    assert "parameter 'steps' is too large" in err
    big = tmp_path / "big.yaml"
    big.write_text("title: " + "a" * 1_100_000 + "\n")
    err = _refused(
        capsys, "data_overview", "--data", str(world), "-f", str(big), "--out", str(tmp_path / "R")
    )
    assert "too large" in err and "bytes" in err


# --- row 10: numbers in any notation, every range before the kernel ---------------------------


@pytest.mark.parametrize(
    ("raw", "types", "expected"),
    [
        ("2e9", ("float",), 2e9),
        ("1_000", ("float",), 1000.0),
        ("-0.5", ("float",), -0.5),
        ("2e9", ("int",), 2_000_000_000),
        ("1e3", ("int",), 1000),
        ("90.0", ("int",), 90),
        (".5", ("float",), 0.5),
    ],
)
def test_numbers_in_any_notation(raw, types, expected):
    got = coerce_value(raw, None, types, "p")
    assert got == expected and type(got) is type(expected)
    assert params.check_type("p", raw, types) == expected  # a YAML file's "2e9" is text too


@pytest.mark.parametrize(
    ("raw", "types"),
    [
        ("2.5", ("int",)),
        ("nan", ("float",)),
        ("inf", ("float",)),
        ("1e400", ("float",)),
        ("true", ("int",)),
    ],
)
def test_not_numbers_or_not_whole_are_refused(raw, types):
    with pytest.raises(ParametersError, match="'p' must be"):
        coerce_value(raw, None, types, "p")


def _check(notebook: str, given: dict) -> dict:
    nb = nbformat.read(str(config.NOTEBOOKS_DIR / f"{notebook}.ipynb"), as_version=4)
    _, defaults = parameters_cell(nb)
    types = parameter_types(nb)
    given = {
        k: params.check_type(k, v, types.get(k) or params.default_type(defaults[k]))
        for k, v in given.items()
    }
    return params.check_parameters(notebook, given, defaults, types)


def test_the_issue_values(capsys, tmp_path, world):
    """-p expansion_size 2e9 is a number (capped at the eligible users by the helper);
    1.5, alpha 2 and 0 are refused before the kernel with the range they must be in."""
    assert _check("lookalike_expansion", {"expansion_size": "2e9"}) == {"expansion_size": 2e9}
    out = str(tmp_path / "R")
    base = ("--data", str(world), "--out", out)
    cases = [
        ("lookalike_expansion", "audience_holdout_share", "1.5", "must be in [0, 1); got 1.5"),
        ("experiment_readout", "alpha", "2", "must be in (0, 1); got 2.0"),
        ("lookalike_expansion", "expansion_size", "0", "or a number of users >= 1; got 0.0"),
        ("lookalike_expansion", "expansion_size", "2.5", "whole number of users"),
        ("experiment_readout", "power", "1", "must be in (0, 1)"),
        ("segment_profiling", "model_horizon_days", "1e9", "at most 100 years"),
        ("segment_profiling", "dormant_precision", "0.95", "at most churn_precision (0.9)"),
        ("journey_mapping", "path_depth", "0", "must be in [1, 100]"),
        ("lookalike_expansion", "random_state", "-1", "must be in [0, 4294967295]"),
    ]
    for notebook, name, raw, words in cases:
        err = _refused(capsys, notebook, "-p", name, raw, *base)
        assert f"parameter '{name}' {words}" in err or (f"'{name}'" in err and words in err), err
    pf = tmp_path / "lookalike_expansion--big.yaml"
    pf.write_text("expansion_size: 2e9\naudience_holdout_share: 1.5\n")
    err = _refused(capsys, "lookalike_expansion", "-f", str(pf), *base)
    assert "'audience_holdout_share' must be in [0, 1)" in err and "expansion_size" not in err
    assert not Path(out).exists()


SHIPPED = (
    "data_overview",
    "experiment_readout",
    "funnel_dropoff",
    "journey_mapping",
    "lookalike_expansion",
    "segment_profiling",
)


@pytest.mark.parametrize("notebook", SHIPPED)
def test_every_numeric_parameter_of_the_shipped_notebooks_has_a_declared_range(notebook):
    nb = nbformat.read(str(config.NOTEBOOKS_DIR / f"{notebook}.ipynb"), as_version=4)
    _, defaults = parameters_cell(nb)
    types = parameter_types(nb)
    checks = {**params.COMMON_CHECKS, **params.NOTEBOOK_CHECKS.get(notebook, {})}
    numeric = [
        n
        for n, t in ((n, types.get(n) or params.default_type(d)) for n, d in defaults.items())
        if set(t) & {"int", "float"}
    ]
    assert numeric and [n for n in numeric if n not in checks] == []
    for n in numeric:  # the defaults are in range (or are the notebook's own sentinel)
        assert checks[n](defaults[n], defaults) is None, n
        assert checks[n](float("inf"), defaults) is not None or n == "audience_step", n


def test_a_notebook_without_declared_ranges_still_runs_its_type_checks():
    defaults = {"budget": 10.0, "top_n": 5, "label": ""}
    types = {k: params.default_type(v) for k, v in defaults.items()}
    got = params.check_parameters(
        "campaign_performance", {"budget": "1e6", "top_n": "2e1"}, defaults, types
    )
    assert got == {"budget": 1e6, "top_n": 20}
    with pytest.raises(ValueError, match="'top_n' must be an integer"):
        params.check_parameters("campaign_performance", {"top_n": 2.5}, defaults, types)


def test_range_messages():
    r = params.Range(0, 1, high_open=True, note="a share")
    assert r(0.0, {}) is None and r(0.999, {}) is None and r(None, {}) is None
    assert r(1.0, {}) == "be in [0, 1) (a share)"
    assert r(float("nan"), {}) == "be a finite number (a share)"
    assert params.Range(1)(0, {}) == "be a number >= 1"
    assert params.Range(None, 5, high_open=True)(5, {}) == "be a number < 5"
    assert params.Range(1, 9, allowed=(0,))(0, {}) is None
    assert params.Range(1, 9, allowed=(0,))(10, {}) == "be in [1, 9] or 0"

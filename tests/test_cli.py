"""The ``crm`` command line: entry point, argument errors, generate, index.

The full ``crm run`` pipeline is exercised in ``tests/report/test_pipeline.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crm_helpers.cli import main


def test_entry_point_is_installed_and_lists_commands():
    exe = Path(sys.executable).with_name("crm")
    assert exe.exists(), "the `crm` console script is not installed (pip install -e .)"
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    for cmd in ("generate", "run", "run-all", "rerun", "index"):
        assert cmd in res.stdout


def test_no_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_run_unknown_notebook(capsys, tmp_path):
    assert main(["run", "no_such_notebook", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no notebook 'no_such_notebook'" in err and "data_overview" in err
    assert not list(tmp_path.iterdir())


def test_run_unknown_or_mistyped_parameter(capsys, tmp_path):
    assert main(["run", "data_overview", "-p", "nope", "1", "--out", str(tmp_path)]) == 2
    assert "unknown parameter 'nope'" in capsys.readouterr().err
    assert main(["run", "data_overview", "-p", "top_n_events", "ten", "--out", str(tmp_path)]) == 2
    assert "must be an integer" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_run_params_file_for_another_notebook_is_refused(capsys, tmp_path):
    pf = tmp_path / "funnels--x.yaml"
    pf.write_text("a: 1\n")
    assert main(["run", "data_overview", "-f", str(pf), "--out", str(tmp_path / "r")]) == 2
    assert "is for notebook 'funnels'" in capsys.readouterr().err


def test_index_command_writes_index(tmp_path, capsys):
    assert main(["index", "--out", str(tmp_path)]) == 0
    assert "No reports yet" in (tmp_path / "index.html").read_text()
    assert str(tmp_path / "index.html") in capsys.readouterr().out


def test_generate_writes_a_loadable_world_and_refuses_to_overwrite(tmp_path, capsys):
    synth = pytest.importorskip("crm_helpers.synth")
    if not hasattr(synth, "SynthConfig"):
        pytest.skip("crm_helpers.synth is not ready yet")
    out = tmp_path / "world"
    assert main(["generate", "--users", "200", "--seed", "3", "--out", str(out)]) == 0
    assert "200 users" in capsys.readouterr().out
    from crm_helpers.data import find_table_file, load

    data = load(out)
    users = pd.read_parquet(find_table_file(out, "users"))
    assert data.row_counts()["users"] == len(users) == 200
    assert data.row_counts()["events"] > 0
    first = {p.name: p.read_bytes() for p in sorted(out.glob("*.parquet"))}
    assert main(["generate", "--users", "200", "--seed", "3", "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (
        main(["generate", "--users", "200", "--seed", "3", "--out", str(out), "--overwrite"]) == 0
    )
    again = {p.name: p.read_bytes() for p in sorted(out.glob("*.parquet"))}
    assert again == first  # seeded: the same files
    truth = out / "ground_truth.json"
    if truth.exists():
        assert json.loads(truth.read_text())

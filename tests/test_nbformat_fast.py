"""Processes that import nbformat do not compile jsonschema's IRI grammar (~1.3 s of CPU each).

``crm run`` (the runner imports papermill and nbformat) and every pytest process of the suite
(the nbval plugin imports nbformat before any conftest) import nbformat through
:mod:`crm_helpers.nbformat_fast`; checked in fresh processes, where nothing imported jsonschema
before. (A report's kernel: tests/plots/test_theme_import_cost.py.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
assert "nbformat" in sys.modules and "jsonschema" in sys.modules, sorted(sys.modules)[:5]
assert "rfc3987_syntax" not in sys.modules, "the IRI grammar was compiled"
import nbformat
nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]))
"""


def test_the_report_runner_imports_nbformat_without_the_grammar():
    code = "import crm_helpers.report.run\n" + CHECK + "print('ok')\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_a_pytest_process_with_the_projects_options_imports_nbformat_without_the_grammar(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "def test_probe():\n" + "".join(f"    {ln}\n" for ln in CHECK.strip().splitlines())
    )
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(ROOT / "pyproject.toml"),
        "--rootdir",
        str(tmp_path),
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        str(probe),
    ]
    res = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed" in res.stdout

"""A notebook's import lines do not load the heavy libraries only some of its calls need.

Every report kernel runs its notebook's ``import`` / ``from ... import`` lines; scikit-learn
(~1.5 CPU s) and ``scipy.stats`` (~0.8 s) are imported inside the functions that use them
(``crm_helpers.segments.model_states``, ``crm_helpers.experiments.statistics``, issue #24),
so a kernel pays for them only when it calls one. Each check runs the import lines in a fresh
interpreter (``sys.modules`` of this process is shared by every test) and fails when a module
imports one of them at its top again.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
HEAVY = ("sklearn", "scipy.stats")
#: Notebooks whose import lines still load a heavy module, and the module that does it:
#: ``crm_helpers.plots.experiments`` imports ``scipy.stats`` at its top (the readout computes
#: with it in every run anyway).
STILL_LOADED = {("experiment_readout", "scipy.stats")}


def import_lines(nb_path: Path) -> str:
    """The top-level import statements of a notebook's code cells, in order."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    lines = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        try:
            tree = ast.parse(src)
        except SyntaxError:  # IPython magics: not an import line
            continue
        lines += [
            ast.get_source_segment(src, node)
            for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom)
        ]
    return "\n".join(lines)


def loaded_after(code: str) -> dict[str, bool]:
    """Which of :data:`HEAVY` a fresh interpreter has loaded after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=NOTEBOOKS, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


NOTEBOOK_NAMES = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def test_the_notebooks_are_found():
    assert len(NOTEBOOK_NAMES) >= 7
    assert "segment_profiling" in NOTEBOOK_NAMES and "campaign_performance" in NOTEBOOK_NAMES


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_import_lines_load_no_heavy_module(name):
    code = import_lines(NOTEBOOKS / f"{name}.ipynb")
    assert "crm_helpers" in code  # the probe runs the notebook's real import lines
    loaded = loaded_after(code)
    expected = {m: (name, m) in STILL_LOADED for m in HEAVY}
    assert loaded == expected


@pytest.mark.parametrize(
    "module", ["crm_helpers.experiments.statistics", "crm_helpers.segments.model_states"]
)
def test_the_lazy_modules_alone(module):
    assert loaded_after(f"import {module}") == {m: False for m in HEAVY}


def test_the_probe_sees_a_heavy_import():
    """The probe itself can fail: a module that does import scipy.stats is seen."""
    assert loaded_after("import crm_helpers.plots.experiments")["scipy.stats"] is True

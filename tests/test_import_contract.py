"""The import contract (``pyproject.toml``, ``[tool.importlinter]``) holds, and it fails on a
planted circle: a copy of the package with one import added (a circle in the data layer, in
experiments, in report; a computing module that draws) breaks the contract that forbids it."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package under ``root`` with ``root/pyproject.toml``."""
    args = [sys.executable, "-c", LINT, str(root / "pyproject.toml"), "--no-cache", "--no-logo"]
    # this copy's crm_helpers, not another; wide lines (a contract's name on one line)
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"}
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def _contract_ids() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return [c["id"] for c in config["contracts"]]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The package and its pyproject.toml, copied to ``tmp_path``."""
    shutil.copytree(
        ROOT / "crm_helpers", tmp_path / "crm_helpers", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _plant(root: Path, module: str, line: str) -> None:
    """Add ``line`` (an import) to ``module`` of the copy, after its ``__future__`` import."""
    path = root / (module.replace(".", "/") + ".py")
    text = path.read_text()
    anchor = "from __future__ import annotations\n"
    assert anchor in text, path
    path.write_text(text.replace(anchor, anchor + line + "\n", 1))


def test_the_contract_holds():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"Contracts: {len(_contract_ids())} kept, 0 broken." in res.stdout


def test_an_unchanged_copy_holds_too(copy):
    """The copy is linted as the checkout is (so a failure below is the planted import's)."""
    res = _lint(copy)
    assert res.returncode == 0, res.stdout + res.stderr


def _broken(res: subprocess.CompletedProcess) -> set[str]:
    """Ids of the contracts the run reports broken."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    ids = {c["name"]: c["id"] for c in config["contracts"]}
    broken = set()
    for line in res.stdout.splitlines():  # "<contract name> BROKEN" / "... KEPT"
        name, _, state = line.strip().rpartition(" ")
        if state == "BROKEN" and name in ids:
            broken.add(ids[name])
    return broken


#: (module of the copy, the import planted in it, the contracts that must then break)
PLANTS = [
    # the circle of the old data.py <-> validate.py: validation reaching up for the loader
    ("crm_helpers.data.validate", "from crm_helpers.data.assemble import finish_load",
     {"data-layers", "no-circles"}),
    # a low module taking a name from the package's face (which imports the loader)
    ("crm_helpers.data.findings", "from crm_helpers.data import load", {"data-layers"}),
    ("crm_helpers.experiments.analysis", "from crm_helpers.experiments import readout",
     {"no-circles"}),
    ("crm_helpers.report.provenance", "from crm_helpers.report import run", {"no-circles"}),
    ("crm_helpers.journeys.explore", "from crm_helpers.plots import journeys",
     {"compute-never-draws", "package-layers"}),
    ("crm_helpers.funnels.core", "import plotly.graph_objects", {"compute-never-draws"}),
    ("crm_helpers.data.loader", "from crm_helpers import funnels", {"package-layers"}),
]  # fmt: skip


@pytest.mark.parametrize(("module", "line", "broken"), PLANTS)
def test_a_planted_import_breaks_its_contract(copy, module, line, broken):
    assert broken <= set(_contract_ids())
    _plant(copy, module, line)
    res = _lint(copy)
    assert res.returncode != 0, res.stdout
    assert _broken(res) == broken, res.stdout + res.stderr
    assert module.rsplit(".", 1)[1] in res.stdout  # the report names the importer


# --- the data package's face -------------------------------------------------------------

#: Everything ``crm_helpers.data`` exported before it became a package.
OLD_NAMES = [
    "FORMATS", "OFFSET_PATTERN", "CRMData", "ColumnPlan", "DataContractError",
    "DataQualityReport", "Finding", "aggregate_order_lines", "apply_cleaning",
    "aware_to_naive_utc", "find_table_file", "finish_load", "load", "normalise",
    "parse_timestamp_text", "plan_columns", "rename_columns",
]  # fmt: skip


def test_the_old_names_import_from_crm_helpers_data():
    data = importlib.import_module("crm_helpers.data")
    assert set(OLD_NAMES) <= set(data.__all__)
    for name in OLD_NAMES:
        obj = getattr(data, name)
        home = getattr(obj, "__module__", None)
        if home is not None and home.startswith("crm_helpers.data."):  # one object, one home
            assert getattr(importlib.import_module(home), name) is obj


OLD_MODULES = "validate|validate_dates|normalise|order_lines|warehouse|column_types|findings"
OLD_IMPORT = re.compile(
    rf"crm_helpers\.({OLD_MODULES})\b|from crm_helpers import [^\n]*\b({OLD_MODULES})\b"
)


def test_the_old_modules_are_gone_and_nothing_names_them():
    """One place: the modules moved into crm_helpers.data with no shim left behind, and no
    source, test, benchmark or notebook names the old paths (an editable install of another
    checkout could still resolve them, so this reads the files)."""
    assert not [m for m in OLD_MODULES.split("|") if (ROOT / "crm_helpers" / f"{m}.py").exists()]
    found = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for d in ("crm_helpers", "tests", "benchmarks", "notebooks")
        for p in sorted((ROOT / d).rglob("*"))
        if p.suffix in {".py", ".ipynb", ".md"} and p.name != Path(__file__).name
        for m in OLD_IMPORT.finditer(p.read_text())
    ]
    assert not found, found

"""environment.yml (conda users) stays in step with pyproject.toml (pip users)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _normalise(req: str) -> tuple[str, frozenset[str], str]:
    r = Requirement(req)
    return (r.name.lower().replace("_", "-"), frozenset(r.extras), str(r.specifier))


def _pyproject_requirements() -> set[tuple]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {_normalise(r) for r in reqs}


def _environment_requirements() -> set[tuple]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_normalise(r) for r in pip_section if not r.startswith("-e")}


def test_environment_yml_matches_pyproject():
    in_pyproject = _pyproject_requirements()
    in_env = _environment_requirements()
    assert in_env - in_pyproject == set(), "in environment.yml but not pyproject.toml"
    assert in_pyproject - in_env == set(), "in pyproject.toml but not environment.yml"


def test_environment_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip_section


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme.split("\n## ")[0], "README opens with the test command"
    assert ci.strip().splitlines()[-1] == "make test"

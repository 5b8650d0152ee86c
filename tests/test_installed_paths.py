"""An installed package (``pip install .``) never points its defaults into site-packages (#26).

The unit tests check the rule on folder layouts; the slow test builds the wheel from a copy of
the package (an isolated build: pip fetches setuptools), installs it into a folder and reads
the defaults from a fresh interpreter outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crm_helpers import config


def test_a_checkout_keeps_its_data_folder(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    assert config.is_checkout(tmp_path)
    assert config.default_data_dir(tmp_path) == tmp_path / "data" / "synthetic"
    assert config.DEFAULT_DATA_DIR == config.ROOT / "data" / "synthetic"  # this checkout


def test_site_packages_is_not_a_data_folder(tmp_path):
    site = tmp_path / "site-packages"
    (site / "crm_helpers").mkdir(parents=True)
    got = config.default_data_dir(site, env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert got == tmp_path / "xdg" / "crm-workbench" / "synthetic"
    home = config.default_data_dir(site, env={})
    assert home == Path.home() / ".local" / "share" / "crm-workbench" / "synthetic"
    assert site not in got.parents and site not in home.parents


def test_an_installed_package_reads_its_own_notebooks(tmp_path):
    site = tmp_path / "site-packages"
    (site / "crm_helpers").mkdir(parents=True)
    assert config.notebooks_dir(site) == config.PACKAGE_NOTEBOOKS
    assert config.notebooks_dir(config.ROOT) == config.ROOT / "notebooks"  # this checkout
    assert config.NOTEBOOKS_DIR == config.ROOT / "notebooks"


#: What the wheel must carry besides the code: every notebook, every named run, the template.
def _shipped() -> set[str]:
    nbs = config.ROOT / "notebooks"
    out = {f"crm_helpers/notebooks/{p.name}" for p in nbs.glob("*.ipynb")}
    out |= {f"crm_helpers/notebooks/params/{p.name}" for p in (nbs / "params").glob("*.yaml")}
    tpl = config.ROOT / "crm_helpers" / "report" / "templates"
    out |= {f"crm_helpers/{p.relative_to(config.ROOT / 'crm_helpers').as_posix()}"
            for p in tpl.rglob("*") if p.is_file()}  # fmt: skip
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """The wheel built from a copy of the sources (an isolated build: pip fetches
    setuptools), and the folder it was installed into with ``pip install --target``."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    shutil.copytree(config.ROOT / "crm_helpers", src / "crm_helpers", ignore=ignore)
    shutil.copytree(config.ROOT / "notebooks", src / "notebooks", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "setup.py", "MANIFEST.in"):
        shutil.copy(config.ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)],
        capture_output=True,
        text=True,
    )
    if built.returncode and "setuptools" in built.stderr and "find" in built.stderr.lower():
        pytest.skip(f"no package index to fetch the build backend: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("crm_helpers-*.whl")
    site = tmp / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "-q", "--target", str(site), str(wheel)], check=True
    )
    return wheel, site


def _installed_env(site: Path, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("CRM_DATA_DIR", None)
    env.pop("CRM_REPORTS_DIR", None)
    return env


@pytest.mark.slow
def test_the_wheel_carries_the_notebooks_and_the_report_template(installed):
    import zipfile

    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _shipped() - names
    assert not missing, sorted(missing)
    assert any(n.endswith("crm_report/index.html.j2") for n in names)


@pytest.mark.slow
def test_wheel_install_defaults_outside_site_packages(installed, tmp_path):
    _, site = installed
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", "from crm_helpers import config as c; "
         "print(c.__file__); print(c.DEFAULT_DATA_DIR); print(c.data_dir()); print(c.reports_dir()); "
         "print(c.NOTEBOOKS_DIR); print(len(list(c.NOTEBOOKS_DIR.glob('*.ipynb'))))"],
        cwd=cwd, env=_installed_env(site, tmp_path), capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    assert Path(out[0]).is_relative_to(site)  # the installed copy, not the checkout
    assert Path(out[1]) == tmp_path / "xdg" / "crm-workbench" / "synthetic"
    assert Path(out[2]) == Path(out[1])
    assert Path(out[3]) == cwd / "reports"
    assert not Path(out[1]).is_relative_to(site) and not Path(out[3]).is_relative_to(site)
    # the notebooks are read from the installed package
    assert Path(out[4]) == site / "crm_helpers" / "notebooks"
    assert int(out[5]) == len(list((config.ROOT / "notebooks").glob("*.ipynb")))


@pytest.mark.slow
def test_crm_run_works_from_the_installed_package(installed, small_world, tmp_path):
    _, site = installed
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "crm_helpers.cli", "run", "data_overview", "--data",
         str(small_world)],
        cwd=cwd, env=_installed_env(site, tmp_path), capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    folder = cwd / "reports" / "data_overview"
    html = (folder / "data_overview.html").read_text()
    assert "<title>Data overview</title>" in html
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "ok"
    assert Path(record["notebook"]) == site / "crm_helpers" / "notebooks" / "data_overview.ipynb"
    assert not list(site.rglob("*.html")) and not (site / "reports").exists()
